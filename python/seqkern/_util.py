"""Layout fix-ups shared by the public wrappers; no arithmetic."""

from __future__ import annotations

import numpy as np


def contiguous(a):
    """C-contiguous view of an ndarray (a copy only when it is not already); other objects pass
    through unchanged so the compiled layer can name them in its error message."""
    if isinstance(a, np.ndarray) and not a.flags.c_contiguous:
        return np.ascontiguousarray(a)
    return a


def optional_contiguous(a):
    return None if a is None else contiguous(a)
