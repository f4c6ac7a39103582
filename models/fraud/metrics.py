"""Scoring metrics for imbalanced data (numpy only). `w` weights legitimate rows (label 0) so that a
sample with frauds over-represented is measured as if at its natural prevalence; ROC-AUC does not
depend on class weights, PR-AUC and precision do."""

from __future__ import annotations

from typing import Any

import numpy as np


def negative_weight(y: np.ndarray, prevalence: float | None, weight: float | None) -> float:
    """The weight of a legitimate row: given, or what brings the fraud share of y to `prevalence`."""
    if weight is not None:
        return float(weight)
    if prevalence is None:
        return 1.0
    pos, neg = int(y.sum()), int(len(y) - y.sum())
    return (1 - prevalence) / prevalence * pos / max(neg, 1)


def roc_auc(y: np.ndarray, s: np.ndarray) -> float:
    """Probability that a random fraud outscores a random legitimate row (ties count half)."""
    pos, neg = s[y == 1], s[y == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), np.float64)
    ranks[order] = np.arange(1, len(s) + 1)
    # average ranks over ties
    sorted_s = s[order]
    _, start, counts = np.unique(sorted_s, return_index=True, return_counts=True)
    for st, c in zip(start, counts, strict=False):
        if c > 1:
            ranks[order[st:st + c]] = st + (c + 1) / 2
    return float((ranks[y == 1].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def _curve(y: np.ndarray, s: np.ndarray, w_neg: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """At each distinct score t (descending): weighted tp, fp at score >= t, and t."""
    order = np.argsort(-s, kind="mergesort")
    ys, ss = y[order], s[order]
    tp = np.cumsum(ys == 1).astype(np.float64)
    fp = np.cumsum(ys == 0).astype(np.float64) * w_neg
    last = np.r_[np.nonzero(np.diff(ss))[0], len(ss) - 1]  # the last row of each distinct score
    return tp[last], fp[last], ss[last], last


def pr_auc(y: np.ndarray, s: np.ndarray, w_neg: float = 1.0) -> float:
    """Average precision: sum over thresholds of (recall step) x precision, legit rows weighted."""
    tp, fp, _, _ = _curve(y, s, w_neg)
    total = y.sum()
    if total == 0:
        return float("nan")
    recall = tp / total
    precision = tp / np.maximum(tp + fp, 1e-12)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def choose_threshold(y: np.ndarray, s: np.ndarray, w_neg: float, target_precision: float | None = None,
                     target_recall: float | None = None) -> tuple[float, str]:
    """A score threshold (is_fraud = score >= threshold) and a sentence saying how it was chosen."""
    tp, fp, t, _ = _curve(y, s, w_neg)
    total = max(int(y.sum()), 1)
    recall = tp / total
    precision = tp / np.maximum(tp + fp, 1e-12)
    if target_precision is not None:
        ok = np.nonzero(precision >= target_precision)[0]
        if len(ok):
            i = ok[np.argmax(recall[ok])]
            return float(t[i]), f"highest recall with precision >= {target_precision}"
        i = int(np.argmax(precision))
        return float(t[i]), f"no threshold reaches precision {target_precision}; the most precise one"
    if target_recall is not None:
        ok = np.nonzero(recall >= target_recall)[0]
        i = int(ok[0]) if len(ok) else len(t) - 1
        return float(t[i]), f"highest threshold with recall >= {target_recall}"
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    i = int(np.argmax(f1))
    return float(t[i]), "best F1"


def at_threshold(y: np.ndarray, s: np.ndarray, threshold: float, w_neg: float) -> dict[str, Any]:
    pred = s >= threshold
    tp = int(np.sum(pred & (y == 1)))
    fp = int(np.sum(pred & (y == 0)))
    fn = int(np.sum(~pred & (y == 1)))
    tn = int(np.sum(~pred & (y == 0)))
    precision = tp / (tp + fp * w_neg) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1,
            "confusion_matrix": {"tn": tn, "fp": fp, "fn": fn, "tp": tp}}


def report(y: np.ndarray, s: np.ndarray, threshold: float, w_neg: float) -> dict[str, Any]:
    """Every standard metric of a scored validation split."""
    out = {"roc_auc": roc_auc(y, s), "pr_auc": pr_auc(y, s, w_neg), "pr_auc_sample": pr_auc(y, s, 1.0),
           "negative_weight": w_neg, "threshold": threshold}
    out.update(at_threshold(y, s, threshold, w_neg))
    return out
