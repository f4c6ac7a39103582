"""Machine-learning code only: one package per task family. Imports nothing of dlserve's app or workers.

FAMILIES is the one place the rest of the system learns which tasks exist; `family(task)` gives a
family's contract (models/contract.py), which declares what the family can do. A family package
`models/<task>/` is split by what each side of the system may import:

    serving.py   numpy/Pillow/tokenizers only (the API process never imports torch):
                 make_spec(signature, metadata, max_pixels) -> spec;  check_params(params) -> params
                 preprocess(item, index, params, spec) -> feeds [1, ...] (or (feeds, context))
                 postprocess(row, params, spec[, context]) -> response dict;  optional batch_padding(spec)
                 encoder-decoder families add make_runner(...) and warmup_feeds(spec, rows), and their
                 make_spec takes folder= (see models/common/decoding.py)
    data.py      numpy/Pillow only (the API validates uploads with it): load/validate dataset formats
    config.py    stdlib only (the API validates job configs with it): the Config dataclass
    training.py  torch (workers only): load_dataset, total_steps, train, evaluate, version_metadata, and
                 export_onnx + example_inputs, or for encoder-decoders export_artifacts + check_parity

A task whose package has not landed yet (None below) can still hold ONNX models uploaded from
outside; it is served through the Open Inference Protocol only.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from models.contract import Family

FAMILIES: dict[str, str | None] = {
    "classification": "models.classification",
    "detection": "models.detection",
    "captioning": "models.captioning",
    "translation": "models.translation",
    "recommendation": "models.recommendation",
    "fraud": "models.fraud",
}

TASKS: tuple[str, ...] = tuple(FAMILIES)


def family(task: str) -> Family | None:
    """The family's contract (models/contract.py: `FAMILY` in its package), or None for a task without one."""
    package = FAMILIES.get(task)
    return None if package is None else importlib.import_module(package).FAMILY


def family_part(task: str, part: str) -> ModuleType | None:
    """models.<task>.<part> (serving, data, config or training), or None where the family has no such part yet."""
    package = FAMILIES.get(task)
    if package is None:
        return None
    try:
        return importlib.import_module(f"{package}.{part}")
    except ModuleNotFoundError as e:
        if e.name == f"{package}.{part}":
            return None
        raise
