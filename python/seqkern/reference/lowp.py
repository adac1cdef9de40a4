"""Low-precision weights for the recurrent cells: the bf16 and int8 formats, and the int8 forward
of the LSTM and the GRU, with the arithmetic written out (the kernels follow it bit for bit in
the integer sums; cpp/seqkern/ops/lowp.h).

bf16: every weight rounded to the nearest bfloat16 number (ties to even), then the float32
arithmetic of ``lstm_forward`` / ``gru_forward`` on those weights, unchanged.

int8: for a weight matrix w (N, K), one scale per row (per gate column n):
    s[n] = max_k |w[n, k]| / 127           q[n, k] = rint(w[n, k] / s[n])  in [-127, 127]
(q = 0 where s = 0). At every step each row of x_t and of h_{t-1} is quantized the same way,
v[m, k] ~ a[m] u[m, k], and a product becomes
    P[m, n] = (a[m] s[n]) * float32(sum_k u[m, k] q[n, k])        (the sum exact, in integers)
with the pre-activation ``bias + (P_x + P_h)`` and the cell's update as in float32. Everything
is float32; the kernels accept finite inputs only.
"""

from __future__ import annotations

import numpy as np

from .gru import _gru_unpack_weights, GRUOutput
from .lstm import _lstm_cell, _sigmoid, LSTMOutput
from .rnn import RNNOutput

__all__ = [
    "round_bfloat16", "to_bfloat16", "from_bfloat16", "quantize_int8", "dequantize_int8",
    "int8_product", "lstm_forward_int8", "gru_forward_int8", "rnn_forward_int8",
]

_F = np.float32


def to_bfloat16(w) -> np.ndarray:
    """The bfloat16 bit patterns (uint16) nearest to float32 ``w`` (ties to even)."""
    w = np.ascontiguousarray(w, dtype=_F)
    if not np.all(np.isfinite(w)):
        raise ValueError("to_bfloat16: the weights must be finite")
    bits = w.view(np.uint32).astype(np.uint64)
    rounded = (bits + 0x7FFF + ((bits >> 16) & 1)) >> 16
    if np.any((rounded & 0x7F80) == 0x7F80):
        raise ValueError("to_bfloat16: a weight is too large for bfloat16")
    return rounded.astype(np.uint16)


def from_bfloat16(b) -> np.ndarray:
    """float32 values of bfloat16 bit patterns (exact)."""
    b = np.asarray(b, dtype=np.uint16)
    return (b.astype(np.uint32) << 16).view(_F)


def round_bfloat16(w) -> np.ndarray:
    """``w`` rounded to bfloat16 numbers, as float32: the bf16 format's weights."""
    return from_bfloat16(to_bfloat16(w))


def _quantize_rows(v):
    # (u, a): u (M, K) int32 in [-127, 127], a (M,) float32, v ~ a[:, None] * u.
    v = np.asarray(v, dtype=_F)
    a = (np.max(np.abs(v), axis=1) if v.shape[1] else np.zeros(v.shape[0], _F)) / _F(127)
    safe = np.where(a > 0, a, _F(1))
    u = np.where(a[:, None] > 0, np.rint(v / safe[:, None]), _F(0))
    return np.clip(u, -127, 127).astype(np.int32), a.astype(_F)


def quantize_int8(w):
    """``(q, scale)`` of float32 weights w (N, K): q int8 (N, K), scale float32 (N,), w ~ scale[:, None] * q."""
    w = np.asarray(w, dtype=_F)
    if w.ndim != 2:
        raise ValueError(f"quantize_int8: w must be 2-D (N, K), got shape {w.shape}")
    if not np.all(np.isfinite(w)):
        raise ValueError("quantize_int8: the weights must be finite")
    q, s = _quantize_rows(w)
    return q.astype(np.int8), s


def dequantize_int8(q, scale) -> np.ndarray:
    """The float32 weights ``scale[:, None] * q`` (one float32 product each)."""
    return np.asarray(scale, _F)[:, None] * np.asarray(q).astype(_F)


def int8_product(v, q, scale) -> np.ndarray:
    """P (M, N) = (a[m] s[n]) * float32(sum_k u[m, k] q[n, k]), v (M, K) quantized per row."""
    u, a = _quantize_rows(v)
    sums = u.astype(np.int64) @ np.asarray(q).astype(np.int64).T
    return (a[:, None] * np.asarray(scale, _F)[None, :]) * sums.astype(_F)


def _int8_of(weights, w_ih, w_hh):
    # The int8 form of an int8 weights object (its ``int8`` attribute), or the float weights' own.
    form = getattr(weights, "int8", None)
    if form is not None:
        return form
    return (*quantize_int8(w_ih), *quantize_int8(w_hh))


def lstm_forward_int8(x, w_ih, w_hh=None, bias=None, h0=None, c0=None, *, peephole=None, lengths=None):
    """The LSTM of ``lstm_forward`` with int8 products; returns ``(y, h_n, c_n, None)``.

    ``w_ih`` may be an ``LSTMWeights(..., dtype="int8")`` (its int8 form is used) or float weights
    (quantized here, as such an object quantizes them).
    """
    weights = w_ih if hasattr(w_ih, "w_hh") else None
    if weights is not None:
        w_ih, w_hh, bias, peephole = weights.w_ih, weights.w_hh, weights.bias, weights.peephole
    q_ih, s_ih, q_hh, s_hh = _int8_of(weights, w_ih, w_hh)
    x = np.asarray(x, dtype=_F)
    T, B, _ = x.shape
    H = q_hh.shape[1]
    h = np.zeros((B, H), _F) if h0 is None else np.array(h0, dtype=_F)
    c = np.zeros((B, H), _F) if c0 is None else np.array(c0, dtype=_F)
    b = np.zeros(4 * H, _F) if bias is None else np.asarray(bias, _F)
    p = None if peephole is None else np.asarray(peephole, _F)
    lens = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    y = np.zeros((T, B, H), _F)
    for t in range(T):
        active = (t < lens)[:, None]
        a = b + (int8_product(x[t], q_ih, s_ih) + int8_product(h, q_hh, s_hh))
        *_, c_new, h_new = _lstm_cell(a, c, p, H)
        y[t] = np.where(active, h_new, 0)
        h = np.where(active, h_new, h).astype(_F)
        c = np.where(active, c_new, c).astype(_F)
    return LSTMOutput(y, h, c, None)


def gru_forward_int8(x, w_ih, w_hh=None, b_ih=None, b_hh=None, h0=None, *, lengths=None, linear_before_reset=True):
    """The GRU of ``gru_forward`` (reset after the product) with int8 products; ``(y, h_n, None)``.

    Gate rows r, z, n of w_ih (3H, D) and w_hh (3H, H), each row with its own scale; the sums of the
    r and z columns add both products, n keeps them apart for the reset gate:
        a_r = (b_ir + b_hr) + (P_x,r + P_h,r)   a_z likewise   a_nx = b_in + P_x,n   a_nh = b_hn + P_h,n
    """
    weights = w_ih if hasattr(w_ih, "w_hh") else None
    w_ih, w_hh, b_ih, b_hh, lbr = _gru_unpack_weights(w_ih, w_hh, b_ih, b_hh, linear_before_reset)
    if not lbr:
        raise NotImplementedError("gru_forward_int8: only linear_before_reset=True")
    q_ih, s_ih, q_hh, s_hh = _int8_of(weights, w_ih, w_hh)
    x = np.asarray(x, dtype=_F)
    T, B, _ = x.shape
    H = q_hh.shape[1]
    h = np.zeros((B, H), _F) if h0 is None else np.array(h0, dtype=_F)
    bi = np.zeros(3 * H, _F) if b_ih is None else np.asarray(b_ih, _F)
    bh = np.zeros(3 * H, _F) if b_hh is None else np.asarray(b_hh, _F)
    b_rz = bi[: 2 * H] + bh[: 2 * H]
    lens = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    y = np.zeros((T, B, H), _F)
    for t in range(T):
        active = (t < lens)[:, None]
        px, ph = int8_product(x[t], q_ih, s_ih), int8_product(h, q_hh, s_hh)
        a_rz = b_rz + (px[:, : 2 * H] + ph[:, : 2 * H])
        r, z = _sigmoid(a_rz[:, :H]), _sigmoid(a_rz[:, H:])
        a_nx = bi[2 * H :] + px[:, 2 * H :]
        a_nh = bh[2 * H :] + ph[:, 2 * H :]
        n = np.tanh(a_nx + r * a_nh)
        h_new = (1 - z) * n + z * h
        y[t] = np.where(active, h_new, 0)
        h = np.where(active, h_new, h).astype(_F)
    return GRUOutput(y, h, None)


def rnn_forward_int8(x, w_ih, w_hh=None, bias=None, h0=None, *, lengths=None, nonlinearity="tanh"):
    """The plain RNN of ``rnn_forward`` with int8 products; ``(y, h_n, None)``:
    h_t = act(bias + (P_x + P_h))."""
    weights = w_ih if hasattr(w_ih, "w_hh") else None
    if weights is not None:
        w_ih, w_hh, bias = weights.w_ih, weights.w_hh, weights.bias
        nonlinearity = weights.nonlinearity
    q_ih, s_ih, q_hh, s_hh = _int8_of(weights, w_ih, w_hh)
    x = np.asarray(x, dtype=_F)
    T, B, _ = x.shape
    H = q_hh.shape[1]
    h = np.zeros((B, H), _F) if h0 is None else np.array(h0, dtype=_F)
    b = np.zeros(H, _F) if bias is None else np.asarray(bias, _F)
    lens = np.full(B, T, np.int64) if lengths is None else np.asarray(lengths, np.int64)
    y = np.zeros((T, B, H), _F)
    for t in range(T):
        active = (t < lens)[:, None]
        a = b + (int8_product(x[t], q_ih, s_ih) + int8_product(h, q_hh, s_hh))
        h_new = np.maximum(a, 0) if nonlinearity == "relu" else np.tanh(a)
        y[t] = np.where(active, h_new, 0)
        h = np.where(active, h_new, h).astype(_F)
    return RNNOutput(y, h, None)
