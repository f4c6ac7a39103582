"""dlserve: the FastAPI service (registry, auth, inference) and the pieces workers share with it."""

import os

# ONNX Runtime (1.32) records telemetry by default: a SQLite file under ~/.cache/Microsoft/DeveloperTools, a
# session file in $TMPDIR, and an attempt to send them. dlserve keeps what it writes under DLSERVE_HOME and
# runs offline, so it is off unless the environment says otherwise. It must be set before onnxruntime is
# imported, which is why it sits here: every process of ours imports this package first.
os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
