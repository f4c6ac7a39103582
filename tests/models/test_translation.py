"""The translation family without the API: dataset parsing and its errors, vocabularies, the networks'
cached decoder step against a full recompute, and ONNX decoding (greedy and beam) against PyTorch."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch

from models.common import decoding, text
from models.common.errors import DatasetError, InputError, InputTooLarge, TableError
from models.translation import FAMILY, data, export, serving, training
from models.translation.config import Config
from models.translation.networks import LSTMSeq2Seq, Transformer
from tests.conftest import one_torch_thread
from tests.workers.synthetic import toy_pairs

TINY = {"d_model": 32, "layers": 1, "heads": 2, "ffn": 64, "dropout": 0.0, "tokenizer": "word", "vocab_size": 64}


@pytest.fixture(autouse=True, scope="module")
def one_thread_module():
    """Module-wide, so that the module-scoped models below train on one thread too."""
    with one_torch_thread():
        yield


def write(path: Path, content: str | bytes) -> Path:
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


# -- datasets ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("content, needles", [
    ("", ["line 1", "empty"]),
    ("\n\n", ["line 1", "blank"]),
    ("a b\tx y\nc d\te f\ng h no tab\n", ["line 3", "no tab"]),
    ("a b\tx y\n\t e f\n", ["line 2", "column 1 is empty"]),
    ("a b\tx y\nc d\t  \n", ["line 2", "column 2 is empty"]),
    (b"a b\tx y\n\xff\xfe\tz\n", ["line 2", "UTF-8"]),
])
def test_tsv_errors_name_the_line(tmp_path, content, needles):
    with pytest.raises(TableError) as e:
        data.validate(write(tmp_path / "pairs.txt", content), "parallel")
    for needle in needles:
        assert needle in str(e.value)


def test_tsv_anki_layout_with_columns(tmp_path):
    f = write(tmp_path / "fra.txt", "Run!\tCours !\tCC-BY 2.0 (France) Attribution\nWow!\tÇa alors !\tCC-BY\n\n")
    stats = data.validate(f, "parallel")
    assert stats["rows"] == 2 and stats["splits"] == {"train": 2} and stats["columns"] == 2
    corpus = data.read(f, "parallel", ["en", "fr"])
    assert corpus.texts["fr"] == ["Cours !", "Ça alors !"]
    assert data.pick(corpus, "fr", "en") == ("fr", "en") and data.pick(corpus, "en", None) == ("en", "fr")
    plain = data.read(f, "parallel")  # no columns: column 1 is the source, whatever the config names
    assert data.pick(plain, None, None) == data.pick(plain, "en", "fr") == ("1", "2")
    with pytest.raises(ValueError, match="'de' is not in the dataset"):
        data.pick(corpus, "de", "en")


def _archive(root: Path, files: dict[str, str]) -> Path:
    folder = root / "files" / "m30k"
    folder.mkdir(parents=True)
    for name, content in files.items():
        write(folder / name, content)
    return root / "files"


def test_archive_with_validation_split(tmp_path):
    folder = _archive(tmp_path, {"train.de": "ein hund\nzwei katzen\n\n", "train.en": "a dog\ntwo cats\n",
                                 "val.de": "ein hund\n", "val.en": "a dog\n"})
    assert data.validate(folder, "parallel")["splits"] == {"train": 2, "val": 1}
    corpus = data.read(folder, "parallel")
    assert corpus.langs == ["de", "en"] and corpus.val == {"de": ["ein hund"], "en": ["a dog"]}
    with pytest.raises(ValueError, match="set source_lang and target_lang"):
        data.pick(corpus, None, None)


@pytest.mark.parametrize("files, needles", [
    ({"train.de": "a\nb\nc\n", "train.en": "x\ny\n"}, ["train.en", "2 lines", "train.de has 3"]),
    ({"train.de": "", "train.en": "x\n"}, ["train.de", "is empty"]),
    ({"train.de": "a\n\nc\n", "train.en": "x\ny\nz\n"}, ["train.de", "line 2 is empty"]),
    ({"train.de": "a\n"}, ["train.<lang>", "train.de"]),
    ({"train.de": "a\n", "train.en": "x\n", "val.de": "a\n"}, ["val.de", "every language"]),
])
def test_archive_errors_name_the_file(tmp_path, files, needles):
    with pytest.raises(DatasetError) as e:
        data.validate(_archive(tmp_path, files), "parallel")
    for needle in needles:
        assert needle in str(e.value)


def test_guess_format_and_config_checks():
    assert data.guess_format("fra.txt") == "parallel" and data.guess_format("m30k.tar.gz") == "parallel"
    for bad, field in [({"heads": 3}, "heads"), ({"columns": "en"}, "columns"), ({"source_lang": "en",
                                                                                   "target_lang": "en"}, "target_lang"),
                       ({"vocab_size": 3}, "vocab_size"), ({"columns": "en,fr", "source_lang": "de"}, "source_lang")]:
        with pytest.raises(ValueError, match=field):
            Config(**bad)


# -- vocabularies ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["bpe", "unigram"])
def test_subword_tokenizer_round_trip(tmp_path, kind):
    texts = [s for s, _ in toy_pairs(200)] + ["Ein kleines Mädchen klettert in ein Spielhaus."] * 5
    tok = training.make_tokenizer(texts, Config(tokenizer=kind, vocab_size=80))
    assert [tok.token_to_id(s) for s in text.SPECIALS] == [text.PAD, text.BOS, text.EOS, text.UNK]
    text.save(tok, tmp_path / "t.json")
    tok = text.load(tmp_path / "t.json")
    for s in ["w1 w11 w3", "Ein kleines Mädchen klettert in ein Spielhaus."]:
        ids = text.encode(tok, s)
        assert ids and min(ids) > text.UNK and text.decode(tok, ids + [text.EOS, 7]) == s


# -- networks ----------------------------------------------------------------------------------------

def _nets() -> list[torch.nn.Module]:
    torch.manual_seed(0)
    return [Transformer(30, 25, 32, 2, 4, 64, 0.0, max_positions=64).eval(), LSTMSeq2Seq(30, 25, 32, 2, 0.0).eval()]


@pytest.mark.parametrize("net", _nets(), ids=["transformer", "lstm"])
def test_cached_step_equals_full_recompute_and_padding_changes_nothing(net):
    src = torch.tensor([[5, 6, 7, 2, 0, 0], [8, 9, 10, 11, 12, 2]])
    tgt = torch.tensor([[1, 5, 6, 7, 8, 9], [1, 9, 9, 4, 5, 6]])
    with torch.no_grad():
        teacher = torch.log_softmax(net(src, tgt), -1)
        static, cache = net.encode(src)
        cache = cache or net.empty_cache(2)
        first = dict(cache)
        for t in range(tgt.shape[1]):
            lp, cache = net.step(tgt[:, t], torch.tensor([t]), static, cache)
            torch.testing.assert_close(lp, net.full(tgt[:, :t + 1], static, first), atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(lp, teacher[:, t], atol=1e-5, rtol=1e-5)
        alone = torch.log_softmax(net(src[:1, :4], tgt[:1]), -1)  # the first row without its padding
    torch.testing.assert_close(alone, teacher[:1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("net", _nets(), ids=["transformer", "lstm"])
def test_onnx_decoding_reproduces_pytorch_greedy_and_beam(tmp_path, net):
    export.export(net, tmp_path)
    sources = [[5, 6, 7, 2], [8, 9, 10, 11, 12, 13, 2], [4, 2], [20, 21, 22, 23, 2]]
    parity = export.check_parity(net, tmp_path, sources)
    assert parity["examples"] == 4 and parity["max_score_diff"] <= 1e-3
    # the ONNX cache starts empty and grows by one position a step
    dec = ort.InferenceSession(str(tmp_path / "decoder.onnx"), providers=["CPUExecutionProvider"])
    shapes = {i.name: i.shape for i in dec.get_inputs()}
    assert shapes["token"] == ["batch"]
    if isinstance(net, Transformer):
        assert shapes["past_k"][0] == "batch" and shapes["past_k"][3] == "past_len"


def test_static_inputs_bound_on_the_device_decode_the_same_and_are_copied_only_when_rows_drop(tmp_path,
                                                                                               monkeypatch):
    """The path a CUDA session takes (the encoder's outputs bound once on the device, not copied every step),
    run here with the device "cpu": the same hypotheses and scores as plain run() calls."""
    net = _nets()[0]
    export.export(net, tmp_path)
    enc, dec = (ort.InferenceSession(str(tmp_path / f), providers=["CPUExecutionProvider"])
                for f in ("model.onnx", "decoder.onnx"))
    plain, bound = decoding.OnnxSeq2Seq(enc, dec), decoding.OnnxSeq2Seq(enc, dec, static_device="cpu")
    assert plain.static_device is None and plain.static_names == ["src_bias", "cross_k", "cross_v"]
    uploads, steps = [], []
    real_upload, real_run = ort.OrtValue.ortvalue_from_numpy, dec.run_with_iobinding
    monkeypatch.setattr(ort.OrtValue, "ortvalue_from_numpy", lambda *a: uploads.append(a[0].shape) or real_upload(*a))
    monkeypatch.setattr(dec, "run_with_iobinding", lambda b: steps.append(1) or real_run(b))
    src = export.pad_batch([[5, 6, 7, 2], [8, 9, 10, 11, 12, 13, 2], [4, 2], [20, 21, 22, 23, 2]])
    max_length = export.default_max_length(src)  # rows of different lengths finish (and drop out) at different steps
    for beam in (1, 3):
        options = decoding.Options(beam, min(beam, 2), 0.6)
        want = plain.decode({"src": src}, max_length, options)
        uploads.clear(), steps.clear()
        got = bound.decode({"src": src}, max_length, options)
        assert [[t for t, _ in row] for row in got] == [[t for t, _ in row] for row in want]
        np.testing.assert_allclose([[s for _, s in row] for row in got], [[s for _, s in row] for row in want],
                                   atol=1e-5)
        # the three static inputs are copied together: at the first step, then only when finished rows drop out
        rows = [shape[0] for shape in uploads[::3]]
        assert len(uploads) == 3 * len(rows) and rows == sorted(set(rows), reverse=True) and rows[0] == 4 * beam
        assert 1 < len(rows) < len(steps)


def test_only_a_session_on_cuda_binds_its_static_inputs_on_the_device():
    class Session:  # what OnnxSeq2Seq reads of a session to pick the device: its providers and their options
        def __init__(self, providers, options):
            self.get_providers, self.get_provider_options = lambda: providers, lambda: options

    on_gpu = Session(["CUDAExecutionProvider", "CPUExecutionProvider"], {"CUDAExecutionProvider": {"device_id": "1"}})
    assert decoding._device_of(on_gpu) == "cuda:1"
    assert decoding._device_of(Session(["CPUExecutionProvider"], {"CPUExecutionProvider": {}})) is None


def test_parity_check_catches_a_broken_export(tmp_path):
    net = _nets()[0]
    export.export(net, tmp_path)
    with torch.no_grad():
        net.out.weight.mul_(3.0)  # PyTorch now differs from the exported graphs
    with pytest.raises(export.ParityError):
        export.check_parity(net, tmp_path, [[5, 6, 7, 2], [8, 9, 2]])


# -- training, export and serving end to end (no API) -------------------------------------------------

@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tr")
    f = write(folder / "toy.txt", "".join(f"{s}\t{t}\n" for s, t in toy_pairs(400)))
    cfg = Config(**TINY, epochs=12, batch_size=16, warmup_steps=30, lr=5e-3, max_len=12)
    prepared = training.load_dataset(f, "parallel", cfg)
    model, metrics = training.train(cfg, prepared, "cpu", lambda step, m: None)
    return cfg, prepared, model, metrics, folder / "version"


def test_training_learns_and_exports_a_servable_version(trained):
    cfg, prepared, model, metrics, folder = trained
    assert metrics["val_loss"] < metrics["train_loss"] * 1.5 and metrics["epochs_run"] == 12
    scores = training.evaluate(model, prepared, "cpu")
    assert scores["bleu"] > 30, prepared.info["examples"]
    assert prepared.info["bleu_signature"].startswith("nrefs:1|case:mixed")
    signature = training.export_artifacts(model, folder, prepared)
    assert {p.name for p in folder.iterdir()} == {"model.onnx", *FAMILY.artifacts}  # what the family declares
    assert [o["name"] for o in signature["outputs"]] == ["tokens", "scores"]
    assert training.check_parity(model, folder, prepared)["examples"] >= 1
    meta = training.version_metadata(cfg, prepared)
    assert meta["max_source_tokens"] == 11 and meta["bleu_signature"]

    spec = serving.make_spec(signature, meta, folder=folder)
    open_session = lambda p: ort.InferenceSession(str(p), providers=["CPUExecutionProvider"])  # noqa: E731
    runner = serving.make_runner(open_session(folder / "model.onnx"), folder, spec, open_session)
    runner(serving.warmup_feeds(spec, 3))
    params = serving.check_params({"beam_size": 4, "n_best": 2})
    rows = [serving.preprocess({"text": s}, i, params, spec) for i, s in enumerate(["w1 w2 w3", "w4 w5"])]
    # the batcher pads src to the longest row; here by hand
    width = max(r["src"].shape[1] for r in rows)
    feeds = {k: np.concatenate([np.pad(r[k], ((0, 0), (0, width - r[k].shape[1]))) if k == "src" else r[k]
                                for r in rows]) for k in rows[0]}
    out = runner(feeds)
    answers = [serving.postprocess({k: v[i:i + 1] for k, v in out.items()}, params, spec) for i in range(2)]
    assert answers[0]["translation"] == "v1 v2 v3" and answers[1]["translation"] == "v4 v5"
    assert len(answers[0]["n_best"]) == 2 and answers[0]["n_best"][0]["score"] >= answers[0]["n_best"][1]["score"]

    with pytest.raises(InputError, match="empty"):
        serving.preprocess({"text": "  "}, 0, params, spec)
    with pytest.raises(InputTooLarge, match="limit of 11 tokens"):
        serving.preprocess({"text": " ".join(["w1"] * 12)}, 1, params, spec)
    with pytest.raises(InputError, match="beam_size"):
        serving.check_params({"beam_size": 0})
    with pytest.raises(InputError, match="n_best"):
        serving.check_params({"beam_size": 2, "n_best": 3})
    with pytest.raises(InputError, match="unknown option"):
        serving.check_params({"top_k": 3})


def test_the_lstm_arch_trains_exports_and_matches_onnx(tmp_path):
    f = write(tmp_path / "toy.txt", "".join(f"{s}\t{t}\n" for s, t in toy_pairs(300, seed=1)))
    cfg = Config(**{**TINY, "arch": "lstm"}, epochs=8, batch_size=16, warmup_steps=30, lr=5e-3, max_len=12)
    prepared = training.load_dataset(f, "parallel", cfg)
    model, _ = training.train(cfg, prepared, "cpu", lambda step, m: None)
    assert training.evaluate(model, prepared, "cpu")["bleu"] > 30, prepared.info["examples"]
    training.export_artifacts(model, tmp_path / "v", prepared)
    assert training.check_parity(model, tmp_path / "v", prepared)["max_score_diff"] <= 1e-3


def test_training_resumes_from_its_checkpoint(tmp_path):
    f = write(tmp_path / "toy.txt", "".join(f"{s}\t{t}\n" for s, t in toy_pairs(100)))
    cfg = Config(**TINY, epochs=2, batch_size=16, warmup_steps=5, max_len=12)
    prepared = training.load_dataset(f, "parallel", cfg)
    states: list[dict] = []
    whole, _ = training.train(cfg, prepared, "cpu", lambda step, m: None,
                              checkpoint=lambda s: states.append(copy.deepcopy(s)))
    resumed, metrics = training.train(cfg, prepared, "cpu", lambda step, m: None, resume=states[0])
    assert metrics["epochs_run"] == 2
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, msg=name)
