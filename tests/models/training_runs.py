"""Seeded tiny training runs of every family, recorded the way the worker sees them (issue 18: behaviour
kept, proven). A run goes as in workers/runner.py: load_dataset from files on disk, train with a report
and a checkpoint callback (each checkpoint through torch.save and torch.load(weights_only=True), as the
worker keeps it), then evaluate and version_metadata. The record holds every report call, the
checkpoints' (epoch, step), the metrics train returns and evaluate's, and a digest of the weights.

tests/models/golden/<case>.json holds the record each case made before the training code was
refactored; test_training_golden.py compares runs against them bit for bit. To record again (only when
a change of behaviour is intended, and say so in the commit):

    PYTHONPATH=$PWD .venv/bin/python -m tests.models.training_runs [case ...]
"""

from __future__ import annotations

import hashlib
import io
import json
import platform
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app import examples
from models import family

GOLDEN = Path(__file__).parent / "golden"


class Interrupted(Exception):
    """Raised from the checkpoint callback: the worker dies right after writing that checkpoint."""


def _unzip(blob: bytes, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(io.BytesIO(blob)) as z:
        z.extractall(folder)
    return folder


def corners_npz(folder: Path) -> tuple[Path, str]:
    x, y = examples.corner_images(80, 12, seed=3)
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    (folder / "corners.npz").write_bytes(buf.getvalue())
    return folder / "corners.npz", "npz"


def corners_npz_16(folder: Path) -> tuple[Path, str]:
    x, y = examples.corner_images(48, 16, seed=4)
    x = np.repeat(x[..., None], 3, axis=-1)  # colour, so that airbench's flips are on
    buf = io.BytesIO()
    np.savez(buf, x=x, y=y)
    (folder / "corners.npz").write_bytes(buf.getvalue())
    return folder / "corners.npz", "npz"


def squares_coco(folder: Path) -> tuple[Path, str]:
    return _unzip(examples.squares_coco_zip(n=12, seed=1), folder / "squares"), "coco"


def canvases_coco(folder: Path) -> tuple[Path, str]:
    from models.captioning import synthetic

    x, caps = synthetic.canvases(36, "shapes", 16, seed=1)
    both = [[c, c.replace("a ", "one ", 1)] for c in caps]
    return _unzip(synthetic.coco_archive(x, both), folder / "canvases"), "coco"


def numbers_tsv(folder: Path) -> tuple[Path, str]:
    pairs = examples.number_pairs(120, seed=2)
    (folder / "numbers.tsv").write_text("".join(f"{en}\t{fr}\n" for en, fr in pairs))
    return folder / "numbers.tsv", "parallel"


def ratings_csv(folder: Path) -> tuple[Path, str]:
    rows = examples.ratings(users=30, items=24, seed=1)
    (folder / "ratings.csv").write_text("user,item,rating,timestamp\n"
                                        + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows))
    return folder / "ratings.csv", "csv"


def transactions(folder: Path) -> tuple[Path, str]:
    (folder / "transactions.csv").write_bytes(examples.transactions_csv(300, fraud_share=0.15, seed=2))
    return folder / "transactions.csv", "csv"


def lenet_weights() -> dict[str, Any]:
    """A state dict of a LeNet of the classification case's shape (1 channel, 12x12, width 8), as init_from."""
    import torch

    from models.classification.networks import LeNet

    torch.manual_seed(123)
    return LeNet(1, 4, (12, 12), 8).state_dict()


def captioning_backbone() -> dict[str, Any]:
    import torch

    from models.classification.networks import LeNet

    torch.manual_seed(321)
    return LeNet(1, 10, (28, 28), width=4).state_dict()


TINY_TRANSLATION = {"d_model": 32, "layers": 1, "heads": 2, "ffn": 64, "tokenizer": "word", "vocab_size": 64,
                    "batch_size": 16, "warmup_steps": 5, "max_len": 12, "lr": 5e-3}
TINY_CAPTIONING = {"batch_size": 16, "width": 4, "depth": 8, "hidden": 16, "embed_dim": 8, "attention_dim": 8,
                   "max_length": 12, "lr": 1e-2}


@dataclass(frozen=True)
class Case:
    name: str
    task: str
    config: dict[str, Any]
    dataset: Callable[[Path], tuple[Path, str]]
    init: Callable[[], dict[str, Any]] | None = None
    interrupt_after: tuple[int, ...] = field(default=(0,))  # checkpoint indices the resume test stops after


CASES = [
    # early stopping: val_accuracy stops improving, the best epoch's weights are kept
    Case("classification-lenet-patience", "classification",
         {"epochs": 8, "batch_size": 16, "lr": 0.002, "width": 8, "patience": 2, "val_fraction": 0.25}, corners_npz,
         interrupt_after=(0, 1)),
    # one step an epoch, so that the look-ahead average starts (epoch 3) and updates; test-time views
    Case("classification-airbench", "classification",
         {"arch": "airbench", "epochs": 6, "batch_size": 5120, "width": 8}, corners_npz_16, interrupt_after=(3,)),
    Case("classification-init-frozen", "classification",
         {"epochs": 2, "batch_size": 16, "width": 8, "init_from": "lenet.pt", "freeze_backbone": True,
          "flip": True, "crop_padding": 1}, corners_npz, init=lenet_weights),
    Case("detection", "detection",
         {"epochs": 4, "batch_size": 4, "lr": 0.01, "image_size": 32, "width": 8, "warmup_steps": 3,
          "translate": 0.1},
         squares_coco, interrupt_after=(1,)),
    Case("captioning", "captioning", {**TINY_CAPTIONING, "epochs": 2, "dropout": 0.2}, canvases_coco),
    Case("captioning-init", "captioning",
         {**TINY_CAPTIONING, "epochs": 2, "init_from": "backbone.pt", "scheduler": "onecycle", "grad_clip": 1.0},
         canvases_coco, init=captioning_backbone),
    Case("translation-transformer", "translation", {**TINY_TRANSLATION, "epochs": 3, "dropout": 0.1},
         numbers_tsv, interrupt_after=(1,)),
    Case("translation-lstm", "translation",
         {**TINY_TRANSLATION, "arch": "lstm", "epochs": 2, "dropout": 0.1, "scheduler": "cosine"}, numbers_tsv),
    Case("recommendation-bpmf", "recommendation", {"epochs": 30, "factors": 3, "samples": 5, "burn_in": 10},
         ratings_csv),
    Case("recommendation-mf", "recommendation", {"arch": "mf", "epochs": 3, "factors": 4}, ratings_csv,
         interrupt_after=(1,)),
    Case("recommendation-rbm", "recommendation", {"arch": "rbm", "epochs": 3, "batch_size": 8, "hidden": 16},
         ratings_csv, interrupt_after=(1,)),
    # two phases (autoencoder, then classifier): stopped at the phase boundary and inside the second
    Case("fraud-hybrid", "fraud", {"arch": "hybrid", "epochs": 2, "batch_size": 32}, transactions,
         interrupt_after=(1, 2)),
    Case("fraud-denoising", "fraud", {"arch": "denoising_autoencoder", "epochs": 2, "batch_size": 32},
         transactions),
]
BY_NAME = {c.name: c for c in CASES}


def _plain(value: Any) -> Any:
    """numpy scalars and arrays -> Python, so that a record is JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def weights_digest(model: Any) -> str:
    h = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        h.update(name.encode())
        h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def _saved(state: dict[str, Any]) -> dict[str, Any]:
    """What the worker reads back: torch.save, then torch.load(weights_only=True)."""
    import torch

    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def prepared(case: Case, folder: Path) -> tuple[Any, Any]:
    """-> (config, the loaded dataset), as the worker has them before training."""
    contract = family(case.task)
    cfg = contract.config(**case.config)
    folder.mkdir(parents=True, exist_ok=True)
    path, fmt = case.dataset(folder)
    return cfg, contract.training.load_dataset(path, fmt, cfg)


_versions: dict[str, tuple[Any, Any, Any, Path]] = {}
# a translation model trained one epoch at the case's rate has learnt to stop at once (every translation
# empty); near its random start it writes words, which the evaluation tests compare
TINY_VERSION = {"translation": {"lr": 1e-6}}


def tiny_version(task: str) -> tuple[Any, Any, Any, Path]:
    """-> (config, data, model, version folder): the family's first case trained one epoch (bpmf as the
    case: it keeps draws after its burn-in) and exported as the worker registers it, made once per test
    session and shared (the calibration and the ONNX Runtime evaluation tests read it; none changes it)."""
    import atexit
    import dataclasses
    import shutil

    if task not in _versions:
        case = next(c for c in CASES if c.task == task)
        training, multi_file = family(task).training, family(task).multi_file
        folder = Path(tempfile.mkdtemp(prefix=f"tiny-{task}-"))
        atexit.register(shutil.rmtree, folder, True)
        short = {} if task == "recommendation" else {"epochs": 1, **TINY_VERSION.get(task, {})}
        cfg, data = prepared(dataclasses.replace(case, config={**case.config, **short}), folder / "data")
        model, _ = training.train(cfg, data, "cpu", lambda step, metrics: None,
                                  **({"init": case.init()} if case.init else {}))
        (folder / "version").mkdir()
        if multi_file:
            training.export_artifacts(model, folder / "version", data)
        else:
            training.export_onnx(model, folder / "version" / "model.onnx", data)
        _versions[task] = (cfg, data, model, folder / "version")
    return _versions[task]


def run(case: Case, folder: Path, interrupt_after: int | None = None,
        resume: dict[str, Any] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """-> (record, checkpoints). interrupt_after=k: stops right after the k-th checkpoint (record None)."""
    import torch

    torch.set_num_threads(1)
    # as a fresh worker process has it: a run before may have turned oneDNN off (models/common/onednn.py),
    # and the LSTM kernels differ in the last bits with it on and off
    torch.backends.mkldnn.enabled = True
    training = family(case.task).training
    cfg, data = prepared(case, folder)
    reports: list[list[Any]] = []
    checkpoints: list[dict[str, Any]] = []

    def report(step: int, metrics: dict[str, float]) -> None:
        reports.append([step, [[k, float(v)] for k, v in metrics.items()]])

    def checkpoint(state: dict[str, Any]) -> None:
        checkpoints.append(_saved(state))
        if interrupt_after is not None and len(checkpoints) > interrupt_after:
            raise Interrupted

    init = case.init() if case.init is not None and resume is None else None
    kwargs = {"init": init} if init is not None else {}
    try:
        model, train_metrics = training.train(cfg, data, "cpu", report, checkpoint=checkpoint, resume=resume,
                                              **kwargs)
    except Interrupted:
        return {"reports": reports}, checkpoints
    metrics = training.evaluate(model, data, "cpu")
    record = {
        "total_steps": training.total_steps(cfg, data),
        "reports": reports,
        "checkpoints": [[c["epoch"], c["step"]] for c in checkpoints],
        "train_metrics": _plain(train_metrics),
        "metrics": _plain(metrics),
        "weights": weights_digest(model),
        "metadata": _plain(training.version_metadata(cfg, data)),
    }
    return json.loads(json.dumps(record)), checkpoints


def environment() -> dict[str, str]:
    """What bit-for-bit equality depends on besides the code: the same kernels on the same instructions. The
    capability torch reports is not enough: an Intel and an AMD AVX-512 machine differ in the last bit (seen
    2026-12-05: a Xeon against the EPYC records of golden/avx512-authenticamd/), so the vendor and the vector
    instruction flags the kernels may dispatch on are part of it."""
    import torch

    vendor, flags = _cpuinfo()
    return {"torch": torch.__version__, "numpy": np.__version__, "cpu": torch.backends.cpu.get_cpu_capability(),
            "vendor": vendor, "isa": " ".join(sorted(f for f in flags if f.startswith(("avx", "amx", "fma"))))}


def _cpuinfo() -> tuple[str, list[str]]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or "unknown", []
    first = {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in lines[:40])}
    return first.get("vendor_id", "unknown"), first.get("flags", "").split()


def matches(recorded: dict[str, str], here: dict[str, str]) -> bool:
    """A record holds the keys known when it was made: the AVX2 originals predate the vendor (they have
    compared on every AVX2 machine CI has drawn so far), the AMD records the instruction flags."""
    return all(here.get(k) == v for k, v in recorded.items())


def canonical(value: Any) -> Any:
    """Floats as their exact hex (NaN equal to NaN), so that == compares bits."""
    if isinstance(value, float):
        return value.hex()
    if isinstance(value, dict):
        return {k: canonical(v) for k, v in value.items()}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def _record_files(case: Case) -> list[Path]:
    """golden/<case>.json (made on the AVX2 VM before the training code was refactored), then the records
    made since on other instruction sets and vendors, golden/<cpu>-<vendor>/<case>.json."""
    return [f for f in (GOLDEN / f"{case.name}.json", *sorted(GOLDEN.glob(f"*/{case.name}.json"))) if f.exists()]


def golden(case: Case) -> dict[str, Any]:
    """The record made where this machine's kernels are the same (environment()), else the original."""
    records = [json.loads(f.read_text()) for f in _record_files(case)]
    here = environment()
    return next((r for r in records if matches(r["environment"], here)), records[0])


def write(names: list[str]) -> None:
    GOLDEN.mkdir(exist_ok=True)
    for case in [BY_NAME[n] for n in names] if names else CASES:
        started = time.monotonic()
        with tempfile.TemporaryDirectory() as tmp:
            record, _ = run(case, Path(tmp))
        # the original where it was made on these kernels (or there is none), else a record of this CPU's own
        original, here = GOLDEN / f"{case.name}.json", environment()
        made_here = not original.exists() or matches(json.loads(original.read_text())["environment"], here)
        path = original if made_here else GOLDEN / f"{here['cpu']}-{here['vendor']}".lower() / original.name
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps({"environment": here, "record": record}, indent=1) + "\n")
        print(f"{case.name}: {len(record['reports'])} reports, {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    write(sys.argv[1:])
