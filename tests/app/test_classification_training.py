"""Classification trained through the real API: upload, job (the worker's task body run in this
process), registry, /predict. A ResNet on a csv archive of colour images serves and agrees with
PyTorch; init_from starts a second job from a registered version or from a weights file shipped in
the archive, and a bad reference is a 422 at submit naming it."""

import base64
import io

import numpy as np
import onnxruntime as ort
import pytest
import torch
from safetensors.torch import save_file

from app.examples import png
from models.classification.networks import LeNet, ResNet
from tests.conftest import assert_problem, upload_dataset
from tests.workers import synthetic
from workers.runner import run_training

# The subject is the family, the CLI or the job's checks, not the database: one backend (tests/conftest.py).
pytestmark = pytest.mark.one_backend

FAST = {"epochs": 3, "batch_size": 16, "lr": 0.01, "width": 8}


COLOURS = np.array([(1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 1, 0)])


def colour(n: int, size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A square of class k's colour at a random place on dark noise (what a ResNet, which pools over
    the whole image, sees at once)."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 4
    x = rng.integers(0, 40, size=(n, size, size, 3)).astype(np.uint8)
    half = size // 2
    for i, k in enumerate(y):
        r, c = rng.integers(0, size - half + 1, 2)
        x[i, r:r + half, c:c + half] = (COLOURS[k] * rng.integers(180, 256)).astype(np.uint8)
    return x, y.astype(np.int64)


def upload(client, content: bytes, filename: str, fmt: str | None = None) -> str:
    r = upload_dataset(client, content, filename, "classification", fmt)
    assert r.status_code in (200, 201), r.text
    return r.json()["id"]


def train(client, settings, dataset_id: str, config: dict, name: str, expect: str = "succeeded") -> dict:
    r = client.post("/v1/jobs", json={"task": "classification", "dataset_id": dataset_id, "config": config,
                                      "register_as": name, "alias": "production"})
    assert r.status_code == 202, r.text
    job = r.json()
    assert run_training(job["id"], settings) == expect
    return client.get(f"/v1/jobs/{job['id']}").json()


def keras_npz(n_train: int, n_test: int, seed: int) -> bytes:
    x, y = synthetic.images(n_train, 16, seed)
    xt, yt = synthetic.images(n_test, 16, seed + 100)
    buf = io.BytesIO()
    np.savez(buf, x_train=x, y_train=y, x_test=xt, y_test=yt)
    return buf.getvalue()


def test_a_resnet_on_a_csv_of_colour_images_trains_serves_and_agrees_with_pytorch(client, settings):
    x, y = colour(256, 12, seed=0)
    members = {f"img/{i}.png": png(img if i % 4 else np.kron(img, np.ones((2, 2, 1), np.uint8)))  # some 24x24
               for i, img in enumerate(x)}
    members["labels.csv"] = ("path,label\n" + "".join(f"img/{i}.png,{synthetic.LABELS[k]}\n"
                                                      for i, k in enumerate(y))).encode()
    dataset = upload(client, synthetic.zip_of(members), "colour.zip", "csv")
    config = {"epochs": 3, "batch_size": 32, "lr": 0.02, "width": 8, "arch": "resnet", "depth": 8,
              "image_size": 12, "scheduler": "onecycle", "label_smoothing": 0.05, "patience": 5}
    job = train(client, settings, dataset, config, "colour")
    assert job["metrics"]["val_accuracy"] >= 0.9, job["metrics"]  # chance is 0.25

    version = client.get("/v1/models/colour/versions/1").json()
    meta = version["metadata"]
    assert meta["preprocessing"]["channels"] == 3 and meta["preprocessing"]["size"] == [12, 12]
    assert meta["labels"] == sorted(synthetic.LABELS) and meta["config"]["arch"] == "resnet"
    assert meta["weights"] == {"uri": f"runs/{job['id']}/weights.pt", "format": "torch-state-dict"}

    # fresh images through /predict: base64 in JSON, and one as a multipart file; some at another size
    xt, yt = colour(24, 12, seed=7)
    images = [png(img) if i % 3 else png(np.kron(img, np.ones((3, 3, 1), np.uint8))) for i, img in enumerate(xt)]
    r = client.post("/v1/models/colour/predict", params={"version": 1}, json={
        "inputs": [{"image": base64.b64encode(b).decode()} for b in images], "parameters": {"top_k": 2}})
    assert r.status_code == 200, r.text
    outputs = r.json()["outputs"]
    assert all(len(o["labels"]) == 2 for o in outputs)
    got = [synthetic.LABELS.index(o["labels"][0]["label"]) for o in outputs]
    assert np.mean(np.asarray(got) == yt) >= 0.9
    r = client.post("/v1/models/colour/predict", params={"version": 1}, files={"file": ("a.png", images[1])})
    assert r.status_code == 200 and r.json()["outputs"][0]["labels"][0]["label"] == synthetic.LABELS[yt[1]]

    # the registered ONNX file and the PyTorch weights kept beside it compute the same logits
    root = settings.resolved_artifact_root
    net = ResNet(3, 4, width=8, depth=8)
    net.load_state_dict(torch.load(root / meta["weights"]["uri"], weights_only=True))
    batch = np.random.default_rng(3).normal(size=(8, 3, 12, 12)).astype(np.float32)
    want = net.eval()(torch.from_numpy(batch)).detach().numpy()
    onnx_file = root / "models/colour/1/model.onnx"
    got = ort.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"]).run(None, {"input": batch})[0]
    np.testing.assert_allclose(got, want, atol=1e-4, rtol=1e-3)


@pytest.fixture
def first(client, settings):
    """A LeNet trained on the corner images, registered as corners:1 (alias production)."""
    job = train(client, settings, upload(client, synthetic.npz_bytes(n=160, size=16), "c.npz"), FAST, "corners")
    assert job["metrics"]["val_accuracy"] >= 0.9
    return job


def test_a_job_initialised_from_a_registered_version_starts_where_it_left_off(client, settings, first):
    # 8 training images, one optimiser step at a tiny learning rate: only the starting point differs
    few = upload(client, keras_npz(8, 80, seed=11), "few.npz")
    config = {"epochs": 1, "batch_size": 8, "lr": 1e-5, "width": 8}
    scratch = train(client, settings, few, config, "scratch")
    warm = train(client, settings, few, {**config, "init_from": "corners:1"}, "warm")
    assert warm["metrics"]["val_accuracy"] >= 0.9 and scratch["metrics"]["val_accuracy"] <= 0.6
    assert warm["metrics"]["init_tensors"] == 8 and warm["metrics"]["init_head_loaded"] == 1
    first_loss = {job["id"]: client.get(f"/v1/jobs/{job['id']}/metrics", params={"key": "loss"}).json()["items"][0]
                  ["value"] for job in (scratch, warm)}
    assert first_loss[warm["id"]] < 0.5 * first_loss[scratch["id"]]


def test_new_classes_get_a_new_head_on_the_loaded_frozen_backbone(client, settings, first):
    x, y = synthetic.images(80, 16, seed=21)
    halves = ["north", "south"]
    zipped = synthetic.zip_of({f"{halves[k // 2]}/{i}.png": png(img)
                               for i, (img, k) in enumerate(zip(x, y, strict=True))})
    job = train(client, settings, upload(client, zipped, "halves.zip"),
                {**FAST, "epochs": 1, "init_from": "corners@production", "freeze_backbone": True}, "halves")
    assert job["metrics"]["init_head_loaded"] == 0
    root = settings.resolved_artifact_root
    before = torch.load(root / f"runs/{first['id']}/weights.pt", weights_only=True)
    after = torch.load(root / f"runs/{job['id']}/weights.pt", weights_only=True)
    for key in ("conv1.weight", "conv2.weight", "fc1.weight", "fc1.bias"):  # frozen: exactly as loaded
        assert torch.equal(before[key], after[key]), key
    assert after["fc2.weight"].shape == (2, 128) and before["fc2.weight"].shape == (4, 128)
    assert client.get("/v1/models/halves/versions/1").json()["metadata"]["labels"] == halves


def test_a_weights_file_in_the_archive_initialises_the_job(client, settings):
    torch.manual_seed(0)
    net = LeNet(1, 4, (16, 16), 8)  # made outside dlserve
    weights = {k: v.contiguous() for k, v in net.state_dict().items()}
    path = settings.home / "w.safetensors"
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(weights, str(path))
    xs, ys = synthetic.images(8, 16, seed=41)
    members = {f"top/{synthetic.LABELS[k]}/{i}.png": png(img) for i, (img, k) in enumerate(zip(xs, ys, strict=True))}
    members["top/weights.safetensors"] = path.read_bytes()
    dataset = upload(client, synthetic.zip_of(members), "tl.zip")
    config = {"epochs": 1, "batch_size": 8, "lr": 1e-5, "width": 8, "crop_padding": 0}
    job = train(client, settings, dataset, {**config, "init_from": "weights.safetensors"}, "from-file")
    assert job["metrics"]["init_tensors"] == 8
    got = torch.load(settings.resolved_artifact_root / f"runs/{job['id']}/weights.pt", weights_only=True)
    assert torch.allclose(got["conv1.weight"], net.state_dict()["conv1.weight"], atol=1e-3)


def test_a_bad_init_from_is_a_422_at_submit_naming_it(client, settings, first):
    """These jobs were accepted, queued and failed on the worker; now nothing is queued."""
    few = upload(client, keras_npz(8, 16, seed=51), "few.npz")
    for ref, config, needles in [
        ("nosuch:1", {}, ["init_from: 'nosuch:1'", "nosuch"]),
        ("corners:7", {}, ["init_from: 'corners:7'", "no version 7"]),
        ("corners@staging", {}, ["init_from: 'corners@staging'", "no alias 'staging'"]),
        ("corners:1", {"arch": "resnet", "depth": 8}, ["trained with arch lenet", "this job has arch resnet"]),
        ("corners:1", {"width": 16}, ["width 8", "width 16", "would not fit"]),
        ("weights.pt", {}, ["init_from: 'weights.pt'", "single file"]),
    ]:
        r = client.post("/v1/jobs", json={"task": "classification", "dataset_id": few,
                                          "config": {**FAST, "epochs": 1, **config, "init_from": ref}})
        assert_problem(r, 422, "config.init_from", *needles)
    assert client.get("/v1/jobs", params={"status": "queued"}).json()["total"] == 0


def test_airbench_trains_through_the_api_and_serves_its_test_time_views(client, settings):
    x, y = colour(256, 16, seed=2)
    zipped = synthetic.zip_of({f"{synthetic.LABELS[k]}/{i}.png": png(img)
                               for i, (img, k) in enumerate(zip(x, y, strict=True))})
    dataset = upload(client, zipped, "air.zip")
    job = train(client, settings, dataset, {"arch": "airbench", "width": 16, "epochs": 6, "batch_size": 32,
                                            "lr": 0.15, "tta": "flip"}, "air")
    metrics = job["metrics"]
    assert metrics["val_accuracy"] >= 0.9 and "val_accuracy_one_view" in metrics, metrics
    config = client.get("/v1/models/air/versions/1").json()["metadata"]["config"]
    assert (config["optimizer"], config["nesterov"], config["scheduler"], config["tta"]) == (
        "sgd", True, "triangle", "flip")  # the recipe's keys, filled in, are recorded on the version

    xt, yt = colour(8, 16, seed=9)
    inputs = [{"image": base64.b64encode(png(img)).decode()} for img in (*xt, *xt[:, :, ::-1])]
    r = client.post("/v1/models/air/predict", json={"inputs": inputs, "parameters": {"top_k": 4}})
    assert r.status_code == 200, r.text
    outputs = [{d["label"]: d["score"] for d in o["labels"]} for o in r.json()["outputs"]]
    assert np.mean([max(o, key=o.get) == synthetic.LABELS[k] for o, k in zip(outputs[:8], yt, strict=True)]) >= 0.9
    for plain, mirrored in zip(outputs[:8], outputs[8:], strict=True):  # the graph averages an image and its mirror
        assert plain == pytest.approx(mirrored, abs=1e-5)
