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
from models.contract import Family, QuantisationGate, metric_table

from . import config, data, schemas

TASK = "recommendation"
METRICS = metric_table("""
    train_loss         mean squared error of the training ratings (rbm: of their reconstruction) at the last epoch
    val_rmse           root mean squared error of the held-out ratings
    val_mae            mean absolute error of the held-out ratings
    val_baseline_rmse  the RMSE of predicting the mean rating for every held-out one
    val_held_out       the held-out ratings measured
    val_hr_at_10       leave-one-out hit rate: share of users whose held-out item ranks in the top 10 of 100 sampled
    val_ndcg_at_10     leave-one-out NDCG@10 of the held-out item among the sampled ones
""")
# RMSE in rating units
# measured (benchmarks/quantisation_methods.py): with 8-bit weights every method lost 0.205 RMSE, all of it
# in the last MatMul (factors x items), whose int16 sums saturate on a CPU without VNNI; with the 7-bit
# weights workers/int8.py uses, dynamic loses 0.0002 for known users and 0.001 for folded-in ones. Static
# keeps known users' RMSE but breaks the fold-in solve (RMSE 2.6 with only MatMul/Gemm quantised), which
# evaluate_onnx does not score (it feeds known users): static is not tried
QUANTISATION = QuantisationGate("val_rmse", "min", 0.005, methods=("dynamic",))  # issue 20's default
# item_faults: a rating out of range, an item rated twice or a k past max_k is one user's input; unknown ids
# are no fault (answered "known": false)
FAMILY = Family.of(TASK, __name__, config, data, schemas, metrics=METRICS, item_faults=frozenset({VALUE}),
                   best_metric=("val_rmse", "min"), calibration=True,
                   triton="user [N], ratings [N, I]; ranking and fold-in in the graph; id maps on the client",
                   quantisation=QUANTISATION)
