"""seqkern.nn.metrics against hand-computed values and a pairwise definition of AUC, and the
metrics as fit and evaluate report them."""

from __future__ import annotations

import numpy as np
import pytest

from seqkern import nn
from seqkern.nn import metrics


def _pairwise_auc(score, positive):
    """P(score of a positive > score of a negative) + P(tie) / 2, over every pair."""
    pos, neg = score[positive], score[~positive]
    diff = pos[:, None] - neg[None, :]
    return float(np.mean((diff > 0) + 0.5 * (diff == 0)))


def test_auc_hand_computed():
    assert metrics.rank_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    # A tie between a positive and a negative counts one half: (0.5 + 1 + 1 + 1) / 4.
    assert metrics.rank_auc(np.array([0.5, 0.5, 0.2, 0.9]), np.array([1, 0, 0, 1])) == pytest.approx(0.875)
    assert np.isnan(metrics.rank_auc(np.array([0.1, 0.2]), np.array([1, 1])))


def test_auc_matches_the_pairwise_definition_with_ties(rng):
    for _ in range(20):
        n = int(rng.integers(2, 40))
        score = rng.integers(0, 5, size=n) / 4.0  # many ties
        positive = rng.random(n) < 0.4
        if positive.all() or not positive.any():
            continue
        assert metrics.rank_auc(score, positive) == pytest.approx(_pairwise_auc(score, positive), abs=1e-12)


def test_binary_precision_recall_f1_hand_computed():
    truth = np.array([1, 1, 0, 0, 1, 0])
    prob = np.array([0.9, 0.2, 0.7, 0.6, 0.8, 0.1])  # predictions 1 0 1 1 1 0: TP 2, FP 2, FN 1
    p, r, f = metrics.precision_recall_f1(prob, truth)
    assert (p, r, f) == pytest.approx((0.5, 2 / 3, 4 / 7))
    # Two softmax classes are the same binary problem (class 1 positive).
    two = np.stack([1 - prob, prob], axis=1)
    assert metrics.precision_recall_f1(two, truth) == pytest.approx((p, r, f))
    assert metrics.roc_auc(two, truth) == pytest.approx(metrics.roc_auc(prob, truth))
    assert metrics.roc_auc(prob, truth) == pytest.approx(_pairwise_auc(prob, truth == 1))
    # Nothing predicted positive: precision 0, not a division by zero.
    assert metrics.precision_recall_f1(np.zeros(4), np.array([1, 0, 1, 0])) == (0.0, 0.0, 0.0)


def test_macro_metrics_hand_computed():
    truth = np.array([0, 0, 1, 1, 2, 2, 2])
    pred = np.array([0, 1, 1, 1, 2, 0, 1])
    scores = np.eye(3)[pred] * 0.8 + 0.1
    # class 0: TP 1 FP 1 FN 1; class 1: TP 2 FP 2 FN 0; class 2: TP 1 FP 0 FN 2
    p = (1 / 2 + 2 / 4 + 1 / 1) / 3
    r = (1 / 2 + 2 / 2 + 1 / 3) / 3
    f = (2 / 4 + 4 / 6 + 2 / 4) / 3
    assert metrics.precision_recall_f1(scores, truth) == pytest.approx((p, r, f))
    out = metrics.compute(("accuracy", "precision", "recall", "f1", "auc"), scores, truth)
    assert out["accuracy"] == pytest.approx(4 / 7)
    aucs = [_pairwise_auc(scores[:, c], truth == c) for c in range(3)]
    assert out["auc"] == pytest.approx(np.mean(aucs))


def test_macro_auc_skips_a_class_without_rows():
    truth = np.array([0, 0, 1, 1])
    scores = np.array([[0.7, 0.2, 0.1], [0.4, 0.5, 0.1], [0.3, 0.6, 0.1], [0.2, 0.7, 0.1]])
    expected = np.mean([_pairwise_auc(scores[:, c], truth == c) for c in (0, 1)])
    assert metrics.roc_auc(scores, truth) == pytest.approx(expected)


def _binary_model(metric_names):
    rng = np.random.default_rng(0)
    model = nn.Sequential([nn.Embedding(10, 4, seed=rng), nn.MeanPool(), nn.Dense(4, 1, activation="sigmoid", seed=rng)])
    return model.compile(nn.Adam(0.05), "binary_crossentropy", metric_names)


def test_fit_and_evaluate_report_the_metrics(rng):
    x = rng.integers(1, 10, size=(60, 5))
    y = (x[:, 0] > 5).astype(np.int64)
    names = ("accuracy", "precision", "recall", "f1", "auc")
    model = _binary_model(names)
    hist = model.fit(x, y, epochs=2, batch_size=16, validation_data=(x[:20], y[:20]), verbose=0, seed=0)
    for k in names:
        assert len(hist[k]) == 2 and len(hist[f"val_{k}"]) == 2
    res = model.evaluate(x, y)
    prob = model.predict(x).reshape(-1)
    expected = metrics.compute(names, prob, y)
    for k in names:
        assert res[k] == pytest.approx(expected[k]), k
    assert res["auc"] == pytest.approx(_pairwise_auc(prob, y == 1))
    assert hist["val_auc"][-1] == pytest.approx(model.evaluate(x[:20], y[:20])["auc"])


def test_unknown_metric_is_refused():
    with pytest.raises(ValueError, match=r"compile: metrics holds 'acc'; known metrics: \['accuracy', 'precision'"):
        _binary_model(("acc",))
