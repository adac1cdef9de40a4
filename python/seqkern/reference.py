"""Plain-NumPy reference of every seqkern kernel: the specification.

Each function has the signature of its compiled twin in ``seqkern`` and computes in the dtype it
is given (pass float64 for an accurate reference). It is written to be read, not to be fast: no
tricks beyond the max-subtraction that keeps a softmax finite. The tests compare the kernels with
these functions, and these functions with finite differences.
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

__all__ = [
    "softmax",
    "softmax_forward",
    "softmax_backward",
    "lstm_forward",
    "lstm_backward",
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


# ---------------------------------------------------------------------------------------------
# LSTM
#
# Time-major x (T, B, D); w_ih (4H, D), w_hh (4H, H), bias (4H,), gate rows ordered i, f, g, o;
# peephole (3, H), rows i, f, o (diagonal weights). For every step t and every row b with
# t < lengths[b]:
#   a_t = x_t w_ih^T + h_{t-1} w_hh^T + bias
#   i = s(a_i + p_i * c_{t-1})    f = s(a_f + p_f * c_{t-1})    g = tanh(a_g)
#   c_t = f * c_{t-1} + i * g
#   o = s(a_o + p_o * c_t)        h_t = o * tanh(c_t)            y_t = h_t
# with s the logistic sigmoid. Rows with t >= lengths[b] keep their state and get y_t = 0.
#
# Backward, for t = T-1 .. 0 (rows past their length pass dh and dc through unchanged and get
# da = 0), with dh = dy_t + dh_t(from step t+1), dc = dc_t(from step t+1):
#   da_o = dh * tanh(c_t) * o (1 - o)
#   dc  += dh * o * (1 - tanh(c_t)^2) + da_o * p_o
#   da_i = dc * g * i (1 - i)    da_f = dc * c_{t-1} * f (1 - f)    da_g = dc * i * (1 - g^2)
#   dc_{t-1} = dc * f + da_i * p_i + da_f * p_f      dh_{t-1} = da w_hh
#   dx_t = da w_ih    dw_ih += da^T x_t    dw_hh += da^T h_{t-1}    dbias += sum_b da
#   dp_i += sum_b da_i c_{t-1}    dp_f += sum_b da_f c_{t-1}    dp_o += sum_b da_o c_t


LSTMOutput = namedtuple("LSTMOutput", ["y", "h_n", "c_n", "cache"])
LSTMGrads = namedtuple("LSTMGrads", ["dx", "dw_ih", "dw_hh", "dbias", "dh0", "dc0", "dpeephole"])


def _sigmoid(z):
    # exp of -|z| only, so large |z| never overflows: s(z) = 1/(1+e) for z >= 0, e/(1+e) below.
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1 / (1 + e), e / (1 + e))


def _lstm_unpack_weights(w_ih, w_hh, bias, peephole):
    # Accepts seqkern.LSTMWeights (anything with w_ih/w_hh/bias/peephole attributes) in place of
    # the arrays, like the compiled functions; the reference itself imports only numpy.
    if hasattr(w_ih, "w_hh") and hasattr(w_ih, "w_ih"):
        weights = w_ih
        return weights.w_ih, weights.w_hh, weights.bias, weights.peephole
    return w_ih, w_hh, bias, peephole


def lstm_forward(x, w_ih, w_hh=None, bias=None, h0=None, c0=None, *, peephole=None, lengths=None):
    """LSTM over a time-major sequence; returns ``(y, h_n, c_n, cache)`` (see the math above).

    x (T, B, D); w_ih (4H, D); w_hh (4H, H); bias (4H,) or None; h0, c0 (B, H) or None (zeros);
    peephole (3, H) or None; lengths (B,) ints in [0, T] or None (all T). Computes in x's dtype.
    The cache is a dict with the inputs, the post-activation gates (T, B, 4H) and the cell
    states c_{-1..T-1} as ``c`` (T+1, B, H), and the hidden states ``h`` (T+1, B, H).
    """
    w_ih, w_hh, bias, peephole = _lstm_unpack_weights(w_ih, w_hh, bias, peephole)
    x = np.asarray(x)
    dt = x.dtype
    T, B, _ = x.shape
    H = w_hh.shape[1]
    h = np.zeros((B, H), dt) if h0 is None else np.array(h0, dtype=dt)
    c = np.zeros((B, H), dt) if c0 is None else np.array(c0, dtype=dt)
    b = np.zeros(4 * H, dt) if bias is None else np.asarray(bias)
    p = None if peephole is None else np.asarray(peephole)
    lens = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)

    y = np.zeros((T, B, H), dt)
    gates = np.zeros((T, B, 4 * H), dt)
    hs = np.zeros((T + 1, B, H), dt)
    cs = np.zeros((T + 1, B, H), dt)
    hs[0], cs[0] = h, c
    for t in range(T):
        active = (t < lens)[:, None]
        a = x[t] @ w_ih.T + h @ w_hh.T + b
        # Without peepholes there is no p * c term at all (not 0 * c, which is NaN for c = inf).
        i = _sigmoid(a[:, 0:H] + (0 if p is None else p[0] * c))
        f = _sigmoid(a[:, H : 2 * H] + (0 if p is None else p[1] * c))
        g = np.tanh(a[:, 2 * H : 3 * H])
        c_new = f * c + i * g
        o = _sigmoid(a[:, 3 * H :] + (0 if p is None else p[2] * c_new))
        h_new = o * np.tanh(c_new)
        gates[t] = np.concatenate([i, f, g, o], axis=1)
        y[t] = np.where(active, h_new, 0)
        h = np.where(active, h_new, h)
        c = np.where(active, c_new, c)
        hs[t + 1], cs[t + 1] = h, c
    cache = {
        "x": x, "w_ih": w_ih, "w_hh": w_hh, "bias": bias, "peephole": peephole,
        "lengths": lens, "gates": gates, "h": hs, "c": cs,
    }
    return LSTMOutput(y, h.copy(), c.copy(), cache)


def lstm_backward(cache, dy=None, dh_n=None, dc_n=None):
    """Gradients ``(dx, dw_ih, dw_hh, dbias, dh0, dc0, dpeephole)`` of the forward in ``cache``.

    dy (T, B, H), dh_n and dc_n (B, H); each may be None (zeros). dpeephole (3, H) is None when
    the forward had no peepholes; dbias (4H,) is always returned.
    """
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    gates, hs, cs, lens = cache["gates"], cache["h"], cache["c"], cache["lengths"]
    peephole = cache["peephole"]
    dt = x.dtype
    T, B, _ = x.shape
    H = w_hh.shape[1]
    p = np.zeros((3, H), dt) if peephole is None else np.asarray(peephole)
    dh = np.zeros((B, H), dt) if dh_n is None else np.array(dh_n, dtype=dt)
    dc = np.zeros((B, H), dt) if dc_n is None else np.array(dc_n, dtype=dt)

    dx = np.zeros_like(x)
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    dbias = np.zeros(4 * H, dt)
    dp = np.zeros((3, H), dt)
    for t in range(T - 1, -1, -1):
        active = (t < lens)[:, None]
        i, f, g, o = (gates[t][:, k * H : (k + 1) * H] for k in range(4))
        c_prev, c_t = cs[t], cs[t + 1]
        dh_t = dh + (0 if dy is None else dy[t])
        tc = np.tanh(c_t)
        da_o = dh_t * tc * o * (1 - o)
        dc_t = dc + dh_t * o * (1 - tc * tc) + da_o * p[2]
        da_i = dc_t * g * i * (1 - i)
        da_f = dc_t * c_prev * f * (1 - f)
        da_g = dc_t * i * (1 - g * g)
        da = np.where(active, np.concatenate([da_i, da_f, da_g, da_o], axis=1), 0)
        da_i, da_f, da_o = da[:, 0:H], da[:, H : 2 * H], da[:, 3 * H :]
        dc_prev = dc_t * f + da_i * p[0] + da_f * p[1]
        dx[t] = da @ w_ih
        dw_ih += da.T @ x[t]
        dw_hh += da.T @ hs[t]
        dbias += da.sum(axis=0)
        dp[0] += (da_i * c_prev).sum(axis=0)
        dp[1] += (da_f * c_prev).sum(axis=0)
        dp[2] += (da_o * c_t).sum(axis=0)
        dh = np.where(active, da @ w_hh, dh)
        dc = np.where(active, dc_prev, dc)
    return LSTMGrads(dx, dw_ih, dw_hh, dbias, dh, dc, None if peephole is None else dp)


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
