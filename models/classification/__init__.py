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

TASK = "classification"
