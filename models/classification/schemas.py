"""The predict contract of classification (pydantic only): an image in, the top-k labels out."""

from __future__ import annotations

from pydantic import Field

from models.common.schemas import ImageInput, Strict, integer

DEFAULT_TOP_K = 5


class ClassificationInput(ImageInput):
    __doc__ = ImageInput.__doc__


class ClassificationParameters(Strict):
    top_k: integer(1) = Field(DEFAULT_TOP_K, description="how many labels to answer, best first (more than the "
                                                         "model has classes: all of them)")


class Label(Strict):
    label: str = Field(description="the class's name (metadata.labels), or its index as a string")
    score: float = Field(ge=0, le=1, description="its softmax probability")


class ClassificationOutput(Strict):
    """The most probable classes of the image."""

    labels: list[Label] = Field(description="top_k labels (all, when the model has fewer classes), best first",
                                examples=[[{"label": "cat", "score": 0.91}, {"label": "dog", "score": 0.06}]])


# what Family.of reads: the predict contract's three models
INPUT, PARAMETERS, OUTPUT = ClassificationInput, ClassificationParameters, ClassificationOutput
