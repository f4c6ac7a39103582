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


from models.contract import Family

from . import config, data

TASK = "captioning"
FAMILY = Family(
    task=TASK, package=__name__, formats=data.FORMATS, config=config.Config,
    check_config=config.check_against_dataset, archive_formats=data.ARCHIVE_FORMATS,
    init_from_tasks=config.INIT_FROM_TASKS, check_init_from=config.check_init_from,
    multi_file=True, warmup_feeds=True,
    calibration=True,
)
