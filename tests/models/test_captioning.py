"""The captioning family without the API: dataset formats and their errors, metrics on known inputs,
init_from a classification backbone, and ONNX decoding (served path) against PyTorch decoding."""

from __future__ import annotations

import base64
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from app import examples
from models.captioning import FAMILY, serving, synthetic, training
from models.captioning import data as D
from models.captioning.config import Config
from models.captioning.metrics import caption_scores
from models.captioning.networks import load_encoder
from models.classification.networks import LeNet, ResNet
from models.common import text
from models.common.errors import DatasetError, InputError

pytestmark = pytest.mark.usefixtures("one_thread")


def png(value: int = 0, size: int = 16) -> bytes:
    return examples.png(np.full((size, size), value, np.uint8))


def write(root: Path, files: dict[str, bytes | str]) -> Path:
    for name, content in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def coco(images: list[tuple[int, str]], anns: list[tuple[int, str]]) -> str:
    return json.dumps({"images": [{"id": i, "file_name": f} for i, f in images],
                       "annotations": [{"id": k, "image_id": i, "caption": c} for k, (i, c) in enumerate(anns)]})


def test_coco_captions_are_read_beside_an_instances_json(tmp_path):
    write(tmp_path, {"annotations/captions_train.json": coco([(1, "a.png"), (2, "b.png")],
                                                             [(1, "A cat."), (1, "a CAT!"), (2, "a dog")]),
                     "annotations/instances_train.json": json.dumps({"images": [], "annotations": [{"bbox": [0]}],
                                                                     "categories": []}),
                     "train/a.png": png(10), "train/b.png": png(200)})
    parsed = D.parse(tmp_path, "coco")
    assert [r.entry for r in parsed.train] == ["train/a.png", "train/b.png"]
    assert parsed.train[0].captions == ["A cat.", "a CAT!"] and parsed.val is None
    stats = D.validate(tmp_path, "coco")
    assert stats["images"] == 2 and stats["captions"] == 3 and stats["grey_images"] == 2
    train, val = D.load(tmp_path, "coco", size=8)
    assert train.images.shape == (2, 8, 8, 1) and val is None
    assert D.normalise("A  CAT, on the mat!") == "a cat on the mat"


def test_flickr8k_token_file(tmp_path):
    write(tmp_path, {"Flickr8k.token.txt": "a.jpg#0\tA dog runs .\na.jpg#1\tA dog .\nb.jpg#0\tTwo cats\n",
                     "Flicker8k_Dataset/a.jpg": png(), "Flicker8k_Dataset/b.jpg": png(255)})
    parsed = D.parse(tmp_path, "flickr8k")
    assert [(r.entry, len(r.captions)) for r in parsed.train] == [("Flicker8k_Dataset/a.jpg", 2),
                                                                   ("Flicker8k_Dataset/b.jpg", 1)]


@pytest.mark.parametrize("fmt, files, needles", [
    ("coco", {"c.json": coco([(1, "a.png"), (2, "b.png")], [(1, "a cat")]), "a.png": png(), "b.png": png()},
     ["c.json: images[1]", "'b.png' (id 2) has no caption"]),
    ("coco", {"c.json": coco([(1, "a.png")], [(1, "a cat"), (7, "a dog")]), "a.png": png()},
     ["c.json: annotations[1]", "image_id 7"]),
    ("coco", {"c.json": coco([(1, "a.png"), (2, "gone.png")], [(1, "a cat"), (2, "x")]), "a.png": png()},
     ["c.json: images[1]", "'gone.png' (id 2) is not in the archive"]),
    ("coco", {"c.json": coco([(1, "a.png")], [(1, "  ... ")]), "a.png": png()}, ["annotations[0]", "empty"]),
    ("coco", {"a.png": png()}, ["no COCO captions JSON"]),
    ("flickr8k", {"t.txt": "a.png#0\ta cat\nb.png#0\ta dog\n", "a.png": png()},
     ["t.txt: line 2", "image 'b.png', which is not in the archive"]),
    ("flickr8k", {"t.txt": "a.png#0\ta cat\n", "a.png": png(), "img/c.png": png()},
     ["entry 'img/c.png'", "without captions"]),
    ("flickr8k", {"t.txt": "a.png#0\ta cat\nnonsense line\n", "a.png": png()}, ["t.txt: line 2", "expected"]),
    ("flickr8k", {"a.png": png()}, ["no Flickr8k token file"]),
])
def test_bad_datasets_name_the_entry(tmp_path, fmt, files, needles):
    with pytest.raises(DatasetError) as e:
        D.parse(write(tmp_path, files), fmt)
    for needle in needles:
        assert needle in str(e.value)


def test_an_unreadable_image_is_named(tmp_path):
    write(tmp_path, {"c.json": coco([(1, "a.png"), (2, "bad.png")], [(1, "a"), (2, "b")]), "a.png": png(),
                     "bad.png": b"not an image"})
    with pytest.raises(DatasetError, match=r"entry 'bad.png': not a decodable image"):
        D.validate(tmp_path, "coco")


def test_metrics_on_known_inputs():
    perfect = caption_scores(["a cat sat on the mat", "two dogs run in a park"],
                             [["A cat sat on the mat."], ["Two dogs run in a park!"]])
    assert all(perfect[f"bleu_{n}"] == pytest.approx(1.0, abs=1e-6) for n in range(1, 5))
    assert perfect["cider"] > 5  # CIDEr-D is scaled by 10: identical captions score 10 (before the length penalty)
    wrong = caption_scores(["x y z", "q r s"], [["a cat sat on the mat"], ["two dogs run"]])
    assert wrong["bleu_1"] == pytest.approx(0.0, abs=1e-6) and wrong["cider"] == pytest.approx(0.0, abs=1e-6)
    half = caption_scores(["a cat"], [["a dog"]])
    assert half["bleu_1"] == pytest.approx(0.5, abs=1e-6) and half["bleu_2"] < 1e-3


def test_config_errors_name_the_field():
    with pytest.raises(ValueError, match="freeze_backbone needs init_from"):
        Config(freeze_backbone=True)
    with pytest.raises(ValueError, match="max_length"):
        Config(max_length=0)


def _tiny(tmp_path: Path, arch: str = "lenet", n: int = 40):
    x, caps = synthetic.canvases(n, "shapes", 16, seed=1)
    loaded = D.Loaded(x[..., None], [[c, c.replace("a ", "one ", 1)] for c in caps], [str(i) for i in range(n)])
    cfg = Config(epochs=1, batch_size=16, arch=arch, width=4, depth=8, hidden=16, embed_dim=8, attention_dim=8,
                 max_length=12)
    return cfg, training.prepare(cfg, loaded)


def test_init_from_a_classification_backbone(tmp_path):
    cfg, data = _tiny(tmp_path)
    lenet = LeNet(1, 10, (28, 28), width=4)  # fc1's size differs: only the convolutions are the backbone
    model = training.build(cfg, data)
    info = load_encoder(model, lenet.state_dict())
    assert info == {"init_tensors": 4, "init_decoder_loaded": 0}
    assert torch.equal(model.encoder.backbone.conv2.weight, lenet.conv2.weight)
    with pytest.raises(ValueError, match="conv1.weight.*same arch, width"):
        load_encoder(model, LeNet(1, 10, (28, 28), width=8).state_dict())
    with pytest.raises(ValueError, match="no tensor 'conv1.weight'"):
        load_encoder(model, ResNet(1, 10, 4, 8).state_dict())
    trained, metrics = training.train(cfg, data, "cpu", lambda s, m: None, init=lenet.state_dict())
    assert metrics["init_tensors"] == 4


@pytest.mark.parametrize("arch", ["lenet", "resnet"])
def test_onnx_decoding_reproduces_pytorch_decoding(tmp_path, arch):
    cfg, data = _tiny(tmp_path, arch)
    # a few steps, so that the next word is not a coin toss between near-equal log-probabilities
    model, _ = training.train(replace(cfg, epochs=3, lr=1e-2), data, "cpu", lambda s, m: None)
    signature = training.export_artifacts(model, tmp_path, data)
    assert {p.name for p in tmp_path.iterdir()} == {"model.onnx", *FAMILY.artifacts}  # what the family declares
    parity = training.check_parity(model, tmp_path, data)
    assert parity["examples"] == 4 and parity["max_score_diff"] < 1e-3

    # the served path: base64 images -> preprocess -> stacked rows -> OnnxSeq2Seq -> postprocess
    meta = training.version_metadata(replace(cfg, length_penalty=2.0), data)  # served by default
    assert meta["decoding"] == {"beam_size": cfg.eval_beam_size, "length_penalty": 2.0}
    spec = serving.make_spec(signature, meta, folder=tmp_path)
    open_ = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])  # noqa: E731
    run = serving.make_runner(open_(tmp_path / "model.onnx"), tmp_path, spec, open_)
    images = data.val.images[:, :, :, 0]
    for beam, n_best in ((1, 1), (4, 3)):
        params = serving.check_params({"beam_size": beam, "n_best": n_best})
        items = []
        for img in images:
            items.append({"image": base64.b64encode(examples.png(img)).decode()})
        feeds = [serving.preprocess(item, i, params, spec) for i, item in enumerate(items)]
        stacked = {k: np.concatenate([f[k] for f in feeds]) for k in feeds[0]}
        out = run(stacked)
        assert not np.isin(out["tokens"], [text.PAD, text.BOS, text.UNK]).any()  # never written
        want = training.generate(model, data, data.val.images, "cpu", beam_size=beam, n_best=n_best,
                                 length_penalty=2.0, reference=True)
        for i, hyps in enumerate(want):
            row = {k: v[i:i + 1] for k, v in out.items()}
            got = serving.postprocess(row, params, spec)
            assert got["caption"] == text.decode(data.tokenizer, hyps[0][0])
            assert got["score"] == pytest.approx(hyps[0][1], abs=1e-4)
            if n_best > 1:
                assert [g["caption"] for g in got["n_best"]] == [text.decode(data.tokenizer, t) for t, _ in hyps]
    warm = serving.warmup_feeds(spec, 2)
    assert run(warm)["tokens"].shape[0] == 2


def test_serving_parameters_are_checked():
    assert serving.check_params({}) == {"n_best": 1}
    assert serving.check_params({"length_penalty": 2}) == {"n_best": 1, "length_penalty": 2.0}
    for params, field in [({"beam_size": 0}, "parameters.beam_size"), ({"beam_size": 2, "n_best": 3}, "n_best"),
                          ({"length_penalty": -1}, "length_penalty"), ({"top_k": 1}, "unknown option")]:
        with pytest.raises(InputError, match=field):
            serving.check_params(params)


def test_baselines_and_most_frequent_caption():
    refs = [["a dog runs"], ["a dog runs"], ["a cat"], ["the big red zebra jumps"]]
    assert training.most_frequent_caption(refs) == "a dog runs"
    assert training.most_frequent_caption([["a dog"], ["a cat"], ["zebra x"]]) in ("a dog", "a cat")
