"""The predict contract of recommendation (pydantic only): a user (known, or new with a few ratings) in,
the top-k items or predicted ratings of chosen items out."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, RootModel, model_validator
from pydantic_core import PydanticCustomError

from models.common.schemas import FiniteNumber, Id, ItemModel, Strict, integer, schema_extra

DEFAULT_K = 10


class Rating(Strict):
    item: Id
    rating: FiniteNumber = Field(description="within the version's rating range (metadata.rating_range)")


class RecommendationInput(ItemModel):
    """A known user ({"user": id}) or a new one ({"ratings": [...]}), and either k (recommend) or items (rate
    these). An id the model never saw is answered "known": false with the bias-only prediction, not refused."""

    model_config = schema_extra(lambda s: s.update({"oneOf": [{"required": ["user"]}, {"required": ["ratings"]}],
                                                    "not": {"required": ["k", "items"]}}))
    form: ClassVar[str] = '{"user": id} or {"ratings": [{"item", "rating"}, ...]}, with "k" or "items"'
    user: Id = Field(None, description="a user of the training data")
    ratings: list[Rating] = Field(None, min_length=1, description="a new user's ratings, each item once; items the "
                                                                  "model does not know are listed as ignored_items")
    k: integer(1) = Field(None, description="how many items to recommend, best first, unrated ones only; at most "
                                            "the version's metadata.max_k; default: parameters.k")
    items: list[Id] = Field(None, min_length=1, description="the items whose ratings to predict")

    @model_validator(mode="after")
    def _one_of_each(self) -> RecommendationInput:
        given = self.model_fields_set
        if ("user" in given) == ("ratings" in given):
            raise PydanticCustomError("user_or_ratings", 'give either "user" (a known user) or "ratings" (a new '
                                      "user), {which}", {"which": "not both" if "user" in given else "one of them"})
        if {"k", "items"} <= given:
            raise PydanticCustomError("k_or_items", 'give "k" (recommend) or "items" (rate these), not both',
                                      {"at": "k"})
        return self


class RecommendationParameters(Strict):
    k: integer(1) = Field(DEFAULT_K, description="how many items to recommend to an input that gives no k")


class Recommended(Strict):
    item: Id
    score: float = Field(description="the predicted rating")
    title: str = Field(None, description="the item's title, where the dataset had one")


class Predicted(Strict):
    item: Id
    rating: float = Field(description="the predicted rating; the bias-only one when not known")
    known: bool = Field(description="false: the item (or the user) was never rated in training")


class Recommendations(Strict):
    items: list[Recommended] = Field(description="up to k items the user has not rated, best first")
    known: bool = Field(description="false: a user the model knows nothing of, ranked by the items' biases")
    ignored_items: list[Id] = Field(None, description="rated items the model does not know (not used)")


class PredictedRatings(Strict):
    ratings: list[Predicted] = Field(description="one per asked item, in the order asked")
    ignored_items: list[Id] = Field(None, description="rated items the model does not know (not used)")


class RecommendationOutput(RootModel[Recommendations | PredictedRatings]):
    """Recommendations (an input with k, or none) or predicted ratings (an input with items)."""


# what Family.of reads: the predict contract's three models
INPUT, PARAMETERS, OUTPUT = RecommendationInput, RecommendationParameters, RecommendationOutput
