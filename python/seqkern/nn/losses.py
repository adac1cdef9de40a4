"""Losses: each returns the batch-mean loss and its gradient with respect to the model output.

The cross-entropies take *logits*: the model hands them the pre-activation of a final
``Dense(..., activation='softmax' | 'sigmoid')`` (``fuses`` names that activation), which is
exact and never takes the log of a rounded-to-zero probability.

``check_targets(y, where, outputs=None)`` refuses targets the loss has no meaning for (class ids
that are not whole numbers or out of range, binary targets outside [0, 1]) with an error that
starts with ``where``; the losses call it on every batch, ``Sequential.fit`` and ``evaluate`` on
all of ``y`` before any work.

Weights, as Keras reduces them: ``sample_weight`` (B,) scales each row's loss, and the sum is
divided by the number of rows (not by the sum of the weights). Per-token outputs (B, T, ...)
take ``mask`` (B, T), True at the real tokens: the loss is the mean over the real tokens only
(weighted by their row's weight), and padding gets no gradient, whatever its target holds.
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


def _row_weights(lead: tuple, sample_weight, mask, where: str):
    """(w, denominator): per-entry weights of shape ``lead`` (the output's shape without its class
    axis) and what the weighted sum is divided by."""
    w = np.ones(lead)
    if sample_weight is not None:
        sw = np.asarray(sample_weight, dtype=np.float64)
        if sw.shape != lead[:1]:
            raise ValueError(f"{where}: sample_weight must have shape ({lead[0]},), got {sw.shape}")
        w = w * sw.reshape(sw.shape + (1,) * (len(lead) - 1))
    if mask is None:
        return w, max(int(np.prod(lead)), 1)
    m = np.asarray(mask, dtype=bool)
    if m.shape != lead[: m.ndim] or m.ndim < 2:
        raise ValueError(f"{where}: mask must have shape {lead[:2]} (rows, steps), got {m.shape}")
    w = w * m.reshape(m.shape + (1,) * (len(lead) - m.ndim))
    return w, max(int(m.sum()) * int(np.prod(lead[m.ndim:])), 1)


class SoftmaxCrossEntropy:
    """Multi-class cross-entropy of softmax(logits). ``y``: class ids (B,) or target
    distributions / one-hot rows (B, C). Loss = mean over rows of -sum_c y_c log p_c.
    Per-token logits (B, T, C) take ids (B, T) or distributions (B, T, C) and a ``mask``."""

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

    def __call__(self, logits: np.ndarray, y: np.ndarray, sample_weight=None, mask=None):
        logits = np.ascontiguousarray(logits)
        lead, C = logits.shape[:-1], logits.shape[-1]
        w, den = _row_weights(lead, sample_weight, mask, self.name)
        y = np.asarray(y)
        valid = w != 0
        if y.shape == lead:
            self.check_targets(y[valid] if mask is not None else y.reshape(-1), f"{self.name}: y", C)
        elif y.shape != logits.shape:
            raise ValueError(f"{self.name}: y must have shape {logits.shape} or {lead}, got {y.shape}")
        z = logits.reshape(-1, C)
        n = z.shape[0]
        p = seqkern.softmax(z, axis=-1)
        m = z.max(axis=1, keepdims=True)
        logz = (m + np.log(np.exp(z - m).sum(axis=1, keepdims=True)))[:, 0]
        wf = w.reshape(-1)
        if y.shape == lead:
            # Masked entries may hold anything (padding): they are read as class 0 with weight 0.
            idx = np.where(valid, y, 0).reshape(-1).astype(np.int64)
            per = logz - z[np.arange(n), idx]
            grad = p
            grad[np.arange(n), idx] -= 1
        else:
            t = y.reshape(-1, C).astype(z.dtype)
            per = np.sum(t * (logz[:, None] - z), axis=1)
            grad = p * t.sum(axis=1, keepdims=True) - t
        loss = float(np.sum(wf * per) / den) if n else 0.0
        grad *= (wf / den).astype(grad.dtype)[:, None]
        return loss, grad.reshape(logits.shape)


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

    def __call__(self, logits: np.ndarray, y: np.ndarray, sample_weight=None, mask=None):
        z = np.asarray(logits)
        w, den = _row_weights(z.shape, sample_weight, mask, self.name)
        self.check_targets(np.asarray(y).reshape(z.shape)[w != 0], f"{self.name}: y")
        t = np.where(w != 0, np.asarray(y, dtype=z.dtype).reshape(z.shape), 0)
        # softplus(z) - t z, written so that exp never overflows.
        loss = float(np.sum(w * (np.maximum(z, 0) - t * z + np.log1p(np.exp(-np.abs(z))))) / den) if z.size else 0.0
        p = 1.0 / (1.0 + np.exp(-z))
        return loss, (w * (p - t) / den).astype(z.dtype)


class MeanSquaredError:
    """mean((pred - y)^2) over every entry."""

    fuses = None
    name = "mse"

    def __call__(self, pred: np.ndarray, y: np.ndarray, sample_weight=None, mask=None):
        pred = np.asarray(pred)
        d = pred - np.asarray(y, dtype=pred.dtype).reshape(pred.shape)
        if sample_weight is None and mask is None:
            return float(np.mean(d * d)) if d.size else 0.0, (2.0 / max(d.size, 1)) * d
        w, den = _row_weights(pred.shape, sample_weight, mask, self.name)
        d = np.where(w != 0, d, 0)
        return float(np.sum(w * d * d) / den), ((2.0 / den) * w * d).astype(pred.dtype)


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
