"""gru_forward, gru_backward and GRUWeights: the public GRU wrappers (PyTorch's math, reset after the
recurrent product, or ONNX's and Keras's other variant, reset before it)."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from . import _core
from ._util import (LowPrecisionAttributes, StateCache, attach_form, cache_default, column_int8, contiguous, frozen_copy,
                    low_precision_weights, weight_format, weights_or_arrays)

__all__ = ["GRUWeights", "GRUCache", "GRUOutput", "GRUGrads", "gru_forward", "gru_backward"]


class GRUWeights(LowPrecisionAttributes):
    """One GRU layer's weights, validated and packed once for the kernels.

    Parameters
    ----------
    w_ih : ndarray (3*H, D), float32 or float64
        Input weights, PyTorch's layout: gate rows ordered r, z, n.
    w_hh : ndarray (3*H, H), same dtype
        Recurrent weights, same gate order.
    b_ih, b_hh : ndarray (3*H,), same dtype, optional
        PyTorch's two biases (b_hn stays inside the reset); None means zero.
    linear_before_reset : bool
        True (PyTorch's GRU, Keras ``reset_after=True``, ONNX ``linear_before_reset=1``): the reset
        gate multiplies ``h W_hnᵀ + b_hn``. False (ONNX's default ``linear_before_reset=0``, Keras
        ``reset_after=False``): it multiplies h before the product, ``n = tanh(x W_inᵀ + b_in +
        (r * h) W_hnᵀ + b_hn)``. Then a step is two products, the second needing the first's r for
        every unit, which the fused recurrent tiles cannot run: these kernels run each step's two
        products on the packed GEMM instead (float32/float64 weights only; ``dtype`` must be None).

    The object keeps read-only copies (numpy cannot make them writeable again) in the kernels'
    column form: four gate columns r, z, n_x, n_h per unit, so that the recurrent core streams
    one packed panel per unit block. ``gru_forward`` accepts it in place of the arrays, and
    :meth:`step` runs one time step. Wrong dtypes raise ``TypeError``, wrong shapes ``ValueError``.
    """

    __slots__ = ("_arrays", "_w_ih", "_w_hh", "_b_ih", "_b_hh", "_int8", "_reset_before")

    def __init__(self, w_ih, w_hh, b_ih=None, b_hh=None, *, linear_before_reset: bool = True, dtype=None) -> None:
        if not isinstance(linear_before_reset, (bool, np.bool_)):
            raise TypeError(f"GRUWeights: linear_before_reset must be a bool, got {linear_before_reset!r}")
        fmt = weight_format("GRUWeights", dtype)
        self._reset_before = not linear_before_reset
        if fmt is not None and self._reset_before:
            raise ValueError(f"GRUWeights: dtype={dtype!r} needs linear_before_reset=True (the low-precision "
                             "kernels are those of the reset-after GRU)")
        self._int8 = None
        if fmt is None:
            self._arrays = _core.gru_weights(w_ih, w_hh, b_ih, b_hh, self._reset_before)
        else:
            _core.gru_weights(w_ih, w_hh, b_ih, b_hh)  # the checks
            (w_ih, w_hh), forms = low_precision_weights(fmt, w_ih, w_hh)
            b_ih, b_hh = (None if b is None else np.asarray(b, np.float32) for b in (b_ih, b_hh))
            arrays = _core.gru_weights(w_ih, w_hh, b_ih, b_hh)
            cols = column_int8(forms, [0, 1, 2, None], [0, 1, None, 2]) if fmt == "int8" else None
            # Each panel holds the 3 columns that read its input (n_h reads no x, n_x no h).
            self._arrays = attach_form("GRUWeights", fmt, 4, arrays, cols, panel_columns=3)
            if fmt == "int8":
                self._int8 = tuple(frozen_copy(a, a.dtype) for pair in forms for a in pair)
        # What the attributes show: read-only views of the column forms (no second copy).
        cols, rec = self._arrays[0], self._arrays[1]
        H = rec.shape[1]
        self._w_ih = cols[: 3 * H]
        self._w_hh = np.concatenate([rec[: 2 * H], rec[3 * H:]])
        self._w_hh.setflags(write=False)
        self._b_ih = None if b_ih is None else frozen_copy(b_ih, cols.dtype)
        self._b_hh = None if b_hh is None else frozen_copy(b_hh, cols.dtype)

    @property
    def w_ih(self) -> np.ndarray:
        return self._w_ih

    @property
    def w_hh(self) -> np.ndarray:
        return self._w_hh

    @property
    def b_ih(self) -> np.ndarray | None:
        return self._b_ih

    @property
    def b_hh(self) -> np.ndarray | None:
        return self._b_hh

    @property
    def input_size(self) -> int:
        return int(self._arrays[0].shape[1])

    @property
    def hidden_size(self) -> int:
        return int(self._arrays[1].shape[1])

    @property
    def dtype(self) -> np.dtype:
        return self._arrays[0].dtype

    @property
    def linear_before_reset(self) -> bool:
        """True: the reset gate after the recurrent product (PyTorch's GRU); False: before it."""
        return not self._reset_before

    def step(self, x, h, out_h=None) -> np.ndarray:
        """One GRU time step for B rows: ``h_new = step(x, h)``, x (B, D), h (B, H).

        ``out_h`` (B, H), C-contiguous and writeable, receives the result (it may be ``h``
        itself); without it a new array is returned. No lengths here: every row takes the step.
        """
        return _core.gru_step(self._arrays, x, h, out_h, self._reset_before)

    def __repr__(self) -> str:
        return (
            f"GRUWeights(input_size={self.input_size}, hidden_size={self.hidden_size}, dtype={self.dtype}, "
            f"bias={self._b_ih is not None or self._b_hh is not None}"
            + (", linear_before_reset=False)" if self._reset_before else ")")
        )


class GRUOutput(NamedTuple):
    """``gru_forward``'s result: y (T, B, H), h_n (B, H), and the cache for backward."""

    y: np.ndarray
    h_n: np.ndarray
    cache: "GRUCache | None"


class GRUGrads(NamedTuple):
    """``gru_backward``'s result; shapes as the forward's inputs (db_ih, db_hh (3*H,) always)."""

    dx: np.ndarray
    dw_ih: np.ndarray
    dw_hh: np.ndarray
    db_ih: np.ndarray
    db_hh: np.ndarray
    dh0: np.ndarray


class GRUCache(StateCache):
    """What ``gru_backward`` needs from one ``gru_forward`` call; only ``gru_forward`` makes one.

    It holds, read-only, the gates r, z, n and ``h W_hnᵀ + b_hn`` (reset before: ``(r * h) W_hnᵀ +
    b_hn``) of every step (T, B, 4*H; 0 past
    a row's length) and the states h (T+1, B, H), and refers to x, the ``GRUWeights`` and the int64
    lengths. ``gru_backward`` checks every array against the weights again.
    """

    __slots__ = ()
    _maker = "gru_forward"


def gru_forward(
    x: np.ndarray,
    w_ih,
    w_hh: np.ndarray | None = None,
    b_ih: np.ndarray | None = None,
    b_hh: np.ndarray | None = None,
    h0: np.ndarray | None = None,
    *,
    lengths: np.ndarray | None = None,
    linear_before_reset: bool = True,
    need_cache: bool | None = None,
    recurrent_mask: np.ndarray | None = None,
) -> GRUOutput:
    """GRU over a whole time-major sequence (PyTorch's ``nn.GRU`` math).

    For every step t and row b with ``t < lengths[b]``::

        r = s(x_t W_irᵀ + b_ir + h W_hrᵀ + b_hr)    z = s(x_t W_izᵀ + b_iz + h W_hzᵀ + b_hz)
        n = tanh(x_t W_inᵀ + b_in + r * (h W_hnᵀ + b_hn))
        h_t = (1 - z) * n + z * h_{t-1},  y_t = h_t

    (with ``linear_before_reset=False``: ``n = tanh(x_t W_inᵀ + b_in + (r * h) W_hnᵀ + b_hn)``).

    Rows with ``t >= lengths[b]`` keep h and get y_t = 0.

    Parameters
    ----------
    x : ndarray (T, B, D), float32 or float64
    w_ih : ndarray (3*H, D) or GRUWeights
        Gate rows r, z, n; or packed weights, in which case ``w_hh``, ``b_ih`` and ``b_hh`` must be None.
    w_hh : ndarray (3*H, H)
    b_ih, b_hh : ndarray (3*H,), optional
    h0 : ndarray (B, H), optional (zeros)
    lengths : integer ndarray (B,), optional
        Valid steps per row, each in [0, T]; all T when None.
    linear_before_reset : bool
        Where the reset gate acts (see :class:`GRUWeights`); a ``GRUWeights`` carries its own.
    need_cache : bool, optional
        Keep what backward needs (the default, except for int8 weights, which keep none); False
        returns ``cache=None``.
    recurrent_mask : ndarray (B, H), optional
        Variational recurrent dropout on h_{t-1} in the three recurrent products (not in
        ``z * h``), as in :func:`seqkern.lstm_forward`; float weights, reset after the product
        (``linear_before_reset=True``) only.

    Returns
    -------
    GRUOutput
        ``(y, h_n, cache)``: y (T, B, H), h_n (B, H) the state after each row's last step.
    """
    weights = _weights("gru_forward", w_ih, w_hh, b_ih, b_hh, linear_before_reset)
    x = contiguous(x, "gru_forward", "x")
    need_cache = cache_default("gru_forward", need_cache, weights)
    y, h_n, gates, hs, lens, mask = _core.gru_forward(x, weights._arrays, h0, lengths, need_cache,
                                                      weights._reset_before, recurrent_mask)
    cache = GRUCache._make(x, weights, lens, gates, hs, mask) if need_cache else None
    return GRUOutput(y, h_n, cache)


def gru_backward(cache: GRUCache, dy: np.ndarray | None = None, dh_n: np.ndarray | None = None) -> GRUGrads:
    """Exact gradients (BPTT) of the ``gru_forward`` that made ``cache``.

    ``dy`` (T, B, H) and ``dh_n`` (B, H) are the upstream gradients (None: zeros); entries of dy
    past a row's length are ignored. Returns :class:`GRUGrads` ``(dx, dw_ih, dw_hh, db_ih, db_hh,
    dh0)``; the bias gradients are returned even when the forward had no biases.
    """
    if not isinstance(cache, GRUCache):
        raise TypeError(f"gru_backward: cache must be the GRUCache from gru_forward, got {type(cache).__name__}")
    dx, dwi, dwh, db, dh0 = _core.gru_backward(
        cache._x, cache._weights._arrays, cache._lengths, cache._gates, cache._h,
        contiguous(dy, "gru_backward", "dy"), contiguous(dh_n, "gru_backward", "dh_n"), cache._weights._reset_before,
        cache._mask,
    )
    # From the column forms back to PyTorch's: columns r, z, n_x, n_h (see GRUWeights).
    H = dwh.shape[1]
    dw_hh = np.concatenate([dwh[: 2 * H], dwh[3 * H:]])
    db_ih = db[: 3 * H].copy()
    db_hh = np.concatenate([db[: 2 * H], db[3 * H:]])
    return GRUGrads(dx, np.ascontiguousarray(dwi[: 3 * H]), dw_hh, db_ih, db_hh, dh0)


def _weights(fn, w_ih, w_hh, b_ih, b_hh, linear_before_reset) -> GRUWeights:
    if isinstance(w_ih, GRUWeights) and not linear_before_reset:
        raise TypeError(f"{fn}: linear_before_reset belongs to the GRUWeights when one is passed")
    return weights_or_arrays(fn, GRUWeights, "a GRUWeights", w_ih, {"w_hh": w_hh, "b_ih": b_ih, "b_hh": b_hh},
                             lambda: GRUWeights(w_ih, w_hh, b_ih, b_hh, linear_before_reset=linear_before_reset))
