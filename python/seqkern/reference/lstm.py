"""LSTM: the forward over a time-major sequence (optional peepholes, initial state and per-row
lengths) and its backward through time, with the math of both written out below."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

__all__ = ["LSTMOutput", "LSTMGrads", "lstm_forward", "lstm_backward"]

# Time-major x (T, B, D); w_ih (4H, D), w_hh (4H, H), bias (4H,), gate rows ordered i, f, g, o;
# peephole (3, H), rows i, f, o (diagonal weights). For every step t and every row b with
# t < lengths[b]:
#   a_t = x_t w_ih^T + h_{t-1} w_hh^T + bias
#   i = s(a_i + p_i * c_{t-1})    f = s(a_f + p_f * c_{t-1})    g = tanh(a_g)
#   c_t = f * c_{t-1} + i * g
#   o = s(a_o + p_o * c_t)        h_t = o * tanh(c_t)            y_t = h_t
# with s the logistic sigmoid. Rows with t >= lengths[b] keep their state and get y_t = 0.
# With a recurrent dropout mask m (B, H), the product reads h_{t-1} * m in place of h_{t-1}
# (the same m at every step; the states are not masked), and in the backward dh_{t-1} = (da
# w_hh) * m and dw_hh += da^T (h_{t-1} * m).
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


def _lstm_cell(a, c, p, H):
    # The gates and the new states from the pre-activations a (B, 4H) and c_{t-1}.
    # Without peepholes there is no p * c term at all (not 0 * c, which is NaN for c = inf).
    i = _sigmoid(a[:, 0:H] + (0 if p is None else p[0] * c))
    f = _sigmoid(a[:, H : 2 * H] + (0 if p is None else p[1] * c))
    g = np.tanh(a[:, 2 * H : 3 * H])
    c_new = f * c + i * g
    o = _sigmoid(a[:, 3 * H :] + (0 if p is None else p[2] * c_new))
    h_new = o * np.tanh(c_new)
    return i, f, g, o, c_new, h_new


def lstm_forward(x, w_ih, w_hh=None, bias=None, h0=None, c0=None, *, peephole=None, lengths=None,
                 recurrent_mask=None):
    """LSTM over a time-major sequence; returns ``(y, h_n, c_n, cache)`` (see the math above).

    x (T, B, D); w_ih (4H, D); w_hh (4H, H); bias (4H,) or None; h0, c0 (B, H) or None (zeros);
    peephole (3, H) or None; lengths (B,) ints in [0, T] or None (all T); recurrent_mask (B, H)
    or None (see above). Computes in x's dtype.
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
    m = None if recurrent_mask is None else np.asarray(recurrent_mask, dtype=dt)

    y = np.zeros((T, B, H), dt)
    gates = np.zeros((T, B, 4 * H), dt)
    hs = np.zeros((T + 1, B, H), dt)
    cs = np.zeros((T + 1, B, H), dt)
    hs[0], cs[0] = h, c
    for t in range(T):
        active = (t < lens)[:, None]
        a = x[t] @ w_ih.T + (h if m is None else h * m) @ w_hh.T + b
        i, f, g, o, c_new, h_new = _lstm_cell(a, c, p, H)
        gates[t] = np.concatenate([i, f, g, o], axis=1)
        y[t] = np.where(active, h_new, 0)
        h = np.where(active, h_new, h)
        c = np.where(active, c_new, c)
        hs[t + 1], cs[t + 1] = h, c
    cache = {
        "x": x, "w_ih": w_ih, "w_hh": w_hh, "bias": bias, "peephole": peephole,
        "lengths": lens, "gates": gates, "h": hs, "c": cs, "recurrent_mask": m,
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
    m = cache.get("recurrent_mask")
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
        dw_hh += da.T @ (hs[t] if m is None else hs[t] * m)
        dbias += da.sum(axis=0)
        dp[0] += (da_i * c_prev).sum(axis=0)
        dp[1] += (da_f * c_prev).sum(axis=0)
        dp[2] += (da_o * c_t).sum(axis=0)
        dh = np.where(active, da @ w_hh if m is None else (da @ w_hh) * m, dh)
        dc = np.where(active, dc_prev, dc)
    return LSTMGrads(dx, dw_ih, dw_hh, dbias, dh, dc, None if peephole is None else dp)
