"""Attention pooling: a learned softmax over the time steps of time-major LSTM outputs (per-row
lengths) that sums them into one context vector per row, forward and backward. Like the other
attention references it builds every score."""

from __future__ import annotations

import numpy as np

from .softmax import softmax, softmax_backward

__all__ = ["attention_pool_forward", "attention_pool_backward"]


def attention_pool_forward(h, w, b, w_s, *, lengths=None):
    """Attention pooling over time-major h (T, B, H): returns ``(context, alpha, cache)``.

    u_t = tanh(h_t w^T + b), score_t = u_t . w_s, alpha = softmax over t < lengths[b] (0 beyond),
    context = sum_t alpha_t h_t (B, H). A sequence of length 0 gets alpha = 0 and context = 0.
    """
    h = np.asarray(h)
    steps, batch = h.shape[0], h.shape[1]
    u = np.tanh(h @ w.T + b)  # (T, B, A)
    scores = u @ w_s  # (T, B)
    keep = np.ones((steps, batch), dtype=bool)
    if lengths is not None:
        keep = np.arange(steps)[:, None] < np.asarray(lengths)[None, :]
    # Steps past a row's length get exactly 0, even when a NaN score makes the row's softmax NaN.
    alpha = np.where(keep, softmax(scores, axis=0, mask=keep), 0)
    context = np.einsum("tb,tbh->bh", alpha, h)
    return context, alpha, {"h": h, "w": w, "w_s": w_s, "u": u, "alpha": alpha}


def attention_pool_backward(cache, dcontext):
    """Gradients ``(dh, dw, db, dw_s)`` of attention_pool_forward given dL/dcontext."""
    h, w, w_s, u, alpha = cache["h"], cache["w"], cache["w_s"], cache["u"], cache["alpha"]
    dalpha = np.einsum("bh,tbh->tb", dcontext, h)
    dscore = softmax_backward(alpha, dalpha, axis=0)
    dw_s = np.einsum("tb,tba->a", dscore, u)
    dz = dscore[..., None] * w_s * (1 - u * u)  # (T, B, A)
    db = dz.sum(axis=(0, 1))
    dw = np.einsum("tba,tbh->ah", dz, h)
    dh = alpha[..., None] * dcontext[None, :, :] + dz @ w
    return dh, dw, db, dw_s
