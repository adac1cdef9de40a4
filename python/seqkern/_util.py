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
    int64 lengths, the saved gates (T, B, G*H) and the states h (T+1, B, H), read-only. Only the
    family's forward makes one (``_make``)."""

    __slots__ = ("_x", "_weights", "_lengths", "_gates", "_h")
    _maker = "the forward function"

    def __init__(self, *args) -> None:
        raise TypeError(f"{type(self).__name__}: only {self._maker} makes one")

    @classmethod
    def _make(cls, x, weights, lengths, gates, h):
        self = object.__new__(cls)
        for a in (gates, h):
            a.setflags(write=False)
        for name, value in zip(StateCache.__slots__, (x.view(), weights, lengths, gates, h)):
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
    def nbytes(self) -> int:
        """Bytes held by the cache's own arrays (gates, h)."""
        return int(self._gates.nbytes + self._h.nbytes)

    def __repr__(self) -> str:
        T, B, _ = self._x.shape
        return f"{type(self).__name__}(T={T}, B={B}, H={self._h.shape[2]}, dtype={self._x.dtype}, nbytes={self.nbytes})"
