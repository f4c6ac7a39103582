"""A toy seventh family, tabular regression: a CSV of numeric columns `x1..xn,y` in, a number out.

It lives in the test tree to prove that a family is one folder plus its registration
(DLSERVE_FAMILIES=regression=tests.toyfamily); docs/families.md walks through it.

    config.py    Config (stdlib only)
    data.py      the `csv` format: validation and loading (numpy only)
    serving.py   {"features": [x1, ..., xn]} -> {"value": y} (numpy only)
    training.py  a linear model, trained and exported to ONNX (torch; workers only)
"""

from models.contract import Family

from . import config, data

TASK = "regression"
FAMILY = Family(
    task=TASK, package=__name__, formats=data.FORMATS, config=config.Config,
    check_config=config.check_against_dataset, archive_formats=data.ARCHIVE_FORMATS,
    best_metric=("val_mse", "min"),
)
