"""The predict contract of fraud scoring (pydantic only): a transaction record in, a score and a decision out."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field

from models.common.schemas import FiniteNumber, ItemModel, Strict, integer

DEFAULT_TOP_FEATURES = 3


class FraudInput(ItemModel):
    """One transaction, by feature name. Which names, and that every one is present, depend on the version."""

    form: ClassVar[str] = '{"features": {"name": value, ...}}'
    features: dict[str, Any] = Field(
        description="a number (within float32's range) for every feature of the version (its metadata.features); "
                    "the training file's other columns (metadata.ignored_columns: the label, dropped columns such "
                    "as Time) may be sent too and are not read, so a row of that file is scored as it is",
        examples=[{"Time": 406, "V1": -2.31, "V2": 1.95, "Amount": 0.0}])


class FraudParameters(Strict):
    top_features: integer(0) = Field(DEFAULT_TOP_FEATURES, description="how many features to name as the score's "
                                                                       "drivers, largest contribution first")
    threshold: FiniteNumber = Field(None, description="decide is_fraud at this score instead of the version's "
                                                      "threshold (chosen on the validation split)")


class Contribution(Strict):
    feature: str
    contribution: float = Field(description="how much the feature added to the score (the model's own measure)")


class FraudOutput(Strict):
    """The score of the transaction and the decision at the threshold."""

    score: float = Field(description="higher is more likely fraud (a probability, or a reconstruction error)")
    is_fraud: bool = Field(description="score >= threshold")
    threshold: float = Field(description="the threshold the decision used")
    top_features: list[Contribution] = Field(description="top_features of them, largest contribution first")


# what Family.of reads: the predict contract's three models
INPUT, PARAMETERS, OUTPUT = FraudInput, FraudParameters, FraudOutput
