"""The fraud metrics (numpy) against values worked out by hand."""

import numpy as np
import pytest

from models.fraud import metrics as M


def test_roc_auc_counts_pairs_and_halves_ties():
    y = np.array([0, 0, 1, 1])
    assert M.roc_auc(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.75)
    assert M.roc_auc(y, np.array([0.5, 0.5, 0.5, 0.5])) == pytest.approx(0.5)


def test_pr_auc_and_precision_weight_legitimate_rows():
    y = np.array([1, 0, 1, 0])
    s = np.array([0.9, 0.8, 0.7, 0.1])
    # unweighted: precision 1 at recall 0.5, 2/3 at recall 1
    assert M.pr_auc(y, s) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # each legitimate row counts 10 times: 2 / (2 + 10) at recall 1
    assert M.pr_auc(y, s, 10.0) == pytest.approx(0.5 * 1 + 0.5 * 2 / 12)
    at = M.at_threshold(y, s, 0.7, 10.0)
    assert at["precision"] == pytest.approx(2 / 12) and at["recall"] == 1.0
    assert at["confusion_matrix"] == {"tn": 1, "fp": 1, "fn": 0, "tp": 2}
    assert M.negative_weight(np.array([1, 1, 0, 0]), 0.1, None) == pytest.approx(9.0)


def test_thresholds_meet_their_targets():
    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.1).astype(int)
    s = rng.normal(size=2000) + 2.0 * y
    t, rule = M.choose_threshold(y, s, 1.0, target_recall=0.9)
    assert M.at_threshold(y, s, t, 1.0)["recall"] >= 0.9 and "recall" in rule
    t, _ = M.choose_threshold(y, s, 1.0, target_precision=0.8)
    assert M.at_threshold(y, s, t, 1.0)["precision"] >= 0.8
