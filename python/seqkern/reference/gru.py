"""GRU: the forward over a time-major sequence (PyTorch's math, the reset gate applied after or
before the recurrent product; optional initial state and per-row lengths) and its backward
through time, with the math of both written out below."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .lstm import _sigmoid

__all__ = ["GRUOutput", "GRUGrads", "gru_forward", "gru_backward"]

# Time-major x (T, B, D); PyTorch's layout: w_ih (3H, D), w_hh (3H, H), b_ih and b_hh (3H,),
# gate rows ordered r, z, n (W_ir, W_iz, W_in are the row blocks of w_ih, likewise the others).
# For every step t and every row b with t < lengths[b], h = h_{t-1}:
#   r = s(x_t W_ir^T + b_ir + h W_hr^T + b_hr)      z = s(x_t W_iz^T + b_iz + h W_hz^T + b_hz)
#   reset after (linear_before_reset=True: PyTorch, Keras reset_after=True, ONNX linear_before_reset=1):
#     a_nh = h W_hn^T + b_hn           n = tanh(x_t W_in^T + b_in + r * a_nh)
#   reset before (linear_before_reset=False: the ONNX default, Keras reset_after=False):
#     a_nh = (r * h) W_hn^T + b_hn     n = tanh(x_t W_in^T + b_in + a_nh)
#   h_t = (1 - z) * n + z * h                                                     y_t = h_t
# with s the logistic sigmoid. Rows with t >= lengths[b] keep their state and get y_t = 0.
# Reset after, with a recurrent dropout mask m (B, H): the products read h * m (h W_hr^T, h W_hz^T,
# h W_hn^T all become (h * m) W^T; the same m every step), while h_t's z * h keeps h itself.
#
# Backward, for t = T-1 .. 0 (rows past their length pass dh through unchanged, ignore dy_t and
# get zero gate gradients), with dh = dy_t + dh_t(from step t+1) and h = h_{t-1}:
#   da_n = dh * (1 - z) * (1 - n^2)       da_z = dh * (h - n) * z (1 - z)
#   reset after:   da_r = da_n * a_nh * r (1 - r)    da_hn = da_n * r
#                  da_h = [da_r | da_z | da_hn]      (gradient of h w_hh^T + b_hh)
#                  dh_{t-1} = dh * z + da_h w_hh     dw_hh += da_h^T h
#                  (with a mask m: dh_{t-1} = dh * z + (da_h w_hh) * m,  dw_hh += da_h^T (h * m))
#   reset before:  d(r*h) = da_n W_hn                da_r = d(r*h) * h * r (1 - r)
#                  da_h = [da_r | da_z | da_n]       (gradient of [h W_hr^T | h W_hz^T | (r*h) W_hn^T] + b_hh)
#                  dh_{t-1} = dh * z + d(r*h) * r + [da_r | da_z] [W_hr; W_hz]
#                  dw_hh += [da_r | da_z]^T h on the r, z rows,  da_n^T (r*h) on the n rows
#   da_x = [da_r | da_z | da_n]           (gradient of x_t w_ih^T + b_ih)
#   dx_t = da_x w_ih    dw_ih += da_x^T x_t    db_ih += sum_b da_x    db_hh += sum_b da_h


GRUOutput = namedtuple("GRUOutput", ["y", "h_n", "cache"])
GRUGrads = namedtuple("GRUGrads", ["dx", "dw_ih", "dw_hh", "db_ih", "db_hh", "dh0"])


def _gru_unpack_weights(w_ih, w_hh, b_ih, b_hh, linear_before_reset):
    # Accepts anything with w_ih/w_hh/b_ih/b_hh attributes (a GRU weights object) in place of the
    # arrays; its linear_before_reset, when it has one, wins over the keyword.
    if hasattr(w_ih, "w_hh") and hasattr(w_ih, "w_ih"):
        weights = w_ih
        lbr = getattr(weights, "linear_before_reset", linear_before_reset)
        return weights.w_ih, weights.w_hh, weights.b_ih, weights.b_hh, lbr
    return w_ih, w_hh, b_ih, b_hh, linear_before_reset


def gru_forward(x, w_ih, w_hh=None, b_ih=None, b_hh=None, h0=None, *, lengths=None, linear_before_reset=True,
                recurrent_mask=None):
    """GRU over a time-major sequence; returns ``(y, h_n, cache)`` (see the math above).

    x (T, B, D); w_ih (3H, D); w_hh (3H, H); b_ih, b_hh (3H,) or None (zeros); h0 (B, H) or None
    (zeros); lengths (B,) ints in [0, T] or None (all T); gate rows ordered r, z, n. With
    ``linear_before_reset`` (the default, PyTorch's GRU) the reset gate scales h W_hn^T + b_hn,
    without it h before the product; recurrent_mask (B, H) or None, reset after only (see
    above). Computes in x's dtype. y (T, B, H) is 0 past each row's
    length; h_n (B, H) is each row's state after its last step (h0 for length 0).

    The cache is a dict with the inputs (``x``, ``w_ih``, ``w_hh``, ``b_ih``, ``b_hh``,
    ``linear_before_reset``, ``lengths`` as int64), the gates (T, B, 4H) as ``gates``, column blocks
    r, z, n, a_nh (a_nh = h W_hn^T + b_hn reset after, (r * h) W_hn^T + b_hn reset before; every
    block 0 past a row's length) and the hidden states h_{-1..T-1} as ``h`` (T+1, B, H).
    """
    w_ih, w_hh, b_ih, b_hh, lbr = _gru_unpack_weights(w_ih, w_hh, b_ih, b_hh, linear_before_reset)
    x = np.asarray(x)
    dt = x.dtype
    T, B, _ = x.shape
    H = w_hh.shape[1]
    h = np.zeros((B, H), dt) if h0 is None else np.array(h0, dtype=dt)
    bi = np.zeros(3 * H, dt) if b_ih is None else np.asarray(b_ih)
    bh = np.zeros(3 * H, dt) if b_hh is None else np.asarray(b_hh)
    lens = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    w_hr, w_hz, w_hn = w_hh[0:H], w_hh[H : 2 * H], w_hh[2 * H :]
    b_hr, b_hz, b_hn = bh[0:H], bh[H : 2 * H], bh[2 * H :]
    if recurrent_mask is not None and not lbr:
        raise ValueError("gru_forward: recurrent_mask is not available with linear_before_reset=False")
    m = None if recurrent_mask is None else np.asarray(recurrent_mask, dtype=dt)

    y = np.zeros((T, B, H), dt)
    gates = np.zeros((T, B, 4 * H), dt)
    hs = np.zeros((T + 1, B, H), dt)
    hs[0] = h
    for t in range(T):
        active = (t < lens)[:, None]
        ax = x[t] @ w_ih.T + bi
        hm = h if m is None else h * m  # the products' operand
        r = _sigmoid(ax[:, 0:H] + hm @ w_hr.T + b_hr)
        z = _sigmoid(ax[:, H : 2 * H] + hm @ w_hz.T + b_hz)
        a_nh = hm @ w_hn.T + b_hn if lbr else (r * h) @ w_hn.T + b_hn
        n = np.tanh(ax[:, 2 * H :] + (r * a_nh if lbr else a_nh))
        h_new = (1 - z) * n + z * h
        gates[t] = np.where(active, np.concatenate([r, z, n, a_nh], axis=1), 0)
        y[t] = np.where(active, h_new, 0)
        h = np.where(active, h_new, h)
        hs[t + 1] = h
    cache = {
        "x": x, "w_ih": w_ih, "w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh,
        "linear_before_reset": bool(lbr), "lengths": lens, "gates": gates, "h": hs, "recurrent_mask": m,
    }
    return GRUOutput(y, h.copy(), cache)


def gru_backward(cache, dy=None, dh_n=None):
    """Gradients ``(dx, dw_ih, dw_hh, db_ih, db_hh, dh0)`` of the forward in ``cache``.

    dy (T, B, H) and dh_n (B, H); either may be None (zeros); dy past a row's length is ignored.
    db_ih and db_hh (3H,) are always returned (the gradients at zero biases when the forward had
    none).
    """
    x, w_ih, w_hh = cache["x"], cache["w_ih"], cache["w_hh"]
    gates, hs, lens, lbr = cache["gates"], cache["h"], cache["lengths"], cache["linear_before_reset"]
    m = cache.get("recurrent_mask")
    dt = x.dtype
    T, B, _ = x.shape
    H = w_hh.shape[1]
    w_hn = w_hh[2 * H :]
    dh = np.zeros((B, H), dt) if dh_n is None else np.array(dh_n, dtype=dt)

    dx = np.zeros_like(x)
    dw_ih = np.zeros_like(w_ih)
    dw_hh = np.zeros_like(w_hh)
    db_ih = np.zeros(3 * H, dt)
    db_hh = np.zeros(3 * H, dt)
    for t in range(T - 1, -1, -1):
        active = (t < lens)[:, None]
        r, z, n, a_nh = (gates[t][:, k * H : (k + 1) * H] for k in range(4))
        h = hs[t]
        dh_t = dh + (0 if dy is None else dy[t])
        da_n = dh_t * (1 - z) * (1 - n * n)
        da_z = dh_t * (h - n) * z * (1 - z)
        if lbr:
            da_r = da_n * a_nh * r * (1 - r)
            da_h = np.concatenate([da_r, da_z, da_n * r], axis=1)
        else:
            drh = da_n @ w_hn
            da_r = drh * h * r * (1 - r)
            da_h = np.concatenate([da_r, da_z, da_n], axis=1)
        da_x = np.where(active, np.concatenate([da_r, da_z, da_n], axis=1), 0)
        da_h = np.where(active, da_h, 0)
        dx[t] = da_x @ w_ih
        dw_ih += da_x.T @ x[t]
        db_ih += da_x.sum(axis=0)
        db_hh += da_h.sum(axis=0)
        if lbr:
            dw_hh += da_h.T @ (h if m is None else h * m)
            dh_prev = dh_t * z + (da_h @ w_hh if m is None else (da_h @ w_hh) * m)
        else:
            dw_hh[: 2 * H] += da_h[:, : 2 * H].T @ h
            dw_hh[2 * H :] += da_h[:, 2 * H :].T @ (r * h)
            dh_prev = dh_t * z + drh * r + da_h[:, : 2 * H] @ w_hh[: 2 * H]
        dh = np.where(active, dh_prev, dh)
    return GRUGrads(dx, dw_ih, dw_hh, db_ih, db_hh, dh)
