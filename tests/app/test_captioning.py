"""The captioning family through the real API: a generated COCO-format archive of canvases with template
captions, its 422s, a training run in this process (real database, artifact store, ONNX Runtime), and
/predict with base64 and multipart images, n-best and bad parameters."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest

from app.examples import png
from models.captioning import synthetic
from models.captioning.metrics import caption_scores
from tests.conftest import assert_problem, upload_dataset
from workers.runner import run_training

# The subject is the family, the CLI or the job's checks, not the database: one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

CONFIG = {"epochs": 10, "batch_size": 32, "lr": 1e-2, "width": 8, "hidden": 64, "embed_dim": 32,
          "attention_dim": 32, "dropout": 0.0, "max_length": 16, "eval_beam_size": 2, "val_fraction": 0.15}


def upload(client, content: bytes, fmt: str = "coco", name: str = "canvases.zip"):
    return upload_dataset(client, content, name, "captioning", fmt)


def _coco(images: list[dict], anns: list[dict], files: dict[str, bytes]) -> bytes:
    return synthetic.pack({"captions.json": json.dumps({"images": images, "annotations": anns}).encode(), **files})


@pytest.mark.parametrize("fmt, content, needles", [
    ("coco", _coco([{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "b.png"}],
                   [{"image_id": 1, "caption": "a disk"}], {"a.png": png(np.zeros((8, 8), np.uint8)),
                                                            "b.png": png(np.zeros((8, 8), np.uint8))}),
     ["captions.json: images[1]", "'b.png' (id 2) has no caption"]),
    ("coco", _coco([{"id": 1, "file_name": "a.png"}, {"id": 2, "file_name": "missing.png"}],
                   [{"image_id": 1, "caption": "a disk"}, {"image_id": 2, "caption": "a bar"}],
                   {"a.png": png(np.zeros((8, 8), np.uint8))}),
     ["captions.json: images[1]", "'missing.png' (id 2) is not in the archive"]),
    ("coco", _coco([{"id": 1, "file_name": "a.png"}], [{"image_id": 1, "caption": "x"}], {"a.png": b"\x89PNG junk"}),
     ["entry 'a.png'", "not a decodable image"]),
    ("flickr8k", synthetic.pack({"Flickr8k.token.txt": b"a.png#0\ta disk\nz.png#0\ta bar\n",
                                 "a.png": png(np.zeros((8, 8), np.uint8))}),
     ["Flickr8k.token.txt: line 2", "'z.png', which is not in the archive"]),
])
def test_bad_uploads_are_422_naming_the_entry(client, fmt, content, needles):
    assert_problem(upload(client, content, fmt), 422, *needles)


def test_a_captioner_trains_and_serves_captions(client, settings, one_thread):
    x, caps = synthetic.canvases(240, "shapes", 24, seed=0)
    r = upload(client, synthetic.coco_archive(x, caps))
    assert r.status_code == 201, r.text
    assert r.json()["stats"]["images"] == 240 and r.json()["stats"]["captions"] == 240
    job = client.post("/v1/jobs", json={"task": "captioning", "dataset_id": r.json()["id"], "config": CONFIG,
                                        "register_as": "cap", "alias": "production"})
    assert job.status_code == 202, job.text
    assert run_training(job.json()["id"], settings) == "succeeded", client.get(f"/v1/jobs/{job.json()['id']}").json()
    version = client.get("/v1/models/cap/versions/1").json()
    m, meta = version["metrics"], version["metadata"]
    assert {f"val_bleu_{n}" for n in range(1, 5)} | {"val_cider"} <= set(m)
    # the most frequent caption is the trivial baseline: the model must be well above it
    assert m["val_bleu_4"] > m["val_baseline_frequent_bleu_4"] + 0.2, m
    assert m["val_cider"] > m["val_baseline_frequent_cider"], m
    assert meta["parity"]["max_score_diff"] < 1e-3 and meta["preprocessing"]["size"] == [24, 24]

    # fresh canvases, base64 JSON: captions with scores, n-best on request
    xt, ct = synthetic.canvases(6, "shapes", 24, seed=99)
    inputs = [{"image": base64.b64encode(png(img)).decode()} for img in xt]
    r = client.post("/v1/models/cap/predict", json={"inputs": inputs})
    assert r.status_code == 200, r.text
    outs = r.json()["outputs"]
    assert all(set(o) == {"caption", "score"} and o["score"] <= 0 and o["caption"] for o in outs)
    assert caption_scores([o["caption"] for o in outs], [[c] for c in ct])["bleu_1"] > 0.5, (outs, ct)
    r = client.post("/v1/models/cap/predict", json={"inputs": inputs[:2], "parameters": {"beam_size": 4,
                                                                                         "n_best": 3}})
    assert r.status_code == 200, r.text
    best = r.json()["outputs"][0]
    assert len(best["n_best"]) == 3 and best["n_best"][0]["caption"] == best["caption"]
    assert [h["score"] for h in best["n_best"]] == sorted((h["score"] for h in best["n_best"]), reverse=True)

    # a multipart file, as classification takes it
    r = client.post("/v1/models/cap/predict", files=[("file", ("a.png", png(xt[0])))])
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["caption"] == outs[0]["caption"]

    for params, needle in [({"beam_size": 0}, "parameters.beam_size"), ({"beam_size": 2, "n_best": 3}, "n_best"),
                           ({"max_length": 99}, "at most 16"), ({"top_k": 1}, "unknown option")]:
        assert_problem(client.post("/v1/models/cap/predict", json={"inputs": inputs[:1], "parameters": params}),
                       422, needle)
    assert_problem(client.post("/v1/models/cap/predict", json={"inputs": [{"image": "bm90IGFuIGltYWdl"}]}),
                   422, "inputs[0].image")
