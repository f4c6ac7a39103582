"""Machine-learning code only: one package per task family. Imports nothing of dlserve's app or workers.

FAMILIES is the one place the rest of the system learns which tasks exist. Each family package
exposes the same small face (see ../shared/DESIGN.md); until a family's package lands its entry is
None, which still lets the registry accept and serve ONNX models of that task uploaded from outside.
"""

from __future__ import annotations

from types import ModuleType

FAMILIES: dict[str, ModuleType | None] = {
    "classification": None,
    "detection": None,
    "captioning": None,
    "translation": None,
    "recommendation": None,
    "fraud": None,
}

TASKS: tuple[str, ...] = tuple(FAMILIES)
