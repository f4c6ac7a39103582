"""The predict contract of the toy regression family (pydantic only): a row of numbers in, a number out."""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import ConfigDict, Field

from models.common.schemas import ItemModel, NoParameters, Strict

LIMIT = 1e30  # serving refuses larger magnitudes
Value = Annotated[float, Field(ge=-LIMIT, le=LIMIT, allow_inf_nan=False)]


class RegressionInput(ItemModel):
    """One row of features, in the order of the training file's columns (metadata.features)."""

    model_config = ConfigDict(extra="ignore")  # serving reads `features` alone
    form: ClassVar[str] = '{"features": [x1, ..., xn]}'
    features: list[Value] = Field(min_length=1, description="one number per feature, as many as the version has",
                                  examples=[[1.5, -2.0]])


class RegressionParameters(NoParameters):
    pass


class RegressionOutput(Strict):
    """The predicted value."""

    value: float


# what Family.of reads: the predict contract's three models
INPUT, PARAMETERS, OUTPUT = RegressionInput, RegressionParameters, RegressionOutput
