"""BentoML baseline: the same session and payload behind BentoML's adaptive batching
(@bentoml.api(batchable=True)). Served by `bentoml serve benchmarks.bento_service:Classifier`
from its own virtualenv (BentoML pins its own web stack)."""

import base64
import io
import os

import bentoml
import numpy as np
from PIL import Image

MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)[:, None, None]
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)[:, None, None]


@bentoml.service(workers=1)
class Classifier:
    def __init__(self) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(os.environ["BENCH_MODEL"], providers=["CPUExecutionProvider"])

    @bentoml.api(batchable=True, max_batch_size=64, max_latency_ms=10_000)
    def predict(self, images: list[str]) -> list[dict]:
        xs = []
        for b64 in images:
            img = np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("RGB"), np.float32)
            xs.append(((img / 255).transpose(2, 0, 1) - MEAN) / STD)
        logits = self.session.run(None, {"input": np.stack(xs).astype(np.float32)})[0]
        out = []
        for row in logits:
            p = np.exp(row - row.max())
            p /= p.sum()
            top = np.argsort(-p)[:5]
            out.append({"labels": [{"label": str(i), "score": float(p[i])} for i in top]})
        return out
