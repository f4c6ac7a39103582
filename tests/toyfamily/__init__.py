"""A toy seventh family, tabular regression: a CSV of numeric columns `x1..xn,y` in, a number out.

It lives in the test tree to prove that a family is one folder plus its registration
(DLSERVE_FAMILIES=regression=tests.toyfamily); docs/families.md walks through it.

    config.py    Config (stdlib only)
    data.py      the `csv` format: validation and loading (numpy only)
    schemas.py   the predict contract: RegressionInput, RegressionParameters, RegressionOutput (pydantic)
    serving.py   {"features": [x1, ..., xn]} -> {"value": y} (numpy only)
    training.py  a linear model, trained and exported to ONNX (torch; workers only)
    evaluation.py  a version folder scored with ONNX Runtime on the validation split (int8 versions' gate)
"""

from models.common.errors import VALUE
from models.contract import Family, QuantisationGate

from . import config, data, schemas

TASK = "regression"
METRICS = {"train_loss": "mean squared error of the last epoch's training batches",
           "val_mse": "mean squared error on the validation split", "val_mae": "mean absolute error on it"}
# item_faults: a row of the wrong length or with a number out of range is one row of the batch
# quantisation: an int8 version may add at most 0.05 to the validation MSE (y is of the order of 5)
FAMILY = Family.of(TASK, __name__, config, data, schemas, metrics=METRICS, item_faults=frozenset({VALUE}),
                   best_metric=("val_mse", "min"), calibration=True,
                   quantisation=QuantisationGate("val_mse", "min", 0.05, ("static", "dynamic")))
