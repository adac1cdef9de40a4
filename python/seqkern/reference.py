"""Plain-NumPy reference of every seqkern kernel: the specification.

Each function has the signature of its compiled twin in ``seqkern`` and computes in the dtype it
is given (pass float64 for an accurate reference). It is written to be read, not to be fast: no
tricks beyond the max-subtraction that keeps a softmax finite. The tests compare the kernels with
these functions, and these functions with finite differences.
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "softmax",
    "softmax_forward",
    "softmax_backward",
    "attention_forward",
    "attention_backward",
    "additive_attention_forward",
    "additive_attention_backward",
    "attention_pool_forward",
    "attention_pool_backward",
]


# ---------------------------------------------------------------------------------------------
# softmax


def softmax(x: np.ndarray, axis: int = -1, mask: np.ndarray | None = None) -> np.ndarray:
    """y = exp(x - max) / sum(exp(x - max)) over ``axis``, over the entries ``mask`` keeps.

    Masked entries get 0. A row with nothing kept, or whose kept entries are all -inf, is all 0.
    """
    x = np.asarray(x)
    keep = np.ones(x.shape, dtype=bool) if mask is None else np.broadcast_to(mask, x.shape)
    neg_inf = np.array(-np.inf, dtype=x.dtype)
    scores = np.where(keep, x, neg_inf)
    row_max = np.max(scores, axis=axis, keepdims=True)
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


# ---------------------------------------------------------------------------------------------
# Attention
#
# The references build the full score matrix; the compiled kernels never do. Every forward
# returns ``(outputs..., cache)`` with ``cache`` a dict of what its backward needs.


def attention_keep(lead, lq, lk, mask=None, causal=False, kv_lengths=None):
    """Bool array ``lead + (lq, lk)``: True where query i may attend to key j.

    The bool ``mask`` (broadcast), ``causal`` (j <= i, top-left aligned) and ``kv_lengths``
    (j < kv_lengths[b] for every problem under index b of the first leading dim) all combine.
    """
    shape = tuple(lead) + (lq, lk)
    keep = np.ones(shape, dtype=bool)
    if mask is not None:
        keep = keep & np.broadcast_to(np.asarray(mask, dtype=bool), shape)
    if causal:
        keep = keep & np.tril(np.ones((lq, lk), dtype=bool))
    if kv_lengths is not None:
        lengths = np.asarray(kv_lengths).reshape((-1,) + (1,) * (len(shape) - 1))
        keep = keep & (np.arange(lk) < lengths)
    return keep


def attention_forward(q, k, v, *, mask=None, causal=False, kv_lengths=None, scale=None):
    """out = softmax(scale * q k^T, masked) v over the last two axes; returns ``(out, cache)``.

    q (..., Lq, Dh), k (..., Lk, Dh), v (..., Lk, Dv); scale defaults to 1/sqrt(Dh). A query row
    that sees no key gets an output of zeros.
    """
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[-1]) if q.shape[-1] > 0 else 1.0
    keep = attention_keep(q.shape[:-2], q.shape[-2], k.shape[-2], mask, causal, kv_lengths)
    scores = (q @ np.swapaxes(k, -1, -2)) * q.dtype.type(scale)
    # softmax over zero keys is all-zero (every row sees no key).
    p = softmax(scores, axis=-1, mask=keep) if scores.shape[-1] > 0 else scores
    out = p @ v
    return out, {"q": q, "k": k, "v": v, "p": p, "scale": scale}


def attention_backward(cache, dout):
    """Gradients ``(dq, dk, dv)`` of attention_forward given dL/dout.

    dv = p^T dout, dp = dout v^T, ds = p * (dp - rowsum(p * dp)),
    dq = scale ds k, dk = scale ds^T q.
    """
    q, k, v, p = cache["q"], cache["k"], cache["v"], cache["p"]
    scale = q.dtype.type(cache["scale"])
    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = softmax_backward(p, dp, axis=-1)
    dq = scale * (ds @ k)
    dk = scale * (np.swapaxes(ds, -1, -2) @ q)
    return dq, dk, dv


def additive_attention_forward(q, k, v, w_q, w_k, w_v, *, mask=None, kv_lengths=None):
    """Additive attention: score_ij = w_v . tanh(w_q q_i + w_k k_j), softmax over j,
    out_i = sum_j a_ij v_j.

    q (B, Lq, Dq), k (B, Lk, Dk), v (B, Lk, Dv), w_q (A, Dq), w_k (A, Dk), w_v (A,); returns
    ``(out, cache)``.
    """
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    keep = attention_keep(q.shape[:1], q.shape[1], k.shape[1], mask, False, kv_lengths)
    qp = q @ w_q.T  # (B, Lq, A)
    kp = k @ w_k.T  # (B, Lk, A)
    t = np.tanh(qp[:, :, None, :] + kp[:, None, :, :])  # (B, Lq, Lk, A)
    scores = t @ w_v
    a = softmax(scores, axis=-1, mask=keep)
    out = a @ v
    cache = {"q": q, "k": k, "v": v, "w_q": w_q, "w_k": w_k, "w_v": w_v, "t": t, "a": a}
    return out, cache


def additive_attention_backward(cache, dout):
    """Gradients ``(dq, dk, dv, dw_q, dw_k, dw_v)`` of additive_attention_forward."""
    q, k, v, t, a = cache["q"], cache["k"], cache["v"], cache["t"], cache["a"]
    w_q, w_k, w_v = cache["w_q"], cache["w_k"], cache["w_v"]
    dv = np.swapaxes(a, -1, -2) @ dout
    da = dout @ np.swapaxes(v, -1, -2)
    ds = softmax_backward(a, da, axis=-1)  # (B, Lq, Lk)
    dw_v = np.einsum("bij,bija->a", ds, t)
    dz = ds[..., None] * w_v * (1 - t * t)  # (B, Lq, Lk, A)
    dqp = dz.sum(axis=2)
    dkp = dz.sum(axis=1)
    dq = dqp @ w_q
    dk = dkp @ w_k
    dw_q = np.einsum("bia,bid->ad", dqp, q)
    dw_k = np.einsum("bja,bjd->ad", dkp, k)
    return dq, dk, dv, dw_q, dw_k, dw_v


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
    alpha = softmax(scores, axis=0, mask=keep)
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
