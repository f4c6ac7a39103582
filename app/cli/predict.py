"""`dlserve predict MODEL INPUT...`: asks the API for the model's task, reads each INPUT the way that task
takes it (image files; sentences; JSON objects or .json files), and prints a summary of the answer."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from app.cli.api import Api, AsJson, CliError, Key, Profile, Url, fmt, one_line, parse_pairs, print_json, read_input

IMAGE_TASKS = ("classification", "detection", "captioning")
RECORD_TASKS = ("recommendation", "fraud")
INPUT_HELP = ("images (classification, detection, captioning): files; translation: the sentences themselves; "
              "recommendation, fraud: JSON objects ('{\"user\": 1}') or .json files; '-': stdin; "
              "other families: --input-json")


def predict(
    model: Annotated[str, typer.Argument(help="model name")],
    inputs: Annotated[list[str] | None, typer.Argument(help=INPUT_HELP, show_default=False)] = None,
    input_json: Annotated[str | None, typer.Option(
        "--input-json", help="a whole request body ({\"inputs\": [...], \"parameters\": {...}}): a file or '-'")]
    = None,
    param: Annotated[list[str], typer.Option("--param", "-p", help="parameter key=value, e.g. top_k=3; repeatable")]
    = [],  # noqa: B006
    version: Annotated[int | None, typer.Option(help="a version number (default: the production alias)")] = None,
    alias: Annotated[str | None, typer.Option(help="an alias instead of production")] = None,
    as_json: AsJson = False, url: Url = None, key: Key = None, profile: Profile = None,
) -> None:
    """Predict with a model: POST /v1/models/MODEL/predict."""
    params = parse_pairs(param, "--param")
    query = {k: v for k, v in {"version": version, "alias": alias}.items() if v is not None} or None
    api = Api(url, key, profile)
    path = f"/v1/models/{model}/predict"
    if input_json:
        if inputs:
            raise typer.BadParameter("give INPUT arguments or --input-json, not both", param_hint="--input-json")
        body = _json(read_input(input_json), input_json)
        if not isinstance(body, dict):
            raise CliError(f"{input_json}: a request body is a JSON object with \"inputs\"")
        if params:
            body["parameters"] = {**(body.get("parameters") or {}), **params}
        answer, task, names = api.call("POST", path, json=body, params=query), None, None
    else:
        if not inputs:
            raise typer.BadParameter("give one or more inputs, or --input-json", param_hint="INPUT")
        task = api.call("GET", f"/v1/models/{model}")["task"]
        if task in IMAGE_TASKS:
            names = ["stdin" if p == "-" else p for p in inputs]
            files = [("file", (Path(n).name, read_input(p))) for n, p in zip(names, inputs, strict=True)]
            data = {"parameters": json.dumps(params)} if params else None
            answer = api.call("POST", path, files=files, data=data, params=query)
        else:
            items, names = _inputs(task, inputs)
            body = {"inputs": items, **({"parameters": params} if params else {})}
            answer = api.call("POST", path, json=body, params=query)
    outputs = answer.get("outputs") or []
    if as_json:
        print_json(answer)
    else:
        typer.echo(f"{answer.get('model', model)} version {answer.get('version', '?')}")
        names = names or [f"input {i}" for i in range(len(outputs))]
        for name, out in zip(names, outputs, strict=False):
            first, *rest = describe(task, out)
            typer.echo(f"{name}: {first}")
            for line in rest:
                typer.echo(f"  {line}")
    failed = sum(1 for out in outputs if isinstance(out, dict) and "error" in out)
    if failed:  # the others were answered (above); a script still learns that not all were
        raise CliError(f"{failed} of {len(outputs)} inputs could not be answered (their errors are above)")


def _json(raw: bytes, where: str) -> Any:
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CliError(f"{where}: not valid JSON ({e})") from None


def _inputs(task: str, args: list[str]) -> tuple[list[Any], list[str]]:
    items: list[Any] = []
    names: list[str] = []
    for arg in args:
        if task == "translation":
            if arg == "-":
                lines = [t.strip() for t in sys.stdin.read().splitlines() if t.strip()]
                items += [{"text": t} for t in lines]
                names += [f"line {i + 1}" for i in range(len(lines))]
            else:
                items.append({"text": arg})
                names.append(repr(arg) if len(arg) <= 40 else repr(arg[:37] + "..."))
            continue
        if task not in RECORD_TASKS:
            raise CliError(f"a {task} model has no task-level inputs the CLI knows; send a body with --input-json")
        where = "stdin" if arg == "-" else "argument" if arg.lstrip().startswith(("{", "[")) else arg
        value = _json(arg.encode() if where == "argument" else read_input(arg), where)
        for i, obj in enumerate(value if isinstance(value, list) else [value]):
            if not isinstance(obj, dict):
                raise CliError(f"{where}: each input is a JSON object, e.g. "
                               + ('{"user": 1, "k": 5}' if task == "recommendation" else '{"features": {...}}'))
            if task == "fraud" and "features" not in obj:
                obj = {"features": obj}  # a bare record of feature values
            items.append(obj)
            label = _short(json.dumps(obj)) if where == "argument" else where
            names.append(label if not isinstance(value, list) else f"{label}[{i}]")
    return items, names


def _short(text: str, n: int = 48) -> str:
    return text if len(text) <= n else text[:n - 3] + "..."


def _unknown(x: dict) -> str:
    return " (not in the training data: bias only)" if x.get("known") is False else ""


def describe(task: str | None, out: Any) -> list[str]:
    """A few readable lines for one output of the task-level API."""
    if not isinstance(out, dict):
        return [fmt(out, 200)]
    if set(out) == {"error"} and isinstance(out["error"], dict):  # an input with a fault of its own
        return [f"error {out['error'].get('status', '?')}: {one_line(str(out['error'].get('detail', '')))}"]
    if "labels" in out:
        return [", ".join(f"{x.get('label')} {fmt(x.get('score'))}" for x in out["labels"][:5]) or "no labels"]
    if "detections" in out:
        dets = out["detections"]
        return [f"{len(dets)} detections"] + [f"{d.get('label')} {fmt(d.get('score'))} box {fmt(d.get('box'))}"
                                              for d in dets[:10]]
    if "caption" in out:
        return [f"{out['caption']}  (score {fmt(out.get('score'))})"]
    if "translation" in out:
        return [f"{out['translation']}  (score {fmt(out.get('score'))})"]
    if "is_fraud" in out:
        top = out.get("top_features") or []
        names = ", ".join(str(t.get("feature", t) if isinstance(t, dict) else t) for t in top[:5])
        return [f"score {fmt(out.get('score'))}, fraud: {fmt(out['is_fraud'])} (threshold {fmt(out.get('threshold'))})"
                + (f"; top features {names}" if names else "")]
    if "items" in out:
        top = ", ".join(f"item {x.get('item')} {fmt(x.get('score'))}" for x in out["items"][:10]) or "no items"
        return [top + _unknown(out)]
    if "ratings" in out:
        return [", ".join(f"item {x.get('item')} {fmt(x.get('rating'))}{_unknown(x)}" for x in out["ratings"][:10])
                or "no ratings"]
    return [fmt(out, 200)]
