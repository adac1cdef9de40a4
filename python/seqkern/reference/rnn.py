"""Plain (Elman) RNN: the forward over a time-major sequence (PyTorch's ``nn.RNN`` math, tanh or
relu; optional initial state and per-row lengths) and its backward through time."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

__all__ = ["RNNOutput", "RNNGrads", "rnn_forward", "rnn_backward"]

# Time-major x (T, B, D); w_ih (H, D), w_hh (H, H), bias (H,) = PyTorch's b_ih + b_hh.
# For every step t and every row b with t < lengths[b]:
#   a_t = x_t W_ih^T + h_{t-1} W_hh^T + bias      h_t = act(a_t)      y_t = h_t
# with act = tanh or relu (max(a, 0)). Rows with t >= lengths[b] keep their state and get y_t = 0.
#
# Backward, for t = T-1 .. 0 (rows past their length pass dh through unchanged, ignore dy_t and
# get zero gradients), with dh = dy_t + dh_t(from step t+1):
#   da = dh * (1 - h_t^2) (tanh)   or   dh * [a_t > 0] (relu)
#   dx_t = da W_ih    dh_{t-1} = da W_hh    dw_ih += da^T x_t    dw_hh += da^T h_{t-1}
#   dbias += sum_b da
# With a recurrent dropout mask m (B, H): the product reads h_{t-1} * m (the same m every step),
# and dh_{t-1} = (da W_hh) * m, dw_hh += da^T (h_{t-1} * m).

RNNOutput = namedtuple("RNNOutput", ["y", "h_n", "cache"])
RNNGrads = namedtuple("RNNGrads", ["dx", "dw_ih", "dw_hh", "dbias", "dh0"])


def _check_nonlinearity(nonlinearity):
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")


def rnn_forward(x, w_ih, w_hh=None, bias=None, h0=None, *, lengths=None, nonlinearity="tanh", recurrent_mask=None):
    """Plain RNN over a time-major sequence; returns ``(y, h_n, cache)`` (see the math above).

    x (T, B, D); w_ih (H, D); w_hh (H, H); bias (H,) or None (zeros); h0 (B, H) or None (zeros);
    lengths (B,) ints in [0, T] or None (all T); recurrent_mask (B, H) or None (see above).
    Computes in x's dtype. y (T, B, H) is 0 past each
    row's length; h_n (B, H) is each row's state after its last step (h0 for length 0). An object
    with w_ih, w_hh, bias and nonlinearity attributes (an RNN weights object) may stand in for
    the arrays.

    The cache is a dict with the inputs, ``lengths`` as int64, the pre-activations a (T, B, H) as
    ``a`` and the hidden states h_{-1..T-1} as ``h`` (T+1, B, H).
    """
    if hasattr(w_ih, "w_hh") and hasattr(w_ih, "w_ih"):
        w_ih, w_hh, bias, nonlinearity = w_ih.w_ih, w_ih.w_hh, w_ih.bias, w_ih.nonlinearity
    _check_nonlinearity(nonlinearity)
    x = np.asarray(x)
    dt = x.dtype
    T, B, _ = x.shape
    H = w_hh.shape[1]
    h = np.zeros((B, H), dt) if h0 is None else np.array(h0, dtype=dt)
    b = np.zeros(H, dt) if bias is None else np.asarray(bias)
    lens = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    m = None if recurrent_mask is None else np.asarray(recurrent_mask, dtype=dt)

    y = np.zeros((T, B, H), dt)
    pre = np.zeros((T, B, H), dt)
    hs = np.zeros((T + 1, B, H), dt)
    hs[0] = h
    for t in range(T):
        active = (t < lens)[:, None]
        a = x[t] @ w_ih.T + (h if m is None else h * m) @ w_hh.T + b
        h_new = np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0)
        pre[t] = np.where(active, a, 0)
        y[t] = np.where(active, h_new, 0)
        h = np.where(active, h_new, h)
        hs[t + 1] = h
    cache = {
        "x": x, "w_ih": w_ih, "w_hh": w_hh, "bias": bias, "nonlinearity": nonlinearity,
        "lengths": lens, "a": pre, "h": hs, "recurrent_mask": m,
    }
    return RNNOutput(y, h.copy(), cache)


def rnn_backward(cache, dy=None, dh_n=None):
    """Gradients ``(dx, dw_ih, dw_hh, dbias, dh0)`` of the forward in ``cache``.

    dy (T, B, H) and dh_n (B, H); either may be None (zeros); dy past a row's length is ignored.
    dbias (H,) is always returned.
    """
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    pre, hs, lens = cache["a"], cache["h"], cache["lengths"]
    m = cache.get("recurrent_mask")
    dt = x.dtype
    T, B, _ = x.shape
    H = w_hh.shape[1]
    dh = np.zeros((B, H), dt) if dh_n is None else np.array(dh_n, dtype=dt)

    dx = np.zeros_like(x)
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    dbias = np.zeros(H, dt)
    for t in range(T - 1, -1, -1):
        active = (t < lens)[:, None]
        dh_t = dh + (0 if dy is None else dy[t])
        if cache["nonlinearity"] == "tanh":
            da = dh_t * (1 - hs[t + 1] ** 2)
        else:
            da = dh_t * (pre[t] > 0)
        da = np.where(active, da, 0)
        dx[t] = da @ w_ih
        dw_ih += da.T @ x[t]
        dw_hh += da.T @ (hs[t] if m is None else hs[t] * m)
        dbias += da.sum(axis=0)
        dh = np.where(active, da @ w_hh if m is None else (da @ w_hh) * m, dh)
    return RNNGrads(dx, dw_ih, dw_hh, dbias, dh)
