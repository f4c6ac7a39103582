"""The serving engine: ONNX Runtime sessions (runtime), dynamic batching (batcher), loaded versions
and alias following (manager), Open Inference Protocol tensors (tensors), metrics."""
