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

TASK = "captioning"
