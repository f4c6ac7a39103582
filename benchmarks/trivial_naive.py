"""The naive peer of the overhead benchmark (benchmarks/overhead.py): a plain FastAPI `def` endpoint that
runs the session once per request, as one would write it without a serving system; V2 JSON in and out,
like dlserve's V2 row. Served by `uvicorn benchmarks.trivial_naive:app`."""

import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI

app = FastAPI()
session = ort.InferenceSession(os.environ["BENCH_MODEL"], providers=["CPUExecutionProvider"])


@app.post("/v2/models/trivial/infer")
def infer(body: dict) -> dict:
    tensor = body["inputs"][0]
    x = np.asarray(tensor["data"], np.float32).reshape(tensor["shape"])
    y = session.run(None, {"x": x})[0]
    return {"model_name": "trivial", "outputs": [{"name": "y", "datatype": "FP32", "shape": list(y.shape),
                                                  "data": y.ravel().tolist()}]}
