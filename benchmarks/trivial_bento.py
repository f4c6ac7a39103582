"""The BentoML peer of the overhead benchmark (benchmarks/overhead.py): the trivial model behind BentoML's
adaptive batching (@bentoml.api(batchable=True)); BentoML's own JSON ({"x": [[x1, x2, x3, x4]]}).
Served by `bentoml serve benchmarks.trivial_bento:Trivial` from its own virtualenv (.venv-bento)."""

import os

import bentoml
import numpy as np


@bentoml.service(workers=1)
class Trivial:
    def __init__(self) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(os.environ["BENCH_MODEL"], providers=["CPUExecutionProvider"])

    @bentoml.api(batchable=True, max_batch_size=32, max_latency_ms=10_000)
    def infer(self, x: np.ndarray) -> np.ndarray:
        return self.session.run(None, {"x": x.astype(np.float32)})[0]
