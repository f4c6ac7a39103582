"""Request bodies of the routes that read their body themselves (predict, V2 infer, the repository API):
they parse it by hand to stay fast and to accept several content types, so FastAPI cannot see them.
These models exist to declare them in the OpenAPI document (see `request_body`); the routes enforce
the same rules in code. A `x-maximum-setting` member names the setting that bounds a number, filled in
by app.api.openapi with the value this process runs with."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.api.openapi import INT32_MAX
from app.registry.service import ALIAS_RE, NAME_RE

_MODELS: dict[str, type[BaseModel]] = {}


def _timeout(description: str) -> Any:
    return Field(None, ge=1, description=description,
                 json_schema_extra={"x-maximum-setting": "max_request_timeout_ms"})


class PredictRequest(BaseModel):
    inputs: list[Any] = Field(min_length=1, json_schema_extra={"x-max-items-setting": "max_inputs_per_request",
                                                               "x-family-schemas": "input"},
                              description="one item per input, in the form of the model's task (its <Task>Input: "
                                          "an image as base64, a sentence, a row of features...); answered in the "
                                          "same order")
    parameters: dict[str, Any] | None = Field(None, json_schema_extra={"x-family-schemas": "parameters"},
                                              description="the task's options (its <Task>Parameters), e.g. top_k")
    timeout_ms: int | None = _timeout("how long the request may wait to be run, in milliseconds")


class PredictByBodyRequest(PredictRequest):
    model: str = Field(pattern=NAME_RE.pattern, description="the model's name")
    version: int | None = Field(None, ge=1, le=INT32_MAX, description="a version number; not with alias")
    alias: str | None = Field(None, pattern=ALIAS_RE.pattern, description="default: production")


class PredictForm(BaseModel):
    file: list[bytes] = Field(min_length=1, json_schema_extra={"items": {"type": "string", "format": "binary"}},
                              description="one part per image")
    parameters: str | None = Field(None, description="the family's options as a JSON object")
    timeout_ms: int | None = _timeout("milliseconds")


class PredictByBodyForm(PredictForm):
    model: str = Field(pattern=NAME_RE.pattern)
    version: int | None = Field(None, ge=1, le=INT32_MAX)
    alias: str | None = Field(None, pattern=ALIAS_RE.pattern)


Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16", "FP32",
                   "FP64", "BYTES"]


class InferInputTensor(BaseModel):
    name: str
    shape: list[int] = Field(json_schema_extra={"items": {"type": "integer", "minimum": 0, "maximum": INT32_MAX}})
    datatype: Datatype
    parameters: dict[str, Any] | None = Field(None, description="binary_data_size when the data follows the JSON")
    data: list[Any] | None = Field(None, description="the tensor's elements, row-major (nested or flat)")


class InferOutputRequest(BaseModel):
    name: str
    parameters: dict[str, Any] | None = Field(None, description="binary_data: true for raw bytes after the JSON")


class InferenceRequest(BaseModel):
    """The Open Inference Protocol's inference request. With Content-Type application/octet-stream, this
    JSON comes first (its length in Inference-Header-Content-Length) and raw tensor bytes follow."""

    id: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="timeout: microseconds (Triton's convention)")
    inputs: list[InferInputTensor] = Field(min_length=1)
    outputs: list[InferOutputRequest] | None = None


class RepositoryIndexRequest(BaseModel):
    ready: bool = Field(False, description="only versions ready to serve")


class LoadParameters(BaseModel):
    model_config = ConfigDict(title="LoadParameters")
    version: int | None = Field(None, ge=1, le=INT32_MAX, description="default: production, else the latest")


class RepositoryLoadRequest(BaseModel):
    parameters: LoadParameters | None = None


def request_body(json: type[BaseModel] | None = None, multipart: type[BaseModel] | None = None, *,
                 octet_stream: bool = False, required: bool = True) -> dict[str, Any]:
    """`openapi_extra=` declaring a body the route reads itself."""
    content: dict[str, Any] = {}
    for media, model in (("application/json", json), ("multipart/form-data", multipart)):
        if model is not None:
            _MODELS[model.__name__] = model
            content[media] = {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}
    if octet_stream:
        content["application/octet-stream"] = {"schema": {"type": "string", "format": "binary"}}
    return {"requestBody": {"required": required, "content": content}}


def declared_models() -> dict[str, type[BaseModel]]:
    return dict(_MODELS)
