"""Recommendation: explicit ratings -> top-k items for a known user (rated items excluded), top-k for a
new user folded in from a few ratings, and predicted ratings for explicit (user, item) pairs.

    config.py    Config (stdlib only)
    data.py      formats `movielens` and `csv`, validation and loading (numpy only)
    serving.py   request <-> tensors (numpy only)
    training.py  matrix factorisation with biases (ALS) and the seed book's RBM, ONNX export (torch)
    bpmf.py      the default: Bayesian matrix factorisation with biases, by Gibbs sampling (torch)
    graph.py     pieces every exported graph shares: the fold-in's linear solve, the TopK exclusion
"""


from models.common.errors import VALUE
from models.contract import Family

from . import config, data, schemas

TASK = "recommendation"
FAMILY = Family(
    task=TASK, package=__name__, formats=data.FORMATS, config=config.Config,
    check_config=config.check_against_dataset, archive_formats=data.ARCHIVE_FORMATS,
    predict_input=schemas.RecommendationInput, predict_parameters=schemas.RecommendationParameters,
    predict_output=schemas.RecommendationOutput,
    # a rating out of range, an item rated twice or a k past max_k is one user's input; unknown ids
    # are no fault (answered "known": false)
    item_faults=frozenset({VALUE}),
)
