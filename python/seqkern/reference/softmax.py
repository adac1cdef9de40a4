"""Softmax: the forward over one axis with an optional mask of kept entries (masked entries and
rows with nothing kept give 0) and its backward. The attention references build on both."""

from __future__ import annotations

import numpy as np

__all__ = ["softmax", "softmax_forward", "softmax_backward"]


def softmax(x: np.ndarray, axis: int = -1, mask: np.ndarray | None = None) -> np.ndarray:
    """y = exp(x - max) / sum(exp(x - max)) over ``axis``, over the entries ``mask`` keeps.

    Masked entries get 0. A row with nothing kept, or whose kept entries are all -inf, is all 0.
    """
    x = np.asarray(x)
    keep = np.ones(x.shape, dtype=bool) if mask is None else np.broadcast_to(mask, x.shape)
    neg_inf = np.array(-np.inf, dtype=x.dtype)
    scores = np.where(keep, x, neg_inf)
    row_max = np.max(scores, axis=axis, keepdims=True, initial=-np.inf)
    # Rows with nothing kept have max -inf; shift them by 0 so exp(-inf) gives 0, not NaN.
    shift = np.where(row_max == -np.inf, np.zeros_like(row_max), row_max)
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - shift)
    total = np.sum(e, axis=axis, keepdims=True)
    safe_total = np.where(total == 0, np.ones_like(total), total)
    return np.where(total == 0, np.zeros_like(e), e / safe_total)


softmax_forward = softmax


def softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1) -> np.ndarray:
    """dx = y * (dy - <y, dy>), the inner product taken over ``axis``."""
    return y * (dy - np.sum(y * dy, axis=axis, keepdims=True))
