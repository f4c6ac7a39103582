"""Machine translation: parallel text in, a Transformer (or LSTM + attention) encoder-decoder trained with
subword vocabularies, exported as an encoder graph and a cached decoder-step graph, served with beam search."""


from models.contract import Family

from . import config, data

TASK = "translation"
FAMILY = Family(
    task=TASK, package=__name__, formats=data.FORMATS, config=config.Config,
    check_config=config.check_against_dataset, archive_formats=data.ARCHIVE_FORMATS,
    either_formats=data.EITHER_FORMATS,
    multi_file=True, batch_padding=True, warmup_feeds=True,
    calibration=True,
)
