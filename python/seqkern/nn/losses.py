"""Losses: each returns the batch-mean loss and its gradient with respect to the model output.

The cross-entropies take *logits*: the model hands them the pre-activation of a final
``Dense(..., activation='softmax' | 'sigmoid')`` (``fuses`` names that activation), which is
exact and never takes the log of a rounded-to-zero probability.

``check_targets(y, where, outputs=None)`` refuses targets the loss has no meaning for (class ids
that are not whole numbers or out of range, binary targets outside [0, 1]) with an error that
starts with ``where``; the losses call it on every batch, ``Sequential.fit`` and ``evaluate`` on
all of ``y`` before any work.
"""

from __future__ import annotations

import numpy as np

import seqkern

__all__ = ["SoftmaxCrossEntropy", "BinaryCrossEntropy", "MeanSquaredError", "get_loss"]


def _first(bad: np.ndarray, y: np.ndarray) -> str:
    """'<value> (row <i>)' of the first True of ``bad``."""
    i = np.unravel_index(int(np.argmax(bad)), bad.shape)
    return f"{y[i]}" + (f" (row {i[0]})" if i else "")


def _numeric(y: np.ndarray, where: str, what: str) -> None:
    if y.dtype.kind not in "biuf":
        raise TypeError(f"{where} must hold {what}, got dtype {y.dtype}")


class SoftmaxCrossEntropy:
    """Multi-class cross-entropy of softmax(logits). ``y``: class ids (B,) or target
    distributions / one-hot rows (B, C). Loss = mean over rows of -sum_c y_c log p_c."""

    fuses = "softmax"
    name = "categorical_crossentropy"

    def check_targets(self, y, where, outputs=None):
        """Class ids (1-D): whole numbers in [0, outputs); distributions (2-D): numbers."""
        y = np.asarray(y)
        if y.ndim != 1:
            _numeric(y, where, "target distributions")
            return
        _numeric(y, where, "integer class ids")
        if y.dtype.kind == "f":
            whole = np.isfinite(y) & (y == np.floor(y))
            if not whole.all():
                raise ValueError(f"{where} must hold whole class ids, got {_first(~whole, y)}")
        if y.size and (y.min() < 0 or (outputs is not None and y.max() >= outputs)):
            top = "" if outputs is None else f", {outputs}"
            raise ValueError(f"{where}: class ids must be in [0{top}), got [{y.min()}, {y.max()}]")

    def __call__(self, logits: np.ndarray, y: np.ndarray):
        logits = np.ascontiguousarray(logits)
        B, C = logits.shape
        p = seqkern.softmax(logits, axis=-1)
        m = logits.max(axis=1, keepdims=True)
        logz = m + np.log(np.exp(logits - m).sum(axis=1, keepdims=True))
        y = np.asarray(y)
        self.check_targets(y, f"{self.name}: y", C)
        if y.ndim == 1:
            idx = y.astype(np.int64)
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

    def check_targets(self, y, where, outputs=None):
        """Targets in [0, 1] (NaN is refused)."""
        y = np.asarray(y)
        _numeric(y, where, "binary targets in [0, 1]")
        inside = (y >= 0) & (y <= 1)
        if not inside.all():
            raise ValueError(f"{where} must hold binary targets in [0, 1], got {_first(~inside, y)}")

    def __call__(self, logits: np.ndarray, y: np.ndarray):
        z = np.asarray(logits)
        self.check_targets(y, f"{self.name}: y")
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
