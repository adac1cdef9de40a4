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
