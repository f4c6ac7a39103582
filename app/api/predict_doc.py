"""The task-level predict API in the OpenAPI document: every registered family's schemas (read from the
registry when the document is written, so a family registered at start from DLSERVE_FAMILIES shows too)
as components ClassificationInput, ClassificationParameters, ClassificationOutput, ..., and the request's
`inputs` items, its `parameters` and the answer's `outputs` items as "any of" them. (Any of, not one of:
the three image families take the same {"image": ...}, so an input matches several.)"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, Field

from models import TASKS, family

MARKER = "x-family-schemas"  # on a node of a body or answer model: which of the families' schemas go there

DESCRIPTION = """\
One envelope for every task family: `{"inputs": [...], "parameters": {...}}` in, `{"model", "version",
"outputs": [...]}` out, one output per input in the same order. The form of an input, of the parameters and
of an output is the model's task's: see the `<Task>Input`, `<Task>Parameters` and `<Task>Output` schemas.
Images may come as multipart `file` parts instead, one per input.

**Per-item faults.** Each task declares which faults belong to one input: for the image tasks an image that
does not decode or is over the pixel limit, for translation an empty or over-long text, for fraud a record
with a feature missing or not a number, for recommendation a rating out of range. Such an input is answered
in its own slot of `outputs` by `{"error": {"type", "title", "status", "detail", "field"}}` (the problem it
would have been alone, e.g. `"field": "inputs[2].image"`), and the others are answered: the status is 200.
Any other fault fails the whole request with a 422 naming the field: a malformed `parameters`, an input not of
the task's form (a member missing or unknown), a body that is not `{"inputs": [...]}`. When no input can be
answered, the request fails too, with the first input's status (413 or 422) and field, and `errors` listing
each input's fault; a one-input request is answered as it would be alone.
"""


class ItemProblem(BaseModel):
    type: str = Field(description="urn:dlserve:problem:<slug> (unprocessable, payload-too-large)")
    title: str
    status: int = Field(description="what the input would have been answered alone: 422, or 413 for one over a "
                                    "size limit")
    detail: str = Field(description="what is wrong and where, for a person")
    field: str = Field(description="the input at fault, e.g. inputs[2].image")


class PredictItemError(BaseModel):
    """In place of the output of an input that has a per-item fault: the other inputs are answered."""

    error: ItemProblem


class PredictResponse(BaseModel):
    model: str = Field(description="the model's name")
    version: int = Field(description="the version that answered")
    outputs: list[Any] = Field(description="one per input, in the same order: the task's output, or an error "
                                           "object for an input with a per-item fault",
                               json_schema_extra={MARKER: "output"})


def add_family_schemas(doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    refs: dict[str, list[dict[str, str]]] = {"input": [], "parameters": [], "output": []}
    for task in TASKS:
        contract = family(task)
        if contract is None:
            continue
        for kind, model, says in (("input", contract.predict_input, "One item of `inputs` for a {} model."),
                                  ("parameters", contract.predict_parameters, "`parameters` of a {} model."),
                                  ("output", contract.predict_output, "One item of `outputs` from a {} model.")):
            if model is not None:
                name = _add(schemas, model, _camel(task), kind.capitalize(), says.format(task))
                refs[kind].append({"$ref": f"#/components/schemas/{name}"})
    _add(schemas, PredictItemError, "", "PredictItemError", None)
    refs["output"].append({"$ref": "#/components/schemas/PredictItemError"})
    _fill(doc, refs)


def _camel(task: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[-_]", task))


def _add(schemas: dict[str, Any], model: type[BaseModel], prefix: str, suffix: str, says: str | None) -> str:
    """The model as component `prefix + suffix`, the models it uses as `prefix + their name` (two families
    may each have a `Label`); returns the component's name."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})
    names = {d: d if d.startswith(prefix) else prefix + d for d in defs}
    name = prefix + suffix
    if says:
        schema["description"] = f"{says} {schema.get('description', '')}".strip()
    schema["title"] = name
    for key, value in [(name, schema), *((names[d], v) for d, v in defs.items())]:
        schemas[key] = _rename(value, names)
    return name


def _rename(node: Any, names: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: (f"#/components/schemas/{names[v.rsplit('/', 1)[1]]}" if k == "$ref" and isinstance(v, str)
                    else _rename(v, names)) for k, v in node.items()}
    if isinstance(node, list):
        return [_rename(v, names) for v in node]
    return node


def _fill(node: Any, refs: dict[str, list[dict[str, str]]]) -> None:
    """Puts the families' schemas where a body or answer model left the marker."""
    if isinstance(node, dict):
        kind = node.pop(MARKER, None)
        if kind == "parameters" and refs[kind]:
            node["anyOf"] = [*refs[kind], {"type": "null"}]
        elif kind is not None and refs[kind]:
            node["items"] = {"anyOf": refs[kind]}
        for value in node.values():
            _fill(value, refs)
    elif isinstance(node, list):
        for value in node:
            _fill(value, refs)
