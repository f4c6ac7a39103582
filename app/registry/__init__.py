"""Model registry: the artifact store (files), ONNX inspection, and the registry operations (database)."""
