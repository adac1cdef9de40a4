"""rnn_forward, rnn_backward and RNNWeights: the public plain-RNN wrappers (PyTorch's ``nn.RNN`` math)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _core
from ._util import (LowPrecisionAttributes, StateCache, attach_form, cache_default, contiguous, frozen_copy, low_precision_weights,
                    read_only_view, weight_format, weights_or_arrays)

__all__ = ["RNNWeights", "RNNCache", "RNNOutput", "RNNGrads", "rnn_forward", "rnn_backward"]

_NONLINEARITIES = ("tanh", "relu")


def _nonlinearity(fn: str, value) -> str:
    if not isinstance(value, str) or value not in _NONLINEARITIES:
        raise ValueError(f"{fn}: nonlinearity must be 'tanh' or 'relu', got {value!r}")
    return value


class RNNWeights(LowPrecisionAttributes):
    """One plain RNN layer's weights, validated and packed once for the kernels.

    Parameters
    ----------
    w_ih : ndarray (H, D), float32 or float64
    w_hh : ndarray (H, H), same dtype
    bias : ndarray (H,), same dtype, optional
        PyTorch's ``b_ih + b_hh`` (one vector: they only ever appear summed); None means zero.
    nonlinearity : "tanh" or "relu"

    The object keeps read-only copies (numpy cannot make them writeable again) and the packed
    panels; ``rnn_forward`` accepts it in place of the arrays, and :meth:`step` runs one time step.
    Wrong dtypes raise ``TypeError``, wrong shapes ``ValueError``.
    """

    __slots__ = ("_arrays", "_has_bias", "_relu", "nonlinearity", "_int8")

    def __init__(self, w_ih, w_hh, bias=None, *, nonlinearity: str = "tanh", dtype=None) -> None:
        object.__setattr__(self, "nonlinearity", _nonlinearity("RNNWeights", nonlinearity))
        object.__setattr__(self, "_relu", nonlinearity == "relu")
        fmt = weight_format("RNNWeights", dtype)
        int8 = None
        if fmt is None:
            arrays = _core.rnn_weights(w_ih, w_hh, bias)
        else:
            _core.rnn_weights(w_ih, w_hh, bias)  # the checks
            (w_ih, w_hh), forms = low_precision_weights(fmt, w_ih, w_hh)
            bias = None if bias is None else np.asarray(bias, np.float32)
            arrays = attach_form("RNNWeights", fmt, 1, _core.rnn_weights(w_ih, w_hh, bias),
                                 forms if fmt == "int8" else None)
            if fmt == "int8":
                int8 = tuple(frozen_copy(a, a.dtype) for pair in forms for a in pair)
        object.__setattr__(self, "_arrays", arrays)
        object.__setattr__(self, "_int8", int8)
        object.__setattr__(self, "_has_bias", bias is not None)

    def __setattr__(self, name, value) -> None:
        raise AttributeError("RNNWeights is read-only")

    @property
    def w_ih(self) -> np.ndarray:
        return read_only_view(self._arrays[0])

    @property
    def w_hh(self) -> np.ndarray:
        return read_only_view(self._arrays[1])

    @property
    def bias(self) -> np.ndarray | None:
        return read_only_view(self._arrays[2]) if self._has_bias else None

    @property
    def input_size(self) -> int:
        return int(self._arrays[0].shape[1])

    @property
    def hidden_size(self) -> int:
        return int(self._arrays[1].shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self._arrays[0].dtype

    def step(self, x, h, out_h=None) -> np.ndarray:
        """One time step for B rows: ``h_new = step(x, h)``, x (B, D), h (B, H).

        ``out_h`` (B, H), C-contiguous and writeable, receives the result (it may be ``h``
        itself); without it a new array is returned. No lengths here: every row takes the step.
        """
        return _core.rnn_step(self._arrays, x, h, out_h, self._relu)

    def __repr__(self) -> str:
        return (
            f"RNNWeights(input_size={self.input_size}, hidden_size={self.hidden_size}, dtype={self.dtype}, "
            f"bias={self._has_bias}, nonlinearity={self.nonlinearity!r})"
        )


class RNNOutput(NamedTuple):
    """``rnn_forward``'s result: y (T, B, H), h_n (B, H), and the cache for backward."""

    y: np.ndarray
    h_n: np.ndarray
    cache: "RNNCache | None"


class RNNGrads(NamedTuple):
    """``rnn_backward``'s result; shapes as the forward's inputs (dbias (H,) always)."""

    dx: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    dbias: np.ndarray
    dh0: np.ndarray


class RNNCache(StateCache):
    """What ``rnn_backward`` needs from one ``rnn_forward`` call; only ``rnn_forward`` makes one.

    It holds, read-only, h_t of every step as the gate (T, B, H; 0 past a row's length) and the
    states h (T+1, B, H), and refers to x, the ``RNNWeights`` and the int64 lengths.
    ``rnn_backward`` checks every array against the weights again.
    """

    __slots__ = ()
    _maker = "rnn_forward"


def rnn_forward(
    x: np.ndarray,
    w_ih,
    w_hh: np.ndarray | None = None,
    bias: np.ndarray | None = None,
    h0: np.ndarray | None = None,
    *,
    lengths: np.ndarray | None = None,
    nonlinearity: str | None = None,
    need_cache: bool | None = None,
    recurrent_mask: np.ndarray | None = None,
) -> RNNOutput:
    """Plain (Elman) RNN over a whole time-major sequence (PyTorch's ``nn.RNN`` math).

    For every step t and row b with ``t < lengths[b]``::

        h_t = act(x_t W_ihᵀ + h_{t-1} W_hhᵀ + bias),  y_t = h_t,   act = tanh or relu

    Rows with ``t >= lengths[b]`` keep h and get y_t = 0.

    Parameters
    ----------
    x : ndarray (T, B, D), float32 or float64
    w_ih : ndarray (H, D) or RNNWeights
        Or packed weights, in which case ``w_hh`` and ``bias`` must be None and the nonlinearity
        is the weights'.
    w_hh : ndarray (H, H)
    bias : ndarray (H,), optional
        ``b_ih + b_hh`` of PyTorch's two biases.
    h0 : ndarray (B, H), optional (zeros)
    lengths : integer ndarray (B,), optional
        Valid steps per row, each in [0, T]; all T when None.
    nonlinearity : "tanh", "relu" or None
        None: "tanh" with arrays, the weights' own with an ``RNNWeights``.
    need_cache : bool, optional
        Keep what backward needs (the default, except for int8 weights, which keep none); False
        returns ``cache=None``.
    recurrent_mask : ndarray (B, H), optional
        Variational recurrent dropout on h_{t-1} in the recurrent product, as in
        :func:`seqkern.lstm_forward` (float weights only).

    Returns
    -------
    RNNOutput
        ``(y, h_n, cache)``: y (T, B, H), h_n (B, H) the state after each row's last step.
    """
    weights = _weights("rnn_forward", w_ih, w_hh, bias, nonlinearity)
    x = contiguous(x, "rnn_forward", "x")
    need_cache = cache_default("rnn_forward", need_cache, weights)
    y, h_n, gates, hs, lens, mask = _core.rnn_forward(x, weights._arrays, h0, lengths, need_cache, weights._relu,
                                                      recurrent_mask)
    cache = RNNCache._make(x, weights, lens, gates, hs, mask) if need_cache else None
    return RNNOutput(y, h_n, cache)


def rnn_backward(cache: RNNCache, dy: np.ndarray | None = None, dh_n: np.ndarray | None = None) -> RNNGrads:
    """Exact gradients (BPTT) of the ``rnn_forward`` that made ``cache``.

    ``dy`` (T, B, H) and ``dh_n`` (B, H) are the upstream gradients (None: zeros); entries of dy
    past a row's length are ignored. Returns :class:`RNNGrads` ``(dx, dw_ih, dw_hh, dbias, dh0)``;
    the bias gradient is returned even when the forward had no bias (it is also the gradient of
    each of PyTorch's b_ih and b_hh). The relu's derivative at 0 is 0, as in PyTorch.
    """
    if not isinstance(cache, RNNCache):
        raise TypeError(f"rnn_backward: cache must be the RNNCache from rnn_forward, got {type(cache).__name__}")
    w = cache._weights
    dx, dwi, dwh, db, dh0 = _core.rnn_backward(
        cache._x, w._arrays, cache._lengths, cache._gates, cache._h,
        contiguous(dy, "rnn_backward", "dy"), contiguous(dh_n, "rnn_backward", "dh_n"), w._relu, cache._mask,
    )
    return RNNGrads(dx, dwi, dwh, db, dh0)


def _weights(fn, w_ih, w_hh, bias, nonlinearity) -> RNNWeights:
    if isinstance(w_ih, RNNWeights) and nonlinearity is not None and nonlinearity != w_ih.nonlinearity:
        raise TypeError(f"{fn}: nonlinearity belongs to the RNNWeights when one is passed")
    nonlinearity = _nonlinearity(fn, "tanh" if nonlinearity is None else nonlinearity)
    return weights_or_arrays(fn, RNNWeights, "an RNNWeights", w_ih, {"w_hh": w_hh, "bias": bias},
                             lambda: RNNWeights(w_ih, w_hh, bias, nonlinearity=nonlinearity))
