"""The predict contract of translation (pydantic only): a sentence in, its translation and score out."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, model_validator

from models.common.schemas import FLOAT64_MAX, BeamParameters, ItemModel, beam_output, integer

MAX_CHARS = 10_000


class TranslationInput(ItemModel):
    """A text in the version's source language (metadata.source_lang): {"text": "..."}, or the bare string.
    Longer than the version's token limit (metadata.max_source_tokens subword tokens) is answered 413."""

    form: ClassVar[str] = '{"text": "..."} or the bare string'
    text: str = Field(max_length=MAX_CHARS, pattern=r"\S", description="the text to translate (not only white space)",
                      examples=["Ein Hund läuft."])

    @model_validator(mode="before")
    @classmethod
    def _bare_string(cls, data: Any) -> Any:
        return {"text": data} if isinstance(data, str) else data

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: Any, handler: Any) -> dict[str, Any]:
        # the bare string is the other form of the same input
        obj = handler.resolve_ref_schema(handler(core_schema))
        text = {k: v for k, v in obj["properties"]["text"].items() if k != "title"}
        return {"anyOf": [text, dict(obj)], "title": obj.get("title"), "description": obj.get("description")}


class TranslationParameters(BeamParameters):
    length_penalty: float = Field(None, ge=0, le=FLOAT64_MAX, allow_inf_nan=False,
                                  description="GNMT's alpha: 0 favours short translations; default: the version's "
                                              "(metadata.decoding), else 0.6")
    max_length: integer(1, 100_000) = Field(None, description="the longest translation, in target tokens; at most "
                                                             "the version's metadata.max_length; default 2 x the "
                                                             "source's tokens + 10")


TranslationOutput = beam_output("TranslationOutput", "translation", "the text in the target language "
                                "(metadata.target_lang)", "The best translation of the text.")


# what Family.of reads: the predict contract's three models
INPUT, PARAMETERS, OUTPUT = TranslationInput, TranslationParameters, TranslationOutput
