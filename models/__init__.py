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
    schemas.py   pydantic only: the predict contract (one input item, the parameters, one output item)
    training.py  torch (workers only): load_dataset, total_steps, train, evaluate, version_metadata, and
                 export_onnx + example_inputs, or for encoder-decoders export_artifacts + check_parity

Families outside this folder are added with `register(task, package)`, which the API, `dlserve serve` and
the worker call at start (`register_all`) for each `task=package` pair of the DLSERVE_FAMILIES setting and
for each entry point `task = package` of the group `dlserve.families` that installed distributions declare
(models/entry_points.py); a task the setting names is taken from the setting. TASKS is a live view of
FAMILIES, so modules that imported it earlier (OpenAPI enums, the registry's task check) see a family
registered later. docs/families.md walks through a family plugged in either way.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from models.entry_points import GROUP, offered

if TYPE_CHECKING:
    from models.contract import Family

FAMILIES: dict[str, str] = {
    "classification": "models.classification",
    "detection": "models.detection",
    "captioning": "models.captioning",
    "translation": "models.translation",
    "recommendation": "models.recommendation",
    "fraud": "models.fraud",
}

BUILT_IN = frozenset(FAMILIES)
_TASK_NAME = re.compile(r"[a-z][a-z0-9_-]{0,63}")


class _Tasks(Sequence[str]):
    """The task names, in registration order; reads FAMILIES on every use."""

    def __len__(self) -> int:
        return len(FAMILIES)

    def __getitem__(self, i):  # type: ignore[override]
        return tuple(FAMILIES)[i]

    def __iter__(self) -> Iterator[str]:
        return iter(tuple(FAMILIES))

    def __contains__(self, task: object) -> bool:
        return task in FAMILIES

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


TASKS: Sequence[str] = _Tasks()


class FamilyError(ValueError):
    """A family that cannot be registered; the message is one line, naming the setting's or entry point's entry."""


class NoSuchFamily(LookupError):
    """A task no family is registered for in this process (a version of a family since unregistered)."""


def register(task: str, package: str) -> None:
    """Adds the family in `package` (an importable Python package declaring `FAMILY`) under `task`.
    Registering the same pair again does nothing; a task already taken by another package is refused."""
    try:
        _register(task, package)
    except FamilyError as e:
        raise FamilyError(f"{task}={package}: {e}") from None


def _register(task: str, package: str) -> None:
    if not _TASK_NAME.fullmatch(task):
        raise FamilyError(f"{task!r} is not a task name (lower-case letters, digits, '_' or '-', at most 64)")
    if FAMILIES.get(task) == package:
        return
    if task in FAMILIES:
        raise FamilyError(f"task {task!r} is already served by {FAMILIES[task]}")
    try:
        module = importlib.import_module(package)
    except Exception as e:
        raise FamilyError(f"the package cannot be imported ({type(e).__name__}: {e})") from e
    contract = getattr(module, "FAMILY", None)
    from models.contract import Family

    if not isinstance(contract, Family):
        raise FamilyError("the package declares no FAMILY = models.contract.Family(...)")
    if contract.task != task or contract.package != package:
        raise FamilyError(f"its FAMILY says task {contract.task!r} in {contract.package!r}")
    FAMILIES[task] = package


def parse(value: str) -> list[tuple[str, str]]:
    """'task=package,task=package' -> pairs; FamilyError on an entry that is not of that shape."""
    pairs = []
    for entry in (e.strip() for e in value.split(",")):
        if not entry:
            continue
        task, sep, package = (p.strip() for p in entry.partition("="))
        if not sep or not task or not package:
            raise FamilyError(f"{entry!r} is not task=python.package")
        pairs.append((task, package))
    return pairs


def register_all(setting: str) -> None:
    """Registers every pair of a DLSERVE_FAMILIES value, then every `dlserve.families` entry point of the
    installed distributions whose task the setting does not name (the setting wins: it is how an operator
    puts another package in place of an installed one). Raises FamilyError, one line naming the setting or
    the entry point and its distribution; two distributions offering one task a different package clash."""
    try:
        pairs = parse(setting)
        for task, package in pairs:
            register(task, package)
    except FamilyError as e:
        raise FamilyError(f"DLSERVE_FAMILIES: {e}") from None
    named, chosen = dict(pairs), {}
    for entry in (e for e in offered() if e.task not in named):
        if not entry.is_package:
            raise FamilyError(f"{entry.where}: {entry.package!r} is not a Python package (task = python.package)")
        if chosen.setdefault(entry.task, entry).package != entry.package:
            raise FamilyError(f"{entry.where}: task {entry.task!r} is also offered by {chosen[entry.task].where}")
    for entry in chosen.values():
        try:
            _register(entry.task, entry.package)
        except FamilyError as e:
            raise FamilyError(f"{entry.where}: {e}") from None


def unregister(task: str) -> None:
    """Forgets a family registered with `register` (tests that register one and leave); built-ins stay."""
    if task in BUILT_IN:
        raise FamilyError(f"{task!r} is built in")
    FAMILIES.pop(task, None)


def family(task: str) -> Family:
    """The family's contract (models/contract.py: `FAMILY` in its package). NoSuchFamily for a task not
    registered here: callers taking a task from a request check it against TASKS first."""
    package = FAMILIES.get(task)
    if package is None:
        raise NoSuchFamily(f"task {task!r} has no family registered on this server (built in, DLSERVE_FAMILIES "
                           f"or a {GROUP} entry point)")
    return importlib.import_module(package).FAMILY
