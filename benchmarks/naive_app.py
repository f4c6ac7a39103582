"""The naive baseline: a plain FastAPI endpoint that decodes and runs the session once per request,
as one would write it without a serving system. Served by `uvicorn benchmarks.naive_app:app`."""

import base64
import io
import os

import numpy as np
import onnxruntime as ort
from fastapi import FastAPI
from PIL import Image

app = FastAPI()
session = ort.InferenceSession(os.environ["BENCH_MODEL"], providers=["CPUExecutionProvider"])
MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)[:, None, None]
STD = np.array([0.2470, 0.2435, 0.2616], np.float32)[:, None, None]


@app.post("/predict")
def predict(body: dict) -> dict:
    outputs = []
    for item in body["inputs"]:
        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(item["image"]))).convert("RGB"), np.float32)
        x = ((img / 255).transpose(2, 0, 1) - MEAN) / STD
        logits = session.run(None, {"input": x[None]})[0][0]
        p = np.exp(logits - logits.max())
        p /= p.sum()
        top = np.argsort(-p)[:5]
        outputs.append({"labels": [{"label": str(i), "score": float(p[i])} for i in top]})
    return {"outputs": outputs}
