"""Image classification: images in, top-k labels out.

Contract between training and serving (stored on each model version):
  ONNX input  "input"  float32 [N, C, H, W], pixels scaled to [0, 1] then (x - mean) / std per channel
  ONNX output "logits" float32 [N, K]
  metadata    {"labels": [K names], "preprocessing": {"size": [H, W], "channels": C,
               "mean": [C floats], "std": [C floats]},
               "weights": {"uri": "runs/<job>/weights.pt", ...}}   (trained here: the state dict init_from loads)
A version uploaded without preprocessing metadata is served with size and channels read from its
input shape, mean 0 and std 1; without labels, labels are the class indices as strings.
"""


from models.common.errors import TOO_LARGE, VALUE
from models.contract import Family, QuantisationGate, metric_table

from . import config, data, schemas

TASK = "classification"
METRICS = metric_table("""
    train_loss             mean cross-entropy (label smoothing included) of the last epoch's training batches
    val_accuracy           share of validation images whose top label is right (every test-time view averaged: tta)
    val_loss               mean cross-entropy on the validation split
    val_accuracy_one_view  with tta: the accuracy of the un-augmented view alone, as each epoch measured it
    best_epoch             with patience: the epoch whose weights were kept (best validation accuracy)
    epochs_run             with patience: the epochs trained before stopping early
    init_tensors           with init_from: the tensors loaded from the source weights
    init_head_loaded       with init_from: 1 when the classifier head was loaded too (same number of labels), else 0
""")
# accuracy is a fraction here: 0.005 is half an accuracy point
# measured (benchmarks/quantisation_methods.py): static keeps the accuracy and runs at least as fast as
# fp32; dynamic (ConvInteger) keeps it too but runs about 20x slower
QUANTISATION = QuantisationGate("val_accuracy", "max", 0.005, methods=("static",))  # issue 20's default
# item_faults: an image that does not decode, or is over the pixel limit, is one file of the batch
FAMILY = Family.of(TASK, __name__, config, data, schemas, init_from_tasks=config.INIT_FROM_TASKS,
                   check_init_from=config.check_init_from, metrics=METRICS,
                   item_faults=frozenset({VALUE, TOO_LARGE}), best_metric=("val_accuracy", "max"),
                   calibration=True,
                   triton="input [N, C, H, W] normalised on the client; logits + labels.txt; top-k on the client",
                   quantisation=QUANTISATION,
                   distributed=True)
