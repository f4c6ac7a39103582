"""Image captioning: an image in, a sentence out (Show, Attend and Tell over a classification backbone).

Contract between training and serving (an encoder-decoder version; the naming rules are in
models/common/decoding.py):
  model.onnx    ENCODER   input "image" float32 [batch, C, H, W] (pixels / 255, then (x - mean) / std)
                          outputs "features" [batch, P, D] (the backbone's last feature map, average-pooled
                          to about grid x grid positions, plus a learned embedding of each position) and
                          "keys" [batch, P, A] (its attention keys; both static: fed unchanged
                          to every step), "past_h", "past_c" [batch, hidden] (the LSTM's initial state)
  decoder.onnx  DECODER STEP  inputs "token" int64 [batch], "features", "keys", "past_h", "past_c"
                          outputs "log_probs" float32 [batch, vocab], "present_h", "present_c"
  target.tokenizer.json  the word-level vocabulary (PAD=0, BOS=1, EOS=2, UNK=3)
  metadata      {"preprocessing": {"size": [H, W], "channels": C, "mean": [...], "std": [...]},
                 "max_length": longest caption the decoder may write, "vocab_size": V, ...}
Serving: an image in (base64 JSON or a multipart file) -> {"caption", "score"} (+ "n_best" on request).
"""


from models.common.errors import TOO_LARGE, VALUE
from models.contract import Family, QuantisationGate, metric_table

from . import config, data, schemas

TASK = "captioning"
METRICS = metric_table("""
    train_loss                    mean teacher-forced cross-entropy per word of the last epoch's training batches
    val_loss                      mean teacher-forced cross-entropy per word on the validation split
    val_bleu_1                    BLEU-1 of the beam-search captions of the validation images against their references
    val_bleu_2                    BLEU-2 of them
    val_bleu_3                    BLEU-3 of them
    val_bleu_4                    BLEU-4 of them
    val_cider                     CIDEr-D of them
    val_baseline_frequent_bleu_1  BLEU-1 of the most frequent training caption, given for every image
    val_baseline_frequent_bleu_2  BLEU-2 of that baseline
    val_baseline_frequent_bleu_3  BLEU-3 of that baseline
    val_baseline_frequent_bleu_4  BLEU-4 of that baseline
    val_baseline_frequent_cider   CIDEr-D of that baseline
    val_baseline_nearest_bleu_1   BLEU-1 of the first caption of the nearest training image (encoder features)
    val_baseline_nearest_bleu_2   BLEU-2 of that baseline
    val_baseline_nearest_bleu_3   BLEU-3 of that baseline
    val_baseline_nearest_bleu_4   BLEU-4 of that baseline
    val_baseline_nearest_cider    CIDEr-D of that baseline
    init_tensors                  with init_from: the tensors loaded from the source weights
    init_decoder_loaded           with init_from: 1 when the decoder was loaded too (a captioning source), else 0
""")
# pycocoevalcap's BLEU is 0-1: 0.005 is half a BLEU point
# measured (benchmarks/quantisation_methods.py, a tiny model): static drops BLEU-4 to 0; dynamic loses
# nothing with 7-bit weights (0.012, over the tolerance, with 8-bit ones, which saturate without VNNI)
QUANTISATION = QuantisationGate("val_bleu_4", "max", 0.005, methods=("dynamic",))  # issue 20's default
# item_faults: an image that does not decode, or is over the pixel limit, is one file of the batch
FAMILY = Family.of(TASK, __name__, config, data, schemas, init_from_tasks=config.INIT_FROM_TASKS,
                   check_init_from=config.check_init_from, multi_file=True, warmup_feeds=True, metrics=METRICS,
                   artifacts=("decoder.onnx", "target.tokenizer.json"),
                   item_faults=frozenset({VALUE, TOO_LARGE}), best_metric=("val_bleu_4", "max"),
                   calibration=True,
                   triton="image encoder and LSTM decoder-step graphs, beam search in Python between them",
                   quantisation=QUANTISATION)
