"""Classification metrics over a whole epoch or evaluation: accuracy, precision, recall, F1 and
ROC AUC, by Keras's names.

Every metric takes ``scores`` (N, C) class probabilities, or (N,) probabilities of class 1 for a
single sigmoid output, and ``truth`` (N,) class ids. Binary problems (one sigmoid unit, or two
classes) report the positive class 1; with three or more classes each metric is the unweighted
mean over the classes (macro), each class against the rest. Prediction is the arg-max class, or
probability > 0.5 for one unit.

- precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN); a ratio
  with a zero denominator counts as 0 (Keras's and scikit-learn's ``zero_division=0``).
- AUC is exact, from ranks (the Mann-Whitney statistic): (sum of the positives' ranks -
  P (P + 1) / 2) / (P N), tied scores sharing their mean rank. It is NaN for a class with no
  positive or no negative row; the macro mean skips such classes (NaN if every class has one).
"""

from __future__ import annotations

import numpy as np

__all__ = ["METRICS", "compute", "predicted", "precision_recall_f1", "roc_auc", "rank_auc"]

METRICS = ("accuracy", "precision", "recall", "f1", "auc")


def _ranks(a: np.ndarray) -> np.ndarray:
    """1-based ranks of ``a``, tied values sharing the mean of their ranks."""
    order = np.argsort(a, kind="stable")
    s = a[order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
    ends = np.r_[starts[1:], len(s)]
    mean_rank = (starts + ends + 1) / 2.0  # ranks starts+1 .. ends, averaged
    ranks = np.empty(len(a))
    ranks[order] = np.repeat(mean_rank, ends - starts)
    return ranks


def rank_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """ROC AUC of ``score`` (N,) for the boolean labels ``positive`` (N,); NaN without both classes."""
    positive = np.asarray(positive, dtype=bool)
    P = int(positive.sum())
    N = positive.size - P
    if P == 0 or N == 0:
        return float("nan")
    r = _ranks(np.asarray(score, dtype=np.float64))
    return float((r[positive].sum() - P * (P + 1) / 2.0) / (P * N))


def _binary(scores: np.ndarray) -> bool:
    return scores.ndim == 1 or scores.shape[1] <= 2


def predicted(scores: np.ndarray) -> np.ndarray:
    """The predicted class ids: arg-max, or probability > 0.5 for (N,) scores."""
    if scores.ndim == 1:
        return (scores > 0.5).astype(np.int64)
    return scores.argmax(axis=1)


def precision_recall_f1(scores: np.ndarray, truth: np.ndarray) -> tuple[float, float, float]:
    """(precision, recall, F1): of class 1 for binary problems, macro means otherwise."""
    pred = predicted(scores)
    classes = [1] if _binary(scores) else range(scores.shape[1])
    p, r, f = [], [], []
    for c in classes:
        tp = int(np.sum((pred == c) & (truth == c)))
        fp = int(np.sum((pred == c) & (truth != c)))
        fn = int(np.sum((pred != c) & (truth == c)))
        p.append(tp / (tp + fp) if tp + fp else 0.0)
        r.append(tp / (tp + fn) if tp + fn else 0.0)
        f.append(2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0)
    return float(np.mean(p)), float(np.mean(r)), float(np.mean(f))


def roc_auc(scores: np.ndarray, truth: np.ndarray) -> float:
    """AUC of class 1 for binary problems; the macro mean of one-against-the-rest AUCs otherwise."""
    if scores.ndim == 1:
        return rank_auc(scores, truth == 1)
    if scores.shape[1] == 2:
        return rank_auc(scores[:, 1], truth == 1)
    aucs = [rank_auc(scores[:, c], truth == c) for c in range(scores.shape[1])]
    aucs = [a for a in aucs if not np.isnan(a)]
    return float(np.mean(aucs)) if aucs else float("nan")


def compute(names, scores: np.ndarray, truth: np.ndarray) -> dict:
    """{name: value} of every metric in ``names`` (a subset of :data:`METRICS`)."""
    scores = np.asarray(scores, dtype=np.float64)
    truth = np.asarray(truth).astype(np.int64)
    out = {}
    if "accuracy" in names:
        out["accuracy"] = float(np.mean(predicted(scores) == truth)) if truth.size else 0.0
    if {"precision", "recall", "f1"} & set(names):
        prf = dict(zip(("precision", "recall", "f1"), precision_recall_f1(scores, truth)))
        out.update({k: v for k, v in prf.items() if k in names})
    if "auc" in names:
        out["auc"] = roc_auc(scores, truth)
    return out
