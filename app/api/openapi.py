"""The OpenAPI document as a contract a fuzzer can hold the service to.

FastAPI writes what the signatures say; `install` walks every route once and adds what they cannot:
the bearer security scheme (on each route that takes a key, found from its dependencies), the
problem+json answers every operation can give (401/403 where a key is needed, 404, 400/413/415 where
a body is taken, 422, 503 with Retry-After), and the enums of tasks, dataset formats and statuses read
from the family registry. A route added later (by any module) is covered without an edit here; a route
declares only what is particular to it, with `problems(...)`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import Annotated, Any, Literal

from fastapi import FastAPI, Path, Query, routing
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.api.links import add_links
from app.db.tables import RUN_STATUSES, VERSION_STATUSES
from models import TASKS, family

# Version numbers, offsets and other counters are INTEGER columns: PostgreSQL's int4 (SQLite takes 64
# bits). A larger number can name nothing that exists, and the database would fail on it, so it is
# refused with a 422 before any query.
INT32_MAX = 2**31 - 1

VersionPath = Annotated[int, Path(ge=1, le=INT32_MAX, description="version number")]
VersionQuery = Annotated[int | None, Query(ge=1, le=INT32_MAX, description="a version number (default: the "
                                                                             "production alias)")]
Offset = Annotated[int, Query(ge=0, le=INT32_MAX)]

PROBLEM_JSON = "application/problem+json"
SECURITY_SCHEME = "bearer"
SESSION_SCHEME = "session"  # the browser's cookie (POST /v1/session): the alternative to the bearer key


class FieldError(BaseModel):
    field: str
    message: str


class Problem(BaseModel):
    """RFC 9457 problem details. Members beyond these name what went wrong (field, limit_bytes, ...)."""

    model_config = ConfigDict(extra="allow", title="Problem")
    type: str = Field(description="urn:dlserve:problem:<slug>, stable for a kind of error")
    title: str
    status: int
    detail: str = Field(description="what is wrong and where, for a person")
    instance: str = Field(description="the request id (X-Request-ID), which identifies it in the logs")
    field: str | None = Field(None, description="the input at fault, e.g. inputs[3] or query.version")
    errors: list[FieldError | str] | None = Field(None, description="every invalid field, on a validation 422")
    error: str | None = Field(None, description="the detail again, under the Open Inference Protocol's name (/v2)")


_DESCRIPTIONS = {
    400: "the body could not be read (a malformed multipart or JSON body)",
    401: "no API key, or one that is not valid or revoked",
    403: "the API key lacks the scope this operation needs",
    404: "what the path names does not exist",
    409: "the request conflicts with the current state",
    413: "the body (or what it decompresses or decodes to) is over a limit",
    415: "the Content-Type is not one this operation takes",
    422: "an input is not valid; `field` or `errors` say which",
    429: "the model's queue is full; retry after Retry-After seconds",
    503: "temporarily unavailable; retry after Retry-After seconds",
    504: "the request waited its whole deadline and was not run",
}
_503_ALWAYS = "the database cannot be reached, or the service is shutting down"
_RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}}}


def problems(*statuses: int, unavailable: str | None = None) -> dict[int | str, dict[str, Any]]:
    """`responses=` for what a route can answer beyond the standard problems; `unavailable` says when it
    answers 503 (model still loading, broker down...), added to the database and shutdown cases."""
    out: dict[int | str, dict[str, Any]] = {s: {"description": _DESCRIPTIONS.get(s, "error")} for s in statuses}
    if unavailable:
        out[503] = {"description": unavailable}
    return out


def dataset_formats() -> tuple[str, ...]:
    return _formats(tuple(TASKS))


@cache
def _formats(tasks: tuple[str, ...]) -> tuple[str, ...]:
    formats: set[str] = set()
    for task in tasks:
        formats.update(family(task).formats)
    return tuple(sorted(formats))


def enum_of(values: Sequence[str] | Callable[[], Sequence[str]]) -> dict[str, Any]:
    """The enum is read when the document is written, not at import: TASKS (a live view) and
    dataset_formats then include families registered at start from DLSERVE_FAMILIES."""
    def extra(schema: dict[str, Any]) -> None:
        schema["enum"] = list(values() if callable(values) else values)

    return {"json_schema_extra": extra}


def _known_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"{task!r} is not a task; choose one of {', '.join(TASKS)}")
    return task


# Response fields and filters: the tasks the registry knows when asked (not when this module was imported)
Task = Annotated[str, AfterValidator(_known_task), Field(**enum_of(TASKS))]
RunStatus = Literal[RUN_STATUSES]  # type: ignore[valid-type]
VersionStatus = Literal[VERSION_STATUSES]  # type: ignore[valid-type]


def _needs_key(route: APIRoute) -> bool:
    from app.api.deps import takes_key  # deps imports the auth stack; only the walk needs it

    stack = [route.dependant]
    while stack:
        dep = stack.pop()
        if takes_key(dep.call):
            return True
        stack.extend(dep.dependencies)
    return False


def _problem_response(description: str, status: int) -> dict[str, Any]:
    answer: dict[str, Any] = {"description": description,
                              "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    if status in (429, 503):
        answer["headers"] = dict(_RETRY_AFTER)
    return answer


def _complete(op: dict[str, Any], route: APIRoute) -> None:
    responses = op.setdefault("responses", {})
    responses.pop("500", None)
    keyed = _needs_key(route)
    op["parameters"] = [p for p in op.get("parameters", []) if not (p["in"] == "header" and
                                                                     p["name"].lower() == "authorization")]
    if not op["parameters"]:
        del op["parameters"]
    standard = [404, 503]
    if keyed:
        standard += [401, 403]
        op["security"] = [{SECURITY_SCHEME: []}, {SESSION_SCHEME: []}]
    else:
        op.setdefault("security", [])  # a route may declare its own (the session routes)
    takes_body = op.get("requestBody") is not None
    if takes_body:
        standard += [400, 413, 415]
    if takes_body or op.get("parameters") or "{" in route.path_format:
        standard.append(422)
    for status in standard:
        key = str(status)
        if key not in responses:
            description = _DESCRIPTIONS[status] if status != 503 else _503_ALWAYS
            responses[key] = _problem_response(description, status)
    for key, answer in list(responses.items()):
        if not key.isdigit() or int(key) < 400:
            continue
        described = answer.get("description", "")
        if key == "503" and _503_ALWAYS not in described:
            described = f"{described}; or {_503_ALWAYS}" if described else _503_ALWAYS
        if key == "422" and described in ("Validation Error", ""):
            described = _DESCRIPTIONS[422]
        responses[key] = _problem_response(described, int(key))


def _add_models(schemas: dict[str, Any], models: list[type[BaseModel]]) -> None:
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema


def _settings_bounds(node: Any, settings: Any) -> None:
    """Fills in the bounds that are settings (x-maximum-setting: max_request_timeout_ms) with their values."""
    if isinstance(node, dict):
        for marker, keyword in (("x-maximum-setting", "maximum"), ("x-max-items-setting", "maxItems")):
            if marker in node:
                name = node.pop(marker)
                if settings is not None:
                    node[keyword] = getattr(settings, name)
        for value in node.values():
            _settings_bounds(value, settings)
    elif isinstance(node, list):
        for value in node:
            _settings_bounds(value, settings)


def _path_patterns(op: dict[str, Any]) -> None:
    from app.registry.service import ALIAS_RE, NAME_RE

    patterns = {"name": NAME_RE.pattern, "alias": ALIAS_RE.pattern}
    for p in op.get("parameters", []):
        if p["in"] == "path" and p["name"] in patterns:
            p["schema"].setdefault("pattern", patterns[p["name"]])


def api_routes(app: FastAPI) -> list[tuple[str, set[str], APIRoute]]:
    """(full path, methods, route) of every documented route, through included routers."""
    contexts = getattr(routing, "iter_route_contexts", None)  # FastAPI >= 0.160 keeps included routers nested
    found = [(rc.path_format, rc.methods, rc.route) for rc in contexts(app.routes)] if contexts else \
        [(r.path_format, r.methods, r) for r in app.routes]
    return [(path, set(methods or ()), route) for path, methods, route in found
            if isinstance(route, APIRoute) and route.include_in_schema]


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        from app.api.bodies import declared_models
        from app.api.predict_doc import add_family_schemas

        if app.openapi_schema:
            return app.openapi_schema
        doc = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
        schemas = doc.setdefault("components", {}).setdefault("schemas", {})
        schemas.pop("HTTPValidationError", None)
        schemas.pop("ValidationError", None)
        _add_models(schemas, [Problem, *declared_models().values()])
        add_family_schemas(doc)
        doc["components"]["securitySchemes"] = {SECURITY_SCHEME: {
            "type": "http", "scheme": "bearer",
            "description": "an API key: `dlserve keys create`, or DLSERVE_ADMIN_KEY"}, SESSION_SCHEME: {
            "type": "apiKey", "in": "cookie", "name": "dlserve_session",
            "description": "a browser's session (POST /v1/session); unsafe methods also send X-CSRF-Token"}}
        for path, methods, route in api_routes(app):
            for method in methods:
                op = doc["paths"].get(path, {}).get(method.lower())
                if op is not None:
                    _complete(op, route)
                    _path_patterns(op)
        _settings_bounds(doc, getattr(app.state, "settings", None))
        add_links(doc)
        app.openapi_schema = doc
        return doc

    app.openapi = openapi  # type: ignore[method-assign]
