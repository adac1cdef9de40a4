"""Losses: each returns the batch-mean loss and its gradient with respect to the model output.

The cross-entropies take *logits*: the model hands them the pre-activation of a final
``Dense(..., activation='softmax' | 'sigmoid')`` (``fuses`` names that activation), which is
exact and never takes the log of a rounded-to-zero probability.
"""

from __future__ import annotations

import numpy as np

import seqkern

__all__ = ["SoftmaxCrossEntropy", "BinaryCrossEntropy", "MeanSquaredError", "get_loss"]


class SoftmaxCrossEntropy:
    """Multi-class cross-entropy of softmax(logits). ``y``: class ids (B,) or target
    distributions / one-hot rows (B, C). Loss = mean over rows of -sum_c y_c log p_c."""

    fuses = "softmax"
    name = "categorical_crossentropy"

    def __call__(self, logits: np.ndarray, y: np.ndarray):
        logits = np.ascontiguousarray(logits)
        B, C = logits.shape
        p = seqkern.softmax(logits, axis=-1)
        m = logits.max(axis=1, keepdims=True)
        logz = m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        y = np.asarray(y)
        if y.ndim == 1:
            idx = y.astype(np.int64)
            if idx.size and (idx.min() < 0 or idx.max() >= C):
                raise ValueError(f"{self.name}: class ids must be in [0, {C}), got [{idx.min()}, {idx.max()}]")
            loss = float(np.mean(logz[:, 0] - logits[np.arange(B), idx])) if B else 0.0
            grad = p
            grad[np.arange(B), idx] -= 1
        else:
            if y.shape != logits.shape:
                raise ValueError(f"{self.name}: y must have shape {logits.shape} or ({B},), got {y.shape}")
            t = y.astype(logits.dtype)
            loss = float(np.mean(np.sum(t * (logz - logits), axis=1))) if B else 0.0
            grad = p * t.sum(axis=1, keepdims=True) - t
        grad /= max(B, 1)
        return loss, grad


class BinaryCrossEntropy:
    """Binary cross-entropy of sigmoid(logits); logits (B,) or (B, 1), y in {0, 1} (or [0, 1])."""

    fuses = "sigmoid"
    name = "binary_crossentropy"

    def __call__(self, logits: np.ndarray, y: np.ndarray):
        z = np.asarray(logits)
        t = np.asarray(y, dtype=z.dtype).reshape(z.shape)
        # softplus(z) - t z, written so that exp never overflows.
        loss = float(np.mean(np.maximum(z, 0) - t * z + np.log1p(np.exp(-np.abs(z))))) if z.size else 0.0
        p = 1.0 / (1.0 + np.exp(-z))
        return loss, ((p - t) / max(z.size, 1)).astype(z.dtype)


class MeanSquaredError:
    """mean((pred - y)^2) over every entry."""

    fuses = None
    name = "mse"

    def __call__(self, pred: np.ndarray, y: np.ndarray):
        pred = np.asarray(pred)
        d = pred - np.asarray(y, dtype=pred.dtype).reshape(pred.shape)
        return float(np.mean(d * d)) if d.size else 0.0, (2.0 / max(d.size, 1)) * d


_LOSSES = {
    "categorical_crossentropy": SoftmaxCrossEntropy,
    "sparse_categorical_crossentropy": SoftmaxCrossEntropy,
    "cross_entropy": SoftmaxCrossEntropy,
    "binary_crossentropy": BinaryCrossEntropy,
    "mse": MeanSquaredError,
    "mean_squared_error": MeanSquaredError,
}


def get_loss(loss):
    if isinstance(loss, str):
        if loss not in _LOSSES:
            raise ValueError(f"unknown loss {loss!r}; known: {sorted(_LOSSES)}")
        return _LOSSES[loss]()
    return loss
