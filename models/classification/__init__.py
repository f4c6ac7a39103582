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


from models.contract import Family

from . import config, data

TASK = "classification"
FAMILY = Family(
    task=TASK, package=__name__, formats=data.FORMATS, config=config.Config,
    check_config=config.check_against_dataset, archive_formats=data.ARCHIVE_FORMATS,
    init_from_tasks=config.INIT_FROM_TASKS, check_init_from=config.check_init_from,
    calibration=True,
)
