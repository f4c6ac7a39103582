"""docs/config/<task>.md, one table per family made from its Config dataclass (stdlib only).

Each field documents itself with `field(..., metadata={"doc": "..."})`; the pages are generated so that
they cannot drift from the code (tests/models/test_config_doc.py compares them). Regenerate with
`python -m models.common.config_doc`.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

from models import FAMILIES

DOCS = Path(__file__).resolve().parents[2] / "docs" / "config"


def _type(tp: Any) -> str:
    """Literal["a", "b"] -> `a` | `b`; X | None -> X or none; list[str] -> list of str."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " | ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        rest = [a for a in args if a is not type(None)]
        text = " or ".join(_type(a) for a in rest)
        return f"{text} or none" if len(rest) < len(args) else text
    if origin is list:
        return f"list of {_type(args[0])}" if args else "list"
    return getattr(tp, "__name__", str(tp))


def _default(f: dataclasses.Field) -> str:
    value = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
    return "none" if value is None else f"`{json.dumps(value)}`"


def _json_kind(tp: Any) -> str:
    """The JSON type a form asks for: integer, number, boolean, string or array (X | None: X's)."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return _json_kind(type(args[0]))
    if origin in (typing.Union, types.UnionType):
        return _json_kind(next((a for a in args if a is not type(None)), str))
    if origin is list:
        return "array"
    return {bool: "boolean", int: "integer", float: "number"}.get(tp, "string")


def _choices(tp: Any) -> list[Any] | None:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return list(args)
    if origin in (typing.Union, types.UnionType):
        for a in args:
            if typing.get_origin(a) is Literal:
                return list(typing.get_args(a))
    return None


def describe(config_cls: type) -> list[dict[str, Any]]:
    """The dataclass' fields as data, for forms (GET /v1/families): name, type (as in the docs), kind (its
    JSON type), nullable, default, doc, and the choices (a Literal) and bounds (metadata "minimum" and
    "maximum") where the field declares them."""
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        tp = hints[f.name]
        args = typing.get_args(tp)
        entry: dict[str, Any] = {
            "name": f.name, "type": _type(tp).replace("`", ""), "kind": _json_kind(tp),
            "nullable": type(None) in args,
            "default": f.default if f.default is not dataclasses.MISSING else f.default_factory(),  # type: ignore[misc]
            "doc": f.metadata.get("doc", ""),
        }
        choices = _choices(tp)
        if choices is not None:
            entry["choices"] = choices
        entry.update({k: f.metadata[k] for k in ("minimum", "maximum") if k in f.metadata})
        out.append(entry)
    return out


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def table(config_cls: type) -> str:
    """A markdown table of the dataclass' fields: key, type, default, meaning."""
    hints = typing.get_type_hints(config_cls)
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for f in dataclasses.fields(config_cls):
        rows.append(f"| `{f.name}` | {_cell(_type(hints[f.name]))} | {_cell(_default(f))} "
                    f"| {_cell(f.metadata.get('doc', ''))} |")
    return "\n".join(rows) + "\n"


def page(task: str) -> str:
    """The whole of docs/config/<task>.md."""
    package = FAMILIES[task]
    module = importlib.import_module(f"{package}.config")
    source = f"{package.replace('.', '/')}/config.py"
    return (f"<!-- Generated from {source} by `python -m models.common.config_doc`: edit the field docs there "
            "and rerun it, not this page. -->\n\n"
            f"# {task} config\n\n"
            f"The keys of a `{task}` training job's `config` (`dlserve train --task {task} --config key=value`). "
            "Keys left out take their default; an unknown key or a bad value is a 422 naming the key. "
            "The version's `metadata.config` records the values that ran.\n\n"
            + table(module.Config) + platform_section(task))


def platform_section(task: str) -> str:
    """The keys every family takes (models/common/job_keys.py), and whether this one takes several devices."""
    from models import family
    from models.common.job_keys import JobKeys

    contract = family(task)
    can = (f"`{task}` declares `distributed`: it trains in several processes." if contract and contract.distributed
           else f"`{task}` does not declare `distributed`: `devices` above 1 is a 422.")
    return f"\n## Keys every family takes\n\nHow the platform runs the job. {can}\n\n" + table(JobKeys)


def pages() -> dict[str, str]:
    """{task: page} for every family that has a config."""
    return {task: page(task) for task, package in FAMILIES.items()
            if package is not None and importlib.util.find_spec(f"{package}.config") is not None}


def main(argv: list[str] | None = None) -> int:
    DOCS.mkdir(parents=True, exist_ok=True)
    for task, text in pages().items():
        path = DOCS / f"{task}.md"
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
