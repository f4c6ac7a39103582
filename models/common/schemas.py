"""Pieces of the families' predict schemas (models/<task>/schemas.py; pydantic only, no numpy or torch).

A family's schemas describe one item of `inputs`, its `parameters` and one item of `outputs` exactly as its
serving.py takes and gives them: the API validates every item with the input model before preprocess
(models/common/validation.py) and the OpenAPI document shows them. What depends on the loaded version
(a fraud model's feature names, a recommender's rating range, a translator's token limit) is beyond a
static schema and stays in serving.py.

The models are strict: no coercion ("5" is not 5, true is not 1), as serving.py has always checked.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, WithJsonSchema, create_model, model_validator
from pydantic_core import PydanticCustomError

INT32_MAX = 2**31 - 1  # the bound of counts that have no smaller natural one (top_k, k): beyond it, nothing changes
FLOAT32_MAX = 3.4028234663852886e38
FLOAT64_MAX = 1.7976931348623157e308


def _no_null_defaults(schema: dict[str, Any]) -> None:
    # An optional member is left out, never sent as null (serving.py refuses null); its schema says so.
    for prop in schema.get("properties", {}).values():
        if prop.get("default", 0) is None:
            del prop["default"]


def schema_extra(edit: Callable[[dict[str, Any]], None]) -> ConfigDict:
    """model_config adding to a model's JSON schema what its types cannot say (one member or the other)."""
    def extra(schema: dict[str, Any]) -> None:
        _no_null_defaults(schema)
        edit(schema)

    return ConfigDict(json_schema_extra=extra)


class Strict(BaseModel):
    """Base of the families' predict models: strict types, unknown members refused."""

    model_config = ConfigDict(strict=True, extra="forbid", json_schema_extra=_no_null_defaults)


class ItemModel(Strict):
    """One item of `inputs`. `form` is how the error messages show the expected shape."""

    form: ClassVar[str] = "an object"


def _got(value: Any) -> str:
    return f"{value!r:.40}"


def _number(value: Any, limit: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise PydanticCustomError("number", "must be a number (got {got})", {"got": _got(value)})
    try:
        number = float(value)
    except OverflowError:  # an int of hundreds of digits
        number = math.inf
    if not math.isfinite(number) or abs(number) > limit:
        raise PydanticCustomError("number_range", "must be a finite number within {what} (±{limit:.4g}); got {got}",
                                  {"what": what, "limit": limit, "got": _got(value)})
    return number


def _float32(value: Any) -> float:
    return _number(value, FLOAT32_MAX, "float32's range")


def _finite(value: Any) -> float:
    return _number(value, FLOAT64_MAX, "a double's range")


def _id(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or value == "":
        raise PydanticCustomError("id", "must be an id (an integer or a string), got {got}", {"got": _got(value)})
    return value


# A number a float32 tensor holds: 3.5e38 would become infinity there, and the answer NaN.
Float32 = Annotated[float, PlainValidator(_float32),
                    WithJsonSchema({"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX})]
# Any finite JSON number (what Python reads as a double: 1e400 is infinity, refused).
FiniteNumber = Annotated[float, PlainValidator(_finite),
                         WithJsonSchema({"type": "number", "minimum": -FLOAT64_MAX, "maximum": FLOAT64_MAX})]
# A user or item id as the dataset had it: compared as text, so 7 and "7" are the same id.
Id = Annotated[int | str, PlainValidator(_id),
               WithJsonSchema({"anyOf": [{"type": "integer"}, {"type": "string", "minLength": 1}],
                               "description": "an id as in the training data: an integer or a string"})]


def integer(low: int = 1, high: int = INT32_MAX) -> Any:
    """An integer option or member from `low` to `high` (booleans refused, as serving.py always did)."""
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise PydanticCustomError("integer_range", "must be an integer between {low} and {high} (got {got})",
                                      {"low": low, "high": high, "got": _got(value)})
        return value

    return Annotated[int, PlainValidator(check), WithJsonSchema({"type": "integer", "minimum": low, "maximum": high})]


def number(low: float, high: float) -> Any:
    """A number from `low` to `high`."""
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
            raise PydanticCustomError("number_range", "must be a number between {low:g} and {high:g} (got {got})",
                                      {"low": low, "high": high, "got": _got(value)})
        return float(value)

    return Annotated[float, PlainValidator(check), WithJsonSchema({"type": "number", "minimum": low, "maximum": high})]


class ImageInput(ItemModel):
    """An image: {"image": base64} in a JSON body, or one `file` part of a multipart/form-data body (its
    bytes as they are). PNG, JPEG, WebP, GIF, BMP, TIFF: anything Pillow decodes; converted to the
    version's colour mode and resized to its input size. Members other than `image` are not read."""

    model_config = ConfigDict(extra="ignore")
    form: ClassVar[str] = '{"image": "<base64>"}'
    image: str = Field(min_length=1, description="the encoded image file (PNG, JPEG, ...) in base64; a data URL "
                                                 "(data:image/png;base64,...) is taken too",
                       examples=["iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg=="])

    @model_validator(mode="wrap")
    @classmethod
    def _file_part(cls, data: Any, handler: Any) -> Any:
        if isinstance(data, (bytes, bytearray)):  # a multipart `file` part: the image's bytes themselves
            return cls.model_construct(image="<file>")
        return handler(data)


class NoParameters(Strict):
    """This family takes no parameters."""


MAX_BEAM = 16  # models.common.decoding.MAX_BEAM (numpy): the widest beam the shared search runs


class BeamParameters(Strict):
    """Options of the beam search shared by the encoder-decoder families; each family adds its bounds of
    length_penalty and max_length."""

    beam_size: integer(1, MAX_BEAM) = Field(None, description="hypotheses kept at each step (1: greedy); default: "
                                                             "the version's (metadata.decoding), widened to n_best")
    n_best: integer(1, MAX_BEAM) = Field(None, description="how many hypotheses to answer, best first (above 1 the "
                                                          "answer adds `n_best`); at most beam_size")

    @model_validator(mode="after")
    def _n_best_within_beam(self) -> BeamParameters:
        if self.beam_size is not None and self.n_best is not None and self.n_best > self.beam_size:
            raise PydanticCustomError("n_best", "must be at most beam_size ({beam})",
                                      {"beam": self.beam_size, "at": "n_best"})
        return self


def beam_output(name: str, member: str, description: str, doc: str) -> type[BaseModel]:
    """The answer of a beam search over text: {member, score} and, with parameters.n_best > 1, `n_best`: that
    many of them, best first (the first is the answer itself)."""
    score = Field(description="its length-normalised log-probability (<= 0; higher is better)")
    hypothesis = create_model(member.capitalize(), __base__=Strict, __module__=__name__,
                              **{member: (str, Field(description=description)), "score": (float, score)})
    return create_model(name, __base__=hypothesis, __doc__=doc, __module__=__name__, n_best=(
        list[hypothesis], Field(None, description="with parameters.n_best > 1: the n best, best first")))
