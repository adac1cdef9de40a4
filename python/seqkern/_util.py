"""Layout fix-ups and argument rules shared by the public wrappers; no arithmetic."""

from __future__ import annotations

import os

import numpy as np


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def contiguous(a, fn: str = "", name: str = ""):
    """C-contiguous view of an ndarray (a copy only when it is not already); other objects pass
    through unchanged so the compiled layer can name them in its error message.

    A view too large to copy (for example ``np.broadcast_to`` of a small array to a huge shape)
    raises MemoryError naming ``fn`` and ``name`` before anything is allocated."""
    if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
        memory = _physical_memory()
        where = f"{fn}: {name}" if fn else "array"
        if memory is not None and a.nbytes > memory:
            raise MemoryError(
                f"{where} of shape {a.shape} ({a.dtype}) needs {a.nbytes / 2**30:.1f} GiB as a C-contiguous "
                f"copy, more than this machine's {memory / 2**30:.1f} GiB of memory"
            )
        try:
            return np.ascontiguousarray(a)
        except MemoryError as e:
            raise MemoryError(f"{where} of shape {a.shape} cannot be copied to C order: {e}") from None
    return a


def optional_contiguous(a, fn: str = "", name: str = ""):
    return None if a is None else contiguous(a, fn, name)


def weights_or_arrays(fn: str, packed, kind: str, w_ih, others: dict, build):
    """The recurrent functions' first argument: a packed-weights object (``packed``, named ``kind``
    in messages, with every array of ``others`` None) or the arrays, from which ``build()`` makes one."""
    if isinstance(w_ih, packed):
        if any(v is not None for v in others.values()):
            names = ", ".join(["w_ih", *others])
            raise TypeError(f"{fn}: pass either {kind} or the arrays ({names}), not both")
        return w_ih
    if others.get("w_hh") is None:
        raise TypeError(f"{fn}: w_hh is required when w_ih is an array")
    return build()


def frozen_copy(a, dtype) -> np.ndarray:
    """A read-only C-order copy of ``a`` as ``dtype``."""
    out = np.array(a, dtype=dtype, order="C", copy=True)
    out.setflags(write=False)
    return out


def read_only_view(a: np.ndarray) -> np.ndarray:
    v = a.view()
    v.setflags(write=False)
    return v


class StateCache:
    """The cache of a recurrent family whose only state is h (GRU, RNN): x, the weights object, the
    int64 lengths, the saved gates (T, B, G*H), the states h (T+1, B, H) and its own copy of the
    recurrent dropout mask (B, H) or None, read-only. Only the family's forward makes one
    (``_make``)."""

    __slots__ = ("_x", "_weights", "_lengths", "_gates", "_h", "_mask")
    _maker = "the forward function"

    def __init__(self, *args) -> None:
        raise TypeError(f"{type(self).__name__}: only {self._maker} makes one")

    @classmethod
    def _make(cls, x, weights, lengths, gates, h, mask=None):
        self = object.__new__(cls)
        for a in (gates, h):
            a.setflags(write=False)
        for name, value in zip(StateCache.__slots__, (x.view(), weights, lengths, gates, h, mask)):
            object.__setattr__(self, name, value)
        return self

    def __setattr__(self, name, value) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only")

    @property
    def weights(self):
        return self._weights

    @property
    def gates(self) -> np.ndarray:
        return read_only_view(self._gates)

    @property
    def h(self) -> np.ndarray:
        return read_only_view(self._h)

    @property
    def recurrent_mask(self) -> np.ndarray | None:
        return None if self._mask is None else read_only_view(self._mask)

    @property
    def nbytes(self) -> int:
        """Bytes held by the cache's own arrays (gates, h)."""
        return int(self._gates.nbytes + self._h.nbytes)

    def __repr__(self) -> str:
        T, B, _ = self._x.shape
        return f"{type(self).__name__}(T={T}, B={B}, H={self._h.shape[2]}, dtype={self._x.dtype}, nbytes={self.nbytes})"


# The weight formats the recurrent weights objects take besides their arrays' own dtype.
_LOW_PRECISION = {"bf16": "bf16", "bfloat16": "bf16", "int8": "int8"}


def weight_format(fn: str, dtype) -> str | None:
    """'bf16', 'int8' or None (the arrays' own float dtype) for a weights object's ``dtype`` argument."""
    if dtype is None:
        return None
    if isinstance(dtype, str) and dtype.lower() in _LOW_PRECISION:
        return _LOW_PRECISION[dtype.lower()]
    try:
        if np.dtype(dtype) in (np.float32, np.float64):
            return None
    except TypeError:
        pass
    raise ValueError(f"{fn}: dtype must be None, 'bf16' or 'int8', got {dtype!r}")


def low_precision_weights(fmt: str, *weights):
    """The float32 weights of format ``fmt`` (bf16 numbers, or scale * q) and, for int8, the
    quantized form ``(q, scale)`` of each (None for bf16)."""
    from .reference import lowp

    out, forms = [], []
    for w in weights:
        w = np.asarray(w, dtype=np.float32)
        if fmt == "bf16":
            out.append(lowp.round_bfloat16(w))
            forms.append(None)
        else:
            q, s = lowp.quantize_int8(w)
            out.append(lowp.dequantize_int8(q, s))
            forms.append((q, s))
    return out, forms


def column_int8(forms, rows_ih: list, rows_hh: list):
    """The int8 forms ``(q, scale)`` of w_ih and w_hh in a family's gate columns: ``rows_*`` lists,
    per column block, the PyTorch row block it takes (None: a zero block)."""
    def columns(form, rows):
        q, s = form
        H = q.shape[0] // max(1, len([r for r in rows if r is not None]))
        qs, ss = [], []
        for r in rows:
            if r is None:
                qs.append(np.zeros((H, q.shape[1]), np.int8))
                ss.append(np.zeros(H, np.float32))
            else:
                qs.append(q[r * H:(r + 1) * H])
                ss.append(s[r * H:(r + 1) * H])
        return np.concatenate(qs), np.concatenate(ss)
    return columns(forms[0], rows_ih), columns(forms[1], rows_hh)


def attach_form(fn: str, fmt: str, gates: int, arrays: tuple, col_forms, panel_columns: int | None = None):
    """``arrays`` (w_ih, w_hh, bias, wih_p, whh_p of a float32 layer) with its LowpForm appended.

    ``panel_columns``: the gate columns each packed panel stores, when fewer than ``gates``."""
    w_ih, w_hh = arrays[0], arrays[1]
    D, H = w_ih.shape[1], w_hh.shape[1]
    if fmt == "bf16":
        form = _core_module().lowp_form("bf16", gates, D, H, wih_p=arrays[3], whh_p=arrays[4],
                                        panel_columns=gates if panel_columns is None else panel_columns)
    else:
        (q_ih, s_ih), (q_hh, s_hh) = col_forms
        form = _core_module().lowp_form("int8", gates, D, H, q_ih=q_ih, s_ih=s_ih, q_hh=q_hh, s_hh=s_hh)
    return tuple(arrays[:5]) + (form,)


def _core_module():
    from . import _core

    return _core


def cache_default(fn: str, need_cache, weights) -> bool:
    """need_cache as given, or (None) True unless the weights are int8 (which keep none)."""
    int8 = getattr(weights, "format", None) == "int8"
    if need_cache is None:
        return not int8
    if need_cache and int8:
        raise ValueError(f"{fn}: int8 weights keep no cache (inference only): pass need_cache=False")
    return bool(need_cache)


# The float dtypes' names by dtype: str(dtype) runs Python code in NumPy, too slow for a
# property every call reads.
FLOAT_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


class LowPrecisionAttributes:
    """``format`` and ``int8`` of a weights object that keeps its arrays in ``_arrays`` (a LowpForm
    sixth when it has a low-precision format) and its int8 form in ``_int8``."""

    __slots__ = ()

    @property
    def format(self) -> str:
        """"float32", "float64", "bf16" or "int8" (see LSTMWeights' ``dtype``)."""
        return FLOAT_NAMES[self.dtype] if len(self._arrays) < 6 else self._arrays[5].format

    @property
    def int8(self):
        """``(q_ih, s_ih, q_hh, s_hh)`` of the int8 format (PyTorch's row order), else None."""
        return self._int8
