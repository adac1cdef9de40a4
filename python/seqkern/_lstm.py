"""lstm_forward, lstm_backward and LSTMWeights: the public LSTM wrappers."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _core
from . import convert  # noqa: F401  (makes seqkern.convert available after `import seqkern`)
from ._util import (FLOAT_NAMES, cache_default, contiguous, frozen_copy, low_precision_weights, weight_format,
                    weights_or_arrays)

__all__ = ["LSTMWeights", "LSTMCache", "LSTMOutput", "LSTMGrads", "lstm_forward", "lstm_backward"]


class LSTMWeights(_core.LstmWeightsCore):
    """One LSTM layer's weights, validated and packed for the kernels.

    Parameters
    ----------
    w_ih : ndarray (4*H, D), float32 or float64
        Input weights, PyTorch's layout: gate rows ordered i, f, g, o.
    w_hh : ndarray (4*H, H), same dtype
        Recurrent weights, same gate order.
    bias : ndarray (4*H,), same dtype, optional
        One bias (PyTorch's ``bias_ih + bias_hh``); None means zero.
    peephole : ndarray (3, H), same dtype, optional
        Diagonal peephole weights, rows i, f, o; None means a plain LSTM.
    dtype : None, "bf16" or "int8"
        None (default): the arrays' own float dtype. ``"bf16"``: the weights rounded to bfloat16
        numbers (nearest, ties to even); the arithmetic stays float32's, so every function gives
        exactly what it gives for float32 weights of those values, while the small-batch steps
        stream half the bytes. ``"int8"``: one int8 scale per gate row, and every step's x and h
        rows quantized to int8 too (``seqkern.reference.lowp`` has the arithmetic): a quarter of
        the bytes and integer dot products, for inference only (``lstm_forward`` keeps no cache,
        ``lstm_backward`` refuses them, inputs must be finite). Both make float32 weights and need
        ``copy=True``; the attributes then show the format's values as float32.
    copy : bool
        ``True`` (default): the object keeps read-only copies, packed once; it is immutable, and
        later changes to the caller's arrays do not reach it. ``False``: it keeps views of the
        caller's C-contiguous arrays (copies of others) and packs them on every call, so in-place
        updates of those arrays are seen by ``lstm_forward``, :meth:`step` and ``lstm_backward``
        alike (the zero-copy choice for weights that a training loop updates in place).

    Every method reads the arrays the attributes show, as they are at the call. Wrong dtypes
    raise ``TypeError``, wrong shapes ``ValueError``. ``lstm_forward`` and ``lstm_backward``
    accept it in place of ``(w_ih, w_hh, bias, peephole)``, and :meth:`step` runs one time step.

    Attributes
    ----------
    w_ih, w_hh, bias, peephole : the arrays (bias and peephole may be None); read-only when copied
    input_size : int (D)
    hidden_size : int (H)
    copied : bool (the ``copy`` it was built with)
    dtype : numpy.dtype (of the arrays)
    format : "float32", "float64", "bf16" or "int8"
    int8 : ``(q_ih, s_ih, q_hh, s_hh)`` of the int8 format (int8 (4*H, K), float32 (4*H,)), else None
    """

    def __init__(self, w_ih, w_hh, bias=None, peephole=None, *, copy: bool = True, dtype=None) -> None:
        fmt = weight_format("LSTMWeights", dtype)
        self._int8 = None
        if fmt is None:
            super().__init__(w_ih, w_hh, bias, peephole, bool(copy))
            return
        if not copy:
            raise ValueError(f"LSTMWeights: dtype={dtype!r} needs copy=True (the weights are converted once)")
        _core.LstmWeightsCore(w_ih, w_hh, bias, peephole, False)  # the shape and dtype checks, no copies
        (wi, wh), forms = low_precision_weights(fmt, w_ih, w_hh)
        f32 = [None if a is None else np.asarray(a, np.float32) for a in (bias, peephole)]
        super().__init__(wi, wh, f32[0], f32[1], True)
        H, D = self.hidden_size, self.input_size
        if fmt == "bf16":
            wih_p, whh_p = self._panels()
            form = _core.lowp_form("bf16", 4, D, H, wih_p=wih_p, whh_p=whh_p)
        else:
            (q_ih, s_ih), (q_hh, s_hh) = forms
            form = _core.lowp_form("int8", 4, D, H, q_ih=q_ih, s_ih=s_ih, q_hh=q_hh, s_hh=s_hh)
            self._int8 = tuple(frozen_copy(a, a.dtype) for a in (q_ih, s_ih, q_hh, s_hh))
        self._attach_lowp(form)

    @property
    def format(self) -> str:
        form = self._lowp
        return FLOAT_NAMES[self.dtype] if form is None else form.format

    @property
    def int8(self):
        return self._int8

    def __repr__(self) -> str:
        return (
            f"LSTMWeights(input_size={self.input_size}, hidden_size={self.hidden_size}, "
            f"format={self.format}, bias={self.bias is not None}, peephole={self.peephole is not None}, "
            f"copied={self.copied})"
        )


class LSTMOutput(NamedTuple):
    """``lstm_forward``'s result: y (T, B, H), h_n and c_n (B, H), and the cache for backward."""

    y: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray
    cache: "LSTMCache | None"


class LSTMGrads(NamedTuple):
    """``lstm_backward``'s result; shapes as the forward's inputs, dpeephole None without peepholes."""

    dx: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    dbias: np.ndarray
    dh0: np.ndarray
    dc0: np.ndarray
    dpeephole: np.ndarray | None


LSTMCache = _core.LSTMCache
LSTMCache.__module__ = __name__


def _weights(fn, w_ih, w_hh, bias, peephole) -> LSTMWeights:
    return weights_or_arrays(fn, _core.LstmWeightsCore, "an LSTMWeights", w_ih,
                             {"w_hh": w_hh, "bias": bias, "peephole": peephole},
                             lambda: LSTMWeights(w_ih, w_hh, bias, peephole, copy=False))


def lstm_forward(
    x: np.ndarray,
    w_ih,
    w_hh: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    h0: np.ndarray | None = None,
    c0: np.ndarray | None = None,
    *,
    peephole: np.ndarray | None = None,
    lengths: np.ndarray | None = None,
    need_cache: bool | None = None,
    recurrent_mask: np.ndarray | None = None,
) -> LSTMOutput:
    """LSTM over a whole time-major sequence.

    For every step t and row b with ``t < lengths[b]``::

        a_t = x_t w_ih^T + h_{t-1} w_hh^T + bias
        i = s(a_i + p_i * c_{t-1})   f = s(a_f + p_f * c_{t-1})   g = tanh(a_g)
        c_t = f * c_{t-1} + i * g    o = s(a_o + p_o * c_t)       h_t = o * tanh(c_t),  y_t = h_t

    (s the logistic sigmoid, p the peepholes, absent when ``peephole`` is None). Rows with
    ``t >= lengths[b]`` are left alone: y is 0 there and the state is carried.

    Parameters
    ----------
    x : ndarray (T, B, D), float32 or float64
        Input sequence, time-major. Non-contiguous input is copied once.
    w_ih : ndarray (4*H, D) or LSTMWeights
        Input weights, gate rows i, f, g, o (PyTorch's layout), or packed weights, in which
        case ``w_hh``, ``bias`` and ``peephole`` must be None.
    w_hh : ndarray (4*H, H)
        Recurrent weights.
    bias : ndarray (4*H,), optional
        One bias (PyTorch's ``bias_ih + bias_hh``); zero when None.
    h0, c0 : ndarray (B, H), optional
        Initial hidden and cell state; zeros when None.
    peephole : ndarray (3, H), optional
        Diagonal peephole weights, rows i, f, o.
    lengths : integer ndarray (B,), optional
        Valid steps per row, each in [0, T]; all T when None.
    need_cache : bool, optional
        Keep what backward needs (the default, except for int8 weights, which keep none); False
        saves memory and time for inference and returns ``cache=None``.
    recurrent_mask : ndarray (B, H), optional
        Variational recurrent dropout: multiplies h_{t-1} where it enters the recurrent product
        (``h_{t-1} w_hh^T`` becomes ``(h_{t-1} * recurrent_mask) w_hh^T``), the same mask at every
        step, as Keras's ``recurrent_dropout``; the states themselves are not masked. Pass the
        scaled keep mask (``bernoulli(1 - p) / (1 - p)``, see ``recurrent_dropout_mask``). The
        cache keeps its own copy, and the backward applies it. Finite, of the weights' dtype;
        float weights only.

    All float arrays must share one dtype (else ``TypeError``); shape mismatches raise
    ``ValueError`` naming the argument.

    Returns
    -------
    LSTMOutput
        Named tuple ``(y, h_n, c_n, cache)``: y (T, B, H); h_n, c_n (B, H), the state after
        step ``lengths[b] - 1`` of each row (h0/c0 where the length is 0); cache an
        :class:`LSTMCache` (see there for exactly what it keeps), or None.
    """
    weights = _weights("lstm_forward", w_ih, w_hh, bias, peephole)
    x = contiguous(x, "lstm_forward", "x")
    need_cache = cache_default("lstm_forward", need_cache, weights)
    return LSTMOutput(*_core.lstm_forward(x, weights, h0, c0, lengths, need_cache, recurrent_mask))


def lstm_backward(
    cache: LSTMCache,
    dy: np.ndarray | None = None,
    dh_n: np.ndarray | None = None,
    dc_n: np.ndarray | None = None,
) -> LSTMGrads:
    """Exact gradients (backpropagation through time) of the ``lstm_forward`` that made ``cache``.

    Parameters
    ----------
    cache : LSTMCache
        From ``lstm_forward``; not modified, so it can be reused.
    dy : ndarray (T, B, H), optional
        Gradient of the loss with respect to y; entries at ``t >= lengths[b]`` are ignored
        (y is constant 0 there).
    dh_n, dc_n : ndarray (B, H), optional
        Gradients with respect to h_n and c_n. Each of the three may be None (zeros); all must
        have the forward's dtype (else ``TypeError``) and shape (else ``ValueError``).

    Returns
    -------
    LSTMGrads
        Named tuple ``(dx, dw_ih, dw_hh, dbias, dh0, dc0, dpeephole)`` with the shapes of x,
        w_ih, w_hh, bias (4*H,), h0, c0 and peephole. dbias is returned even when the forward
        had no bias (the gradient for a zero bias); dpeephole is None without peepholes.
    """
    if not isinstance(cache, LSTMCache):
        raise TypeError(f"lstm_backward: cache must be the LSTMCache from lstm_forward, got {type(cache).__name__}")
    out = _core.lstm_backward(
        cache, contiguous(dy, "lstm_backward", "dy"), contiguous(dh_n, "lstm_backward", "dh_n"),
        contiguous(dc_n, "lstm_backward", "dc_n"),
    )
    return LSTMGrads(*out)
