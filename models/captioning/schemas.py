"""The predict contract of captioning (pydantic only): an image in, a sentence and its score out."""

from __future__ import annotations

from pydantic import Field

from models.common.schemas import BeamParameters, ImageInput, beam_output, integer, number


class CaptioningInput(ImageInput):
    __doc__ = ImageInput.__doc__


class CaptioningParameters(BeamParameters):
    length_penalty: number(0, 10) = Field(None, description="GNMT's alpha: 0 favours short captions; default: the "
                                                            "version's (metadata.decoding), else 1.0")
    max_length: integer(1, 1000) = Field(None, description="the longest caption to write, in words; at most the "
                                                          "version's metadata.max_length, which is the default")


CaptioningOutput = beam_output("CaptioningOutput", "caption", "the sentence", "The best caption of the image.")


# what Family.of reads: the predict contract's three models
INPUT, PARAMETERS, OUTPUT = CaptioningInput, CaptioningParameters, CaptioningOutput
