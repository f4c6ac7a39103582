"""The hostile-input corpus through the API: every item is a 4xx problem+json (never a 500), and nothing
lands outside DLSERVE_HOME. Memory bounds of the big ones are measured on a real server in
test_upload_memory.py; archive bombs per format in test_dataset_bombs.py.

Name limits (documented in the 422s): model names 1-128 of [A-Za-z0-9._-] starting with a letter or
digit; aliases 1-64 of the same starting with a letter; dataset names at most 200 characters, any text."""

from __future__ import annotations

import base64
import gzip
import json
import tempfile
from pathlib import Path

import pytest

from tests import hostile, onnx_models
from tests.conftest import assert_problem, upload
from tests.workers.synthetic import stored_zip

BIG = 10**30


@pytest.fixture
def served(client, tiny_onnx):
    upload(client, "tiny", tiny_onnx)
    upload(client, "dbl", onnx_models.doubler(), task="translation")
    for name in ("tiny", "dbl"):
        assert client.put(f"/v1/models/{name}/aliases/production", json={"version": 1}).status_code == 200
    return client


def _json(client, method: str, path: str, raw: bytes, **headers):
    return client.request(method, path, content=raw, headers={"Content-Type": "application/json", **headers})


def _v2(data, shape=(1, 4), datatype="FP32") -> bytes:
    return json.dumps({"inputs": [{"name": "x", "shape": list(shape), "datatype": datatype, "data": data}]}).encode()


CORPUS = [
    # deeply nested JSON, everywhere a JSON body goes
    ("POST", "/v1/models/tiny/predict", hostile.nested_json(100_000), 422),
    ("POST", "/predict", b'{"model": "tiny", "inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", 422),
    ("POST", "/v2/models/dbl/infer", b'{"inputs": ' + b"[" * 5000 + b"]" * 5000 + b"}", 422),
    ("POST", "/v1/jobs", b'{"task": "fraud", "dataset_id": "x", "config": ' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
     422),
    ("PUT", "/v1/models/tiny/aliases/staging", b'{"version": ' + b"[" * 5000 + b"]" * 5000 + b"}", 422),
    # 10,000 inputs
    ("POST", "/v1/models/tiny/predict", json.dumps({"inputs": [{"image": "x"}] * 10_000}).encode(), 422),
    # NaN and Infinity wherever a number goes
    ("POST", "/v1/models/tiny/predict", b'{"inputs": [NaN]}', 422),
    ("POST", "/v1/models/tiny/predict", b'{"inputs": ["x"], "parameters": {"top_k": Infinity}}', 422),
    ("POST", "/v1/models/tiny/predict", b'{"inputs": ["x"], "timeout_ms": 1e999}', 422),
    ("POST", "/v2/models/dbl/infer", _v2([1, 2, 3, 4]).replace(b"[1, 2, 3, 4]", b"[NaN, 1, 2, 3]"), 422),
    ("POST", "/v2/models/dbl/infer", _v2([1e300, 1, 2, 3]), 422),
    ("POST", "/v2/models/dbl/infer", _v2([1, 2, 3, 4], datatype="FP16").replace(b"[1, 2", b"[70000, 2"), 422),
    ("PUT", "/v1/models/tiny/aliases/staging", b'{"version": NaN}', 422),
    ("PUT", "/v1/models/tiny/aliases/staging", b'{"version": 1e999}', 422),
    ("POST", "/v1/jobs", b'{"task": "fraud", "dataset_id": "x", "config": {"noise_std": NaN}}', 422),
    # zero, negative and huge integers
    ("POST", "/v1/models/tiny/predict", b'{"inputs": ["x"], "parameters": {"top_k": 0}}', 422),
    ("POST", "/v1/models/tiny/predict", b'{"inputs": ["x"], "parameters": {"top_k": -1}}', 422),
    ("POST", "/v1/models/tiny/predict", b'{"inputs": ["x"], "timeout_ms": 0}', 422),
    ("POST", "/v1/models/tiny/predict", b'{"inputs": ["x"], "timeout_ms": -5}', 422),
    ("POST", "/v1/models/tiny/predict", b'{"inputs": ["x"], "timeout_ms": %d}' % BIG, 422),
    ("POST", "/v2/models/dbl/infer", _v2([1, 2, 3, 4], shape=(BIG, 4)), 422),
    ("POST", "/v2/models/dbl/infer", _v2([1, 2, 3, 4], shape=(-1, 4)), 422),
    ("POST", "/v2/models/dbl/infer", _v2([], shape=(0, 4)), None),  # an empty batch: 4xx or an empty answer
    ("PUT", "/v1/models/tiny/aliases/staging", b'{"version": 0}', 404),
    ("PUT", "/v1/models/tiny/aliases/staging", b'{"version": -1}', 404),
]


@pytest.mark.parametrize("method, path, raw, status", CORPUS, ids=[f"{i}-{c[1]}" for i, c in enumerate(CORPUS)])
def test_hostile_json_is_a_4xx_problem(served, method, path, raw, status):
    r = _json(served, method, path, raw)
    if status is None:
        assert r.status_code == 200 or 400 <= r.status_code < 500, r.text
        return
    if r.status_code != status:
        assert 400 <= r.status_code < 500, r.text
    assert_problem(r, r.status_code)


def test_huge_base64_and_images_declaring_huge_dimensions(served, settings):
    over = b'{"inputs": [{"image": "' + b"A" * (settings.max_request_bytes + 10) + b'"}]}'
    assert_problem(_json(served, "POST", "/v1/models/tiny/predict", over), 413)
    garbage = json.dumps({"inputs": [{"image": base64.b64encode(b"\0" * 5_000_000).decode()}]}).encode()
    assert_problem(_json(served, "POST", "/v1/models/tiny/predict", garbage), 422, "inputs[0]")
    for w, h in ((100_000, 100_000), (2**31 - 1, 1), (1, 2**31 - 1)):
        png = base64.b64encode(hostile.png_claiming(w, h)).decode()
        r = _json(served, "POST", "/v1/models/tiny/predict", json.dumps({"inputs": [{"image": png}]}).encode())
        assert r.status_code in (413, 422), r.text
        assert_problem(r, r.status_code)
        r = served.post("/v1/models/tiny/predict", files={"file": ("big.png", hostile.png_claiming(w, h))})
        assert r.status_code in (413, 422), r.text
    content = stored_zip({"cats/a.png": hostile.png_claiming(100_000, 100_000),
                          "dogs/b.png": hostile.png_claiming(100_000, 100_000)})
    r = served.post("/v1/datasets", files={"file": ("huge.zip", content)}, data={"task": "classification"})
    assert_problem(r, r.status_code, "cats/a.png")
    assert 400 <= r.status_code < 500


def test_a_gzip_bomb_and_a_plain_gzip_body_on_v2(served, settings):
    bomb = hostile.gz_bomb(settings.max_request_bytes + 1024 * 1024)
    assert_problem(_json(served, "POST", "/v2/models/dbl/infer", bomb, **{"Content-Encoding": "gzip"}), 413)
    ok = _json(served, "POST", "/v2/models/dbl/infer", gzip.compress(_v2([1, 2, 3, 4])), **{"Content-Encoding": "gzip"})
    assert ok.status_code == 200 and ok.json()["outputs"][0]["data"] == [2, 4, 6, 8]


@pytest.mark.parametrize("name", ["modèle-ü", "a" * 10_000, "a%2Fb", "..", ".hidden", "-x", "a b", "\u202emodel"])
def test_bad_model_names_are_4xx(client, tiny_onnx, name):
    r = client.post(f"/v1/models/{name}/versions", files={"file": ("m.onnx", tiny_onnx)},
                    data={"task": "classification"})
    assert 400 <= r.status_code < 500, r.text
    assert_problem(r, r.status_code)


@pytest.mark.parametrize("alias", ["prödüction", "a" * 10_000, "1abc", "a%2Fb"])
def test_bad_aliases_are_4xx(served, alias):
    r = served.put(f"/v1/models/tiny/aliases/{alias}", json={"version": 1})
    assert 400 <= r.status_code < 500, r.text
    assert_problem(r, r.status_code)


def test_dataset_and_job_names(client):
    from tests.workers import synthetic
    content = synthetic.npz_bytes(n=20, size=8)
    r = client.post("/v1/datasets", files={"file": ("x.npz", content)}, data={"task": "classification",
                                                                              "name": "x" * 10_000})
    assert_problem(r, 422, "longer than 200")
    r = client.post("/v1/datasets", files={"file": ("../../ét/é 📊.npz", content)}, data={"task": "classification"})
    assert r.status_code == 201, r.text
    assert r.json()["name"] == "é 📊"  # the base name of the file, no folders
    job = {"task": "classification", "dataset_id": r.json()["id"], "register_as": "a/b" * 3000}
    assert_problem(client.post("/v1/jobs", json=job), 422)


def test_nothing_is_written_outside_home(served, settings, tmp_path, monkeypatch):
    """Every upload kind, with the system temp folder watched and every temporary file's folder recorded
    (spooled files are unlinked at once, so a listing alone would not see them; the real-server test in
    test_upload_memory.py watches the process's open files too)."""
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(systmp))
    folders = []
    real = tempfile.TemporaryFile

    def spy(*args, **kwargs):
        folders.append(Path(kwargs.get("dir") or tempfile.gettempdir()).resolve())
        return real(*args, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", spy)
    big_image = onnx_models.png(__import__("numpy").zeros((600, 600, 3), "uint8"))
    served.post("/v1/models/tiny/predict", files={"file": ("a.png", big_image + b"\0" * 2_000_000)})
    served.post("/v1/datasets", files={"file": ("b.zip", hostile.zip_bomb(64 << 20))}, data={"task": "classification"})
    served.post("/v1/models/x/versions", files={"file": ("m.onnx", b"\0" * 3_000_000)}, data={"task": "fraud"})
    assert list(systmp.iterdir()) == []
    home = Path(settings.home).resolve()
    assert folders and all(f.is_relative_to(home) for f in folders), folders
    assert settings.resolved_artifact_root.is_relative_to(home)
    assert list((settings.resolved_artifact_root / ".staging").iterdir()) == []
