"""Fraud scoring: tabular transaction records -> a fraud score, a decision at a threshold chosen on the
validation split, and the features that drove the score.

    config.py    Config (stdlib only)
    data.py      the `csv` format: validation and loading (numpy only)
    metrics.py   ROC-AUC, prevalence-weighted PR-AUC, threshold choice (numpy only)
    serving.py   {"features": {name: value}} -> {"score", "is_fraud", "threshold", "top_features"} (numpy only)
    training.py  autoencoders, MLP and hybrid scorers, export to ONNX (torch; workers only)
"""


from models.contract import Family

from . import config, data

TASK = "fraud"
FAMILY = Family(
    task=TASK, package=__name__, formats=data.FORMATS, config=config.Config,
    check_config=config.check_against_dataset, archive_formats=data.ARCHIVE_FORMATS,
    calibration=True,
)
