"""The translation family through the real API: uploads and their 422s, a training run in this process (a
tiny Transformer on a toy language, a few seconds) against the real database, artifact store and ONNX
Runtime, and /predict: translations, scores, n-best, concurrent requests batched, bad inputs."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from tests.conftest import assert_item_error, assert_problem, one_torch_thread, upload_dataset
from tests.workers.synthetic import tar_gz, toy_pairs
from workers.runner import run_training

# The subject is the family, the CLI or the job's checks, not the database: one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

CONFIG = {"d_model": 32, "layers": 1, "heads": 2, "ffn": 64, "dropout": 0.0, "tokenizer": "word", "vocab_size": 64,
          "epochs": 12, "batch_size": 16, "warmup_steps": 30, "lr": 5e-3, "max_len": 12,
          "source_lang": "xx", "target_lang": "yy"}


def tsv(pairs: list[tuple[str, str]]) -> bytes:
    return "".join(f"{s}\t{t}\tCC-BY attribution\n" for s, t in pairs).encode()


def upload(client, content: bytes, name: str = "pairs.txt", fmt: str | None = None):
    return upload_dataset(client, content, name, "translation", fmt)


@pytest.mark.parametrize("content, name, needles", [
    (b"", "p.txt", ["line 1", "empty"]),
    (b"a b\tx y\nno tab here\n", "p.txt", ["line 2", "no tab"]),
    (b"a b\tx y\nc\t\n", "p.txt", ["line 2", "column 2 is empty"]),
    (tar_gz({"train.de": b"a\nb\nc\n", "train.en": b"x\ny\n"}), "p.tar.gz", ["train.en", "2 lines", "3"]),
    (tar_gz({"train.de": b"", "train.en": b"x\n"}), "p.tar.gz", ["train.de", "empty"]),
    (tar_gz({"readme.md": b"hello"}), "p.tar.gz", ["train.<lang>"]),
])
def test_bad_uploads_are_422_naming_the_line_or_file(client, content, name, needles):
    assert_problem(upload(client, content, name), 422, *needles)


def test_uploads_report_languages_and_splits(client):
    r = upload(client, tsv(toy_pairs(10)), "fra.txt")
    assert r.status_code == 201, r.text
    assert r.json()["format"] == "parallel" and r.json()["stats"]["rows"] == 10 and r.json()["stats"]["columns"] == 2
    r = upload(client, tar_gz({"m/train.de": b"ein hund\nzwei\n", "m/train.en": b"a dog\ntwo\n",
                               "m/val.de": b"eins\n", "m/val.en": b"one\n"}), "m30k.tar.gz")
    assert r.status_code == 201, r.text
    stats = r.json()["stats"]
    assert r.json()["format"] == "parallel" and stats["languages"] == ["de", "en"]
    assert stats["splits"] == {"train": 2, "val": 1}


@pytest.fixture
def trained(client, settings):
    with one_torch_thread():
        ds = upload(client, tsv(toy_pairs(400)))
        assert ds.status_code == 201, ds.text
        job = client.post("/v1/jobs", json={"task": "translation", "dataset_id": ds.json()["id"],
                                            "config": {**CONFIG, "columns": "xx,yy"}, "register_as": "toy",
                                            "alias": "production"})
        assert job.status_code == 202, job.text
        job_id = job.json()["id"]
        assert run_training(job_id, settings) == "succeeded", client.get(f"/v1/jobs/{job_id}").json()["error"]
    return client.get("/v1/models/toy/versions/1").json()


def predict(client, inputs, **parameters):
    return client.post("/v1/models/toy/predict", json={"inputs": inputs, "parameters": parameters})


def test_a_trained_translator_serves_and_refuses_bad_inputs(client, trained, settings):
    """One training run (a few seconds) for every check of the served version."""
    check_translations_scores_and_n_best(client, trained)
    check_concurrent_requests_of_different_lengths_share_batches(client)
    check_bad_inputs_are_422_or_413_with_the_limit(client)
    check_v2_clients_send_token_ids_and_get_hypotheses(client, settings)


def check_translations_scores_and_n_best(client, trained):
    meta, metrics = trained["metadata"], trained["metrics"]
    assert metrics["val_bleu"] > 30, meta["examples"]  # copying the source scores 0: no word is shared
    assert meta["bleu_signature"].startswith("nrefs:1|case:mixed") and "version:" in meta["bleu_signature"]
    assert meta["source_lang"] == "xx" and meta["target_lang"] == "yy" and meta["max_source_tokens"] == 11
    assert meta["parity"]["max_score_diff"] <= 1e-3 and meta["parity"]["beams"] == [1, 4]

    r = predict(client, [{"text": "w1 w2 w3"}, {"text": "w7 w4"}, "w10 w11 w0 w5"], beam_size=1)
    assert r.status_code == 200, r.text
    outs = r.json()["outputs"]
    assert [o["translation"] for o in outs] == ["v1 v2 v3", "v7 v4", "v10 v11 v0 v5"]
    assert all(o["score"] <= 0 and set(o) == {"translation", "score"} for o in outs)

    r = predict(client, [{"text": "w3 w8 w9"}], beam_size=4, n_best=3)
    assert r.status_code == 200, r.text
    out = r.json()["outputs"][0]
    assert out["translation"] == "v3 v8 v9" and len(out["n_best"]) == 3
    scores = [h["score"] for h in out["n_best"]]
    assert scores == sorted(scores, reverse=True) and out["n_best"][0]["translation"] == out["translation"]
    assert len({h["translation"] for h in out["n_best"]}) == 3

    r = predict(client, [{"text": "w3 w8 w9"}], max_length=1, beam_size=1)
    assert r.status_code == 200 and r.json()["outputs"][0]["translation"] == "v3"


def check_concurrent_requests_of_different_lengths_share_batches(client):
    sentences = [" ".join(f"w{(k + j) % 12}" for j in range(2 + k % 4)) for k in range(12)]

    with ThreadPoolExecutor(6) as pool:  # separate requests at once: the batcher pads their src together
        answers = list(pool.map(lambda s: predict(client, [{"text": s}], beam_size=2), sentences))
    assert all(r.status_code == 200 for r in answers), [r.text for r in answers if r.status_code != 200]
    got = [r.json()["outputs"][0] for r in answers]
    alone = [predict(client, [{"text": s}], beam_size=2).json()["outputs"][0] for s in sentences]
    assert [g["translation"] for g in got] == [a["translation"] for a in alone]  # padding changed nothing
    assert all(abs(g["score"] - a["score"]) < 1e-4 for g, a in zip(got, alone, strict=True))
    want = [s.replace("w", "v") for s in sentences]
    assert sum(g["translation"] == w for g, w in zip(got, want, strict=True)) >= 8, got


def check_bad_inputs_are_422_or_413_with_the_limit(client):
    r = predict(client, [{"text": "w1"}, {"text": "   "}, " ".join(["w1"] * 30)])
    assert r.json()["outputs"][0]["translation"] == "v1"  # the others are one sentence's faults each
    assert_item_error(r, 1, 422, "inputs[1].text", "empty")
    assert_item_error(r, 2, 413, "inputs[2].text", "limit of 11 tokens")
    assert_problem(predict(client, [{"text": " ".join(["w1"] * 30)}]), 413, "inputs[0].text", "limit of 11 tokens")
    assert_problem(predict(client, [{"txt": "w1"}]), 422, "inputs[0].txt")
    assert_problem(predict(client, [{"text": "w1"}], beam_size=99), 422, "beam_size", "between 1 and 16")
    assert_problem(predict(client, [{"text": "w1"}], beam_size=2, n_best=3), 422, "n_best")
    assert_problem(predict(client, [{"text": "w1"}], top_k=1), 422, "unknown option")
    assert_problem(predict(client, [{"text": "w1"}], max_length=10_000), 422, "max_length", "at most 34")


def check_v2_clients_send_token_ids_and_get_hypotheses(client, settings):
    """The Open Inference Protocol sees the whole decoder: token ids in, hypotheses (ids, scores) out,
    greedy by default, through the same batcher."""
    from models.common import text

    meta = client.get("/v2/models/toy").json()
    assert [i["name"] for i in meta["inputs"]] == ["src"]
    assert [o["name"] for o in meta["outputs"]] == ["tokens", "scores"]
    folder = settings.resolved_artifact_root / "models/toy/1"
    src_tok, tgt_tok = text.load(folder / "source.tokenizer.json"), text.load(folder / "target.tokenizer.json")
    ids = text.encode(src_tok, "w5 w6 w7") + [text.EOS]
    r = client.post("/v2/models/toy/infer", json={"inputs": [
        {"name": "src", "datatype": "INT64", "shape": [1, len(ids)], "data": ids}]})
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    tokens = np.asarray(outs["tokens"]["data"]).reshape(outs["tokens"]["shape"])
    assert text.decode(tgt_tok, [t for t in tokens[0, 0] if t >= 0]) == "v5 v6 v7"
    task_level = predict(client, [{"text": "w5 w6 w7"}], beam_size=1, length_penalty=1.0).json()["outputs"][0]
    assert outs["scores"]["data"][0] == pytest.approx(task_level["score"], abs=1e-5)
