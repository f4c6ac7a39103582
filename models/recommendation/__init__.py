"""Recommendation: explicit ratings -> top-k items for a known user (rated items excluded), top-k for a
new user folded in from a few ratings, and predicted ratings for explicit (user, item) pairs.

    config.py    Config (stdlib only)
    data.py      formats `movielens` and `csv`, validation and loading (numpy only)
    serving.py   request <-> tensors (numpy only)
    training.py  matrix factorisation with biases (ALS) and the seed book's RBM, ONNX export (torch)
    bpmf.py      the default: Bayesian matrix factorisation with biases, by Gibbs sampling (torch)
    graph.py     pieces every exported graph shares: the fold-in's linear solve, the TopK exclusion
"""


from models.contract import Family

from . import config, data

TASK = "recommendation"
FAMILY = Family(
    task=TASK, package=__name__, formats=data.FORMATS, config=config.Config,
    check_config=config.check_against_dataset, archive_formats=data.ARCHIVE_FORMATS,
    calibration=True,
)
