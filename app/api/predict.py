"""The task-level API: POST /v1/models/{name}/predict and POST /predict.

One envelope for every family: {"inputs": [input, ...], "parameters": {...}} in,
{"model", "version", "outputs": [output, ...]} out, in the same order. Images may also come as
multipart `file` parts. The family's serving module turns inputs into tensors and tensors into
answers; this module owns the road: lookup, batching, errors, metrics. Each item is checked against the
family's input schema and preprocessed on its own (app/api/predict_items.py), so that a fault of one item
the family answers per item takes that item's slot of `outputs` and the others are answered.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from app.api import predict_items
from app.api.bodies import PredictByBodyForm, PredictByBodyRequest, PredictForm, PredictRequest, request_body
from app.api.deps import PredictKey
from app.api.hot_path import HotRoute
from app.api.openapi import INT32_MAX, VersionQuery, problems
from app.api.predict_doc import DESCRIPTION, PredictResponse
from app.errors import Unprocessable, UnsupportedMediaType
from app.inference import calls
from app.inference.loaded import LoadedModel
from app.json_input import json_object
from app.registry.service import ALIAS_RE
from models import family
from models.common.numbers import first_non_finite

router = APIRouter(tags=["predict"])
# What predicting can answer besides the standard problems (app.api.openapi).
ANSWERS = {200: {"model": PredictResponse,
                 "description": "one output per input, in order; an error object in the place of an input with a "
                                "per-item fault"},
           **problems(409, 429, 504, unavailable="the model version is still loading, or failed to load lately")}
AliasQuery = Annotated[str | None, Query(pattern=ALIAS_RE.pattern, description="default: production")]


@router.post("/v1/models/{name}/predict", summary="Predict with a model (production alias unless told otherwise)",
             description=DESCRIPTION, responses=ANSWERS, openapi_extra=request_body(PredictRequest, PredictForm))
async def predict(name: str, request: Request, _: PredictKey, version: VersionQuery = None,
                  alias: AliasQuery = None) -> Response:
    body = await _read_body(request, request.app.state.settings)
    return await _predict(request, name, version, alias, body)


@router.post("/predict", summary="Predict, naming the model in the body", description=DESCRIPTION,
             responses=ANSWERS, openapi_extra=request_body(PredictByBodyRequest, PredictByBodyForm))
async def predict_by_body(request: Request, _: PredictKey) -> Response:
    body = await _read_body(request, request.app.state.settings)
    name = body.get("model")
    if not isinstance(name, str) or not name:
        raise Unprocessable('field "model" (the model name) is required', field="model")
    version, alias = body.get("version"), body.get("alias")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                or not 1 <= version <= INT32_MAX):
        raise Unprocessable(f'field "version" must be a version number, 1 to {INT32_MAX}', field="version")
    if alias is not None and (not isinstance(alias, str) or not ALIAS_RE.match(alias)):
        raise Unprocessable('field "alias" must be an alias name (a letter, then letters, digits, ".", "_" or "-")',
                            field="alias")
    return await _predict(request, name, version, alias, body)


# The same two endpoints, reached without FastAPI's routing when there is no query string (version, alias).
HOT_ROUTES = (
    HotRoute("/v1/models/{name}/predict", "predict", lambda request, p, key: predict(p["name"], request, key)),
    HotRoute("/predict", "predict", lambda request, p, key: predict_by_body(request, key)),
)


async def _predict(request, name, version, alias, body) -> Response:
    # The manager and settings straight from the app, not as dependencies: on the hot path each dependency
    # FastAPI solves costs more than a small model (benchmarks/request_path.py).
    models, settings = request.app.state.models, request.app.state.settings
    if version is not None and alias is not None:
        raise Unprocessable(f"give a version or an alias, not both (version {version}, alias {alias!r})",
                            field="version")
    inputs = body["inputs"]
    until, ms = calls.deadline(settings, body.get("timeout_ms"), "timeout_ms")
    async with models.use(name, version, alias) as lm:
        metrics = request.app.state.inference_metrics
        with calls.recorded(metrics, lm, "task"):
            serving, spec = _family(lm)
            contract = family(lm.info.task)
            params = predict_items.parameters(contract, serving, body.get("parameters") or {})
            calls.check_capacity(lm, len(inputs))
            if body["_size"] <= settings.inline_preprocess_bytes:
                # A small payload (one thumbnail, a sentence) decodes in well under a millisecond:
                # cheaper here than a thread hop, and it reaches the batch queue sooner.
                items = predict_items.prepare(contract, serving, spec, inputs, params)
            else:
                items = await run_in_threadpool(predict_items.prepare, contract, serving, spec, inputs, params)
            for fault in items.faults.values():
                metrics.item_faults.labels(lm.name, str(lm.version), fault.kind).inc()
            if not items.feeds:
                raise predict_items.all_faulted(items.faults)
            if len(items.feeds) == 1:
                rows = [await calls.submit(lm, items.feeds[0], 1, until, ms)]
            else:
                rows = await asyncio.gather(*(calls.submit(lm, f, 1, until, ms) for f in items.feeds))
            answers = [serving.postprocess(r, params, spec) if c is None else serving.postprocess(r, params, spec, c)
                       for r, c in zip(rows, items.contexts, strict=True)]
            _check_outputs_finite(answers, items.positions, lm)
            outputs = predict_items.outputs(items, answers, len(inputs))
    return Response(orjson.dumps({"model": name, "version": lm.version, "outputs": outputs},
                                 option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json")


def _family(lm: LoadedModel):
    if lm.spec is None:
        raise Unprocessable(f"version {lm.version} of {lm.name!r} cannot be served through the task-level API: "
                            f"{lm.spec_error}; POST /v2/models/{lm.name}/infer takes its tensors directly")
    return lm.family, lm.spec


def _check_outputs_finite(outputs: list[Any], positions: list[int], lm: LoadedModel) -> None:
    # A model that computes NaN or infinity for an input has no answer for it; a 200 with null in place
    # of a number would pass for one. The input is what the client can change, so the 422 names it.
    for i, out in zip(positions, outputs, strict=True):
        where = first_non_finite(out, f"outputs[{i}]")
        if where is not None:
            raise Unprocessable(f"inputs[{i}]: model {lm.name!r} version {lm.version} computed a value that is not "
                                f"finite ({where}) for this input, so it has no answer for it", field=f"inputs[{i}]",
                                output=where)


async def _read_body(request: Request, settings) -> dict[str, Any]:
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("multipart/form-data"):
        return await _read_multipart(request)
    if ctype.startswith("application/x-www-form-urlencoded"):
        # what curl -d and HTML forms send by default; parsed as JSON it would only say "not valid JSON"
        raise UnsupportedMediaType("send JSON (Content-Type: application/json) with {\"inputs\": [...]}, or "
                                   "multipart/form-data with one or more \"file\" parts; not a url-encoded form")
    raw = await request.body()
    body = json_object(raw, hint=': {"inputs": [...]}')
    _check_inputs(body.get("inputs"), settings)
    body["_size"] = len(raw)
    params = body.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise Unprocessable('field "parameters" must be an object', field="parameters")
    return body


async def _read_multipart(request: Request) -> dict[str, Any]:
    form = await request.form()
    files = [f for f in form.getlist("file") if hasattr(f, "read")]
    if not files:
        raise Unprocessable('a multipart request needs one or more "file" parts', field="file")
    body: dict[str, Any] = {"inputs": [await f.read() for f in files]}
    body["_size"] = sum(len(b) for b in body["inputs"])
    for key in ("parameters", "model", "version", "timeout_ms", "alias"):
        if key in form:
            if not isinstance(form[key], str):
                raise Unprocessable(f"field '{key}' must be a plain form field, not a file", field=key)
            body[key] = form[key]
    if "parameters" in body:
        body["parameters"] = json_object(body["parameters"], field="parameters")
    for key in ("version", "timeout_ms"):
        if key in body:
            try:
                body[key] = int(body[key])
            except ValueError:
                raise Unprocessable(f"field '{key}' must be an integer", field=key) from None
    return body


def _check_inputs(inputs: Any, settings) -> None:
    if not isinstance(inputs, list) or not inputs:
        raise Unprocessable('field "inputs" must be a non-empty list', field="inputs")
    if len(inputs) > settings.max_inputs_per_request:
        raise Unprocessable(f'field "inputs" has {len(inputs)} items; the limit is {settings.max_inputs_per_request} '
                            "per request", field="inputs")
