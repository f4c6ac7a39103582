"""Open Inference Protocol (KServe V2) over REST, so Triton and KServe clients work unchanged.

Inference goes through the same batcher as the task-level API. Errors are problem+json that also
carry the V2 `error` member, which is what tritonclient shows to its user.
"""

from __future__ import annotations

import zlib

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.api.bodies import InferenceRequest, RepositoryIndexRequest, RepositoryLoadRequest, request_body
from app.api.deps import AdminKey, ManagerDep, PredictKey
from app.api.hot_path import HotRoute
from app.api.openapi import INT32_MAX, VersionPath, problems
from app.api.problems import problem
from app.errors import PayloadTooLarge, Unprocessable
from app.inference import calls, tensors
from app.inference.loaded import VersionInfo
from app.json_input import json_object

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
PLATFORM = "onnxruntime_onnx"
DECOMPRESS_STEP = 1024 * 1024
NOT_READY = problems(unavailable="not ready yet: the aliased versions (or this version) are still loading")
INFER_ANSWERS = {200: {"description": "the Open Inference Protocol's inference response",
                       "content": {"application/json": {}, "application/octet-stream": {}}},
                 **problems(409, 429, 504, unavailable="the model version is still loading, or failed to load lately")}


def _json(data, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data, option=orjson.OPT_SERIALIZE_NUMPY), status_code=status,
                    media_type="application/json", headers=headers)


# Inference first: the router tries routes in order, and these are the hot path.
@router.post("/models/{name}/infer", responses=INFER_ANSWERS,
             openapi_extra=request_body(InferenceRequest, octet_stream=True))
async def infer(request: Request, name: str, _: PredictKey) -> Response:
    return await _infer(request, name, None)


@router.post("/models/{name}/versions/{version}/infer", responses=INFER_ANSWERS,
             openapi_extra=request_body(InferenceRequest, octet_stream=True))
async def infer_version(request: Request, name: str, version: VersionPath, _: PredictKey) -> Response:
    return await _infer(request, name, version)


# The same two endpoints, reached without FastAPI's routing when no query string needs validating.
HOT_ROUTES = (
    HotRoute("/v2/models/{name}/infer", "predict", lambda request, p, key: infer(request, p["name"], key)),
    HotRoute("/v2/models/{name}/versions/{version}/infer", "predict",
             lambda request, p, key: infer_version(request, p["name"], p["version"], key), numbers=("version",)),
)


async def _infer(request: Request, name: str, version: int | None) -> Response:
    # The manager and settings straight from the app, not as dependencies: on the hot path each dependency
    # FastAPI solves costs more than the model (benchmarks/overhead.py).
    models, settings = request.app.state.models, request.app.state.settings
    body = _decompress(await request.body(), request.headers.get("content-encoding"), settings.max_request_bytes)
    req, tail = tensors.split_body(body, request.headers.get("inference-header-content-length"))
    if version is None:
        version = (await models.default_version(name)).version
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise Unprocessable("parameters must be an object", field="parameters")
    timeout_us = params.get("timeout")  # Triton's per-request timeout is in microseconds
    until, ms = calls.deadline(settings, None if timeout_us is None else
                               (timeout_us / 1000 if isinstance(timeout_us, (int, float)) else timeout_us),
                               "parameters.timeout")
    async with models.use(name, version) as lm:
        with calls.recorded(request.app.state.inference_metrics, lm, "v2"):
            feeds, rows = tensors.decode_inputs(req, tail, lm.info.signature)
            outputs = await calls.submit(lm, feeds, rows, until, ms)
            tensors.check_outputs_finite(outputs, f"model {lm.name!r} version {lm.version}")
            out_tensors, blobs = tensors.encode_outputs(outputs, req)
    answer = {"model_name": name, "model_version": str(lm.version), "outputs": out_tensors}
    if "id" in req:
        answer["id"] = req["id"]
    head = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    if not blobs:
        return Response(head, media_type="application/json")
    return Response(b"".join([head, *blobs]), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(head))})


@router.get("")
async def server_metadata(_: PredictKey) -> Response:
    return _json({"name": "dlserve", "version": "0.1.0",
                  "extensions": ["binary_tensor_data", "model_repository"]})


# Health is open, as in Triton and KServe (tritonclient's is_server_live() sends no key); it says
# nothing about which models there are.
@router.get("/health/live")
async def live() -> Response:
    return _json({"live": True})


@router.get("/health/ready", responses=NOT_READY)
async def ready(request: Request, models: ManagerDep) -> Response:
    if not models.ready:
        return problem(request, 503, "loading and warming the aliased model versions", headers={"Retry-After": "2"})
    return _json({"ready": True})


def _metadata(info: VersionInfo, versions: list[str]) -> dict:
    strip = [{k: s[k] for k in ("name", "datatype", "shape")} for s in info.signature["inputs"]]
    outs = [{k: s[k] for k in ("name", "datatype", "shape")} for s in info.signature["outputs"]]
    return {"name": info.name, "versions": versions, "platform": PLATFORM, "inputs": strip, "outputs": outs}


@router.get("/models/{name}")
async def model_metadata(name: str, _: PredictKey, models: ManagerDep) -> Response:
    info = await models.default_version(name)
    return _json(_metadata(info, [str(info.version)]))


@router.get("/models/{name}/versions/{version}")
async def version_metadata(name: str, version: VersionPath, _: PredictKey, models: ManagerDep) -> Response:
    info = await models.version_info(name, version)
    return _json(_metadata(info, [str(version)]))


@router.get("/models/{name}/ready", responses=NOT_READY)
async def model_ready(request: Request, name: str, _: PredictKey, models: ManagerDep) -> Response:
    info = await models.default_version(name)
    return _ready(request, models, info)


@router.get("/models/{name}/versions/{version}/ready", responses=NOT_READY)
async def version_ready(request: Request, name: str, version: VersionPath, _: PredictKey,
                        models: ManagerDep) -> Response:
    return _ready(request, models, await models.version_info(name, version))


def _ready(request: Request, models, info: VersionInfo) -> Response:
    state, reason = models.state(info.name, info.version)
    if state != "READY":
        return problem(request, 503, f"model {info.name!r} version {info.version} is not ready: "
                       f"{state.lower()}{'; ' + reason if reason else ''}", headers={"Retry-After": "2"})
    return _json({"name": info.name, "version": str(info.version), "ready": True})


def _decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    if not encoding or encoding == "identity":
        return body
    if encoding not in ("gzip", "deflate"):
        raise Unprocessable(f"Content-Encoding {encoding!r} is not supported; use gzip or deflate")
    d = zlib.decompressobj(wbits=31 if encoding == "gzip" else 15)
    # In steps of a megabyte, counting: a refused bomb costs the limit, not the limit twice over (one
    # decompress call with max_length grows its output buffer by copying).
    parts, size, data = [], 0, body
    try:
        while data or not d.eof:
            chunk = d.decompress(data, DECOMPRESS_STEP)
            data = d.unconsumed_tail
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise PayloadTooLarge(f"the decompressed body is over the limit of {limit} bytes", limit_bytes=limit)
            parts.append(chunk)
    except zlib.error as e:
        raise Unprocessable(f"the {encoding} body does not decompress: {e}") from None
    return b"".join(parts)


async def _optional_json(request: Request) -> dict:
    raw = await request.body()
    if not raw.strip():
        return {}
    return json_object(raw)


@router.post("/repository/index", openapi_extra=request_body(RepositoryIndexRequest, required=False))
async def repository_index(request: Request, _: PredictKey, models: ManagerDep) -> Response:
    only_ready = bool((await _optional_json(request)).get("ready"))
    rows = []
    for name, version in await models.all_versions():
        state, reason = models.state(name, version)
        if only_ready and state != "READY":
            continue
        rows.append({"name": name, "version": str(version), "state": state, "reason": reason})
    return _json(rows)


@router.post("/repository/models/{name}/load", openapi_extra=request_body(RepositoryLoadRequest, required=False),
             responses=problems(409, unavailable="the version is still loading, or failed to load lately"))
async def load(request: Request, name: str, _: AdminKey, models: ManagerDep) -> Response:
    params = (await _optional_json(request)).get("parameters") or {}
    if not isinstance(params, dict):
        raise Unprocessable("parameters must be an object", field="parameters")
    version = params.get("version")
    if isinstance(version, str) and version.isascii() and version.isdigit() and len(version) < 12:
        version = int(version)  # the V2 protocol's parameters are often strings
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)
                                or not 1 <= version <= INT32_MAX):
        raise Unprocessable(f"parameters.version must be a version number, 1 to {INT32_MAX}",
                            field="parameters.version")
    lm = await models.load(name, version)
    return _json({"name": name, "version": str(lm.version), "state": "READY"})


@router.post("/repository/models/{name}/unload")
async def unload(name: str, _: AdminKey, models: ManagerDep) -> Response:
    count = await models.unload(name)
    return _json({"name": name, "unloaded_versions": count})
