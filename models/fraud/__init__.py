"""Fraud scoring: tabular transaction records -> a fraud score, a decision at a threshold chosen on the
validation split, and the features that drove the score.

    config.py    Config (stdlib only)
    data.py      the `csv` format: validation and loading (numpy only)
    metrics.py   ROC-AUC, prevalence-weighted PR-AUC, threshold choice (numpy only)
    serving.py   {"features": {name: value}} -> {"score", "is_fraud", "threshold", "top_features"} (numpy only)
    training.py  autoencoders, MLP and hybrid scorers, export to ONNX (torch; workers only)
"""


from models.common.errors import VALUE
from models.contract import Family, QuantisationGate, metric_table

from . import config, data, schemas

TASK = "fraud"
METRICS = metric_table("""
    train_loss            with an arch of one phase (all but hybrid): the last epoch's mean training loss
    train_loss_ae         with arch hybrid: the autoencoder phase's last mean training loss
    train_loss_clf        with arch hybrid: the classifier phase's last mean training loss
    val_roc_auc           ROC-AUC of the scores on the validation split
    val_pr_auc            average precision, legitimate rows weighted to the natural prevalence (val_negative_weight)
    val_pr_auc_sample     average precision of the split as it is (unweighted)
    val_negative_weight   the weight of a legitimate row in the weighted metrics
    val_threshold         the score threshold chosen on the validation split (served as the decision)
    val_precision         precision at val_threshold (weighted)
    val_recall            recall at val_threshold
    val_f1                F1 at val_threshold
    val_confusion_matrix  {tn, fp, fn, tp} counts at val_threshold
""")
# measured (benchmarks/quantisation_methods.py): dynamic keeps the ROC-AUC; static loses ~0.035 (nothing with
# only Gemm/MatMul quantised: the score's sigmoid wants float); auto tries both and keeps the faster
QUANTISATION = QuantisationGate("val_roc_auc", "max", 0.005, methods=("static", "dynamic"),  # issue 20's default
                                op_types=("Conv", "MatMul", "Gemm"))
# item_faults: a record with a feature missing, not a number or past float32 is one row of the batch; a
# feature the version does not know (the client's schema is not the version's) fails the request
FAMILY = Family.of(TASK, __name__, config, data, schemas, metrics=METRICS, item_faults=frozenset({VALUE}),
                   best_metric=("val_pr_auc", "max"), calibration=True,
                   triton="features [N, F] scaled as metadata.scaling on the client; scores: threshold on the client",
                   quantisation=QUANTISATION)
