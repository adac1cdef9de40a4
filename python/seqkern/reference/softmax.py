"""Softmax: the forward over one axis with an optional mask of kept entries (masked entries and
rows with nothing kept give 0) and its backward; the log-softmax and its backward. The attention
references build on the softmax."""

from __future__ import annotations

import numpy as np

__all__ = ["softmax", "softmax_forward", "softmax_backward", "log_softmax", "log_softmax_backward"]


def _shifted_exp(x, axis, mask):
    """The kept scores (masked entries -inf), their row max (0 for a row with nothing kept),
    exp(scores - max) and its row sum."""
    x = np.asarray(x)
    keep = np.ones(x.shape, dtype=bool) if mask is None else np.broadcast_to(mask, x.shape)
    neg_inf = np.array(-np.inf, dtype=x.dtype)
    scores = np.where(keep, x, neg_inf)
    row_max = np.max(scores, axis=axis, keepdims=True, initial=-np.inf)
    # Rows with nothing kept have max -inf; shift them by 0 so exp(-inf) gives 0, not NaN.
    shift = np.where(row_max == -np.inf, np.zeros_like(row_max), row_max)
    with np.errstate(invalid="ignore"):
        e = np.exp(scores - shift)
    return scores, shift, e, np.sum(e, axis=axis, keepdims=True)


def softmax(x: np.ndarray, axis: int = -1, mask: np.ndarray | None = None) -> np.ndarray:
    """y = exp(x - max) / sum(exp(x - max)) over ``axis``, over the entries ``mask`` keeps.

    Masked entries get 0. A row with nothing kept, or whose kept entries are all -inf, is all 0.
    """
    _, _, e, total = _shifted_exp(x, axis, mask)
    safe_total = np.where(total == 0, np.ones_like(total), total)
    return np.where(total == 0, np.zeros_like(e), e / safe_total)


softmax_forward = softmax


def softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1) -> np.ndarray:
    """dx = y * (dy - <y, dy>), the inner product taken over ``axis``."""
    return y * (dy - np.sum(y * dy, axis=axis, keepdims=True))


def log_softmax(x: np.ndarray, axis: int = -1, mask: np.ndarray | None = None) -> np.ndarray:
    """l = x - (max + log(sum(exp(x - max)))) over ``axis``, over the entries ``mask`` keeps.

    Masked entries are -inf, and so is every entry of a row whose sum is 0 (nothing kept, or
    all kept entries -inf): its offset is +inf. That is log(softmax(x)), but without the
    underflow of a probability to 0.
    """
    scores, shift, _, total = _shifted_exp(x, axis, mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        offset = np.where(total == 0, np.array(np.inf, dtype=total.dtype), shift + np.log(total))
        return scores - offset


def log_softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1) -> np.ndarray:
    """dx = dy - exp(y) * sum(dy), summing and returning only where y > -inf (dx = 0 elsewhere:
    a masked entry, or one at -inf, does not move with x)."""
    live = y != -np.inf
    d = np.where(live, dy, np.zeros_like(dy))
    with np.errstate(over="ignore", invalid="ignore"):  # a y above log(max float) is no log-softmax
        return np.where(live, d - np.exp(y) * np.sum(d, axis=axis, keepdims=True), np.zeros_like(dy))
