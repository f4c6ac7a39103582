"""The predict contract of detection (pydantic only): an image in, boxes with labels and scores out."""

from __future__ import annotations

from pydantic import Field

from models.common.schemas import ImageInput, Strict, integer, number

DEFAULTS = {"score_threshold": 0.25, "iou_threshold": 0.5, "max_detections": 100}


class DetectionInput(ImageInput):
    __doc__ = ImageInput.__doc__


class DetectionParameters(Strict):
    score_threshold: number(0, 1) = Field(DEFAULTS["score_threshold"], description="boxes scoring below it are dropped")
    iou_threshold: number(0, 1) = Field(DEFAULTS["iou_threshold"],
                                        description="non-maximum suppression: a box overlapping a better one of its "
                                                    "class by more than this intersection over union is dropped")
    max_detections: integer(1, 1000) = Field(DEFAULTS["max_detections"],
                                             description="at most this many boxes, best first")


class Detection(Strict):
    box: list[float] = Field(min_length=4, max_length=4,
                             description="x1, y1, x2, y2 in the original image's pixels (2 decimals)")
    label: str = Field(description="the class's name (metadata.labels), or its index as a string")
    score: float = Field(ge=0, le=1, description="the class score (5 decimals)")


class DetectionOutput(Strict):
    """The objects found in the image."""

    detections: list[Detection] = Field(description="best first, after class-wise non-maximum suppression",
                                        examples=[[{"box": [12.0, 8.5, 40.25, 33.0], "label": "red", "score": 0.97}]])


# what Family.of reads: the predict contract's three models
INPUT, PARAMETERS, OUTPUT = DetectionInput, DetectionParameters, DetectionOutput
