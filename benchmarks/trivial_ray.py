"""The Ray Serve peer of the overhead benchmark (benchmarks/overhead.py): one replica batching with
@serve.batch (at most 32 rows, 2 ms wait: dlserve's defaults) behind Ray Serve's HTTP proxy; V2 JSON in
and out, like dlserve's V2 row. Run from its own virtualenv (.venv-ray, `ray[serve]`):
`python benchmarks/trivial_ray.py PORT`; it serves until it is stopped."""

from __future__ import annotations

import os
import sys
import time

import numpy as np
from ray import serve
from starlette.requests import Request


@serve.deployment(num_replicas=1, max_ongoing_requests=256)  # the default (5) would cap its batches
class Trivial:
    def __init__(self) -> None:
        import onnxruntime as ort

        self.session = ort.InferenceSession(os.environ["BENCH_MODEL"], providers=["CPUExecutionProvider"])

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.002)
    async def run(self, xs: list[np.ndarray]) -> list[np.ndarray]:
        y = self.session.run(None, {"x": np.concatenate(xs)})[0]
        return np.split(y, np.cumsum([len(x) for x in xs])[:-1])

    async def __call__(self, request: Request) -> dict:
        tensor = (await request.json())["inputs"][0]
        y = await self.run(np.asarray(tensor["data"], np.float32).reshape(tensor["shape"]))
        return {"model_name": "trivial", "outputs": [{"name": "y", "datatype": "FP32", "shape": list(y.shape),
                                                      "data": y.ravel().tolist()}]}


if __name__ == "__main__":
    import ray

    ray.init(include_dashboard=False)
    serve.start(http_options={"host": "127.0.0.1", "port": int(sys.argv[1])})
    serve.run(Trivial.bind(), route_prefix="/v2/models/trivial/infer")
    print("serving", flush=True)
    while True:
        time.sleep(3600)
