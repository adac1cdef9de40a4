"""Hypothesis strategies for property tests of the public functions, and a case counter.

Every property test draws arguments that are sometimes valid and sometimes not (wrong dtype,
rank, shape, axis, mask, 0-sized dimensions, odd strides, read-only memory, NaN/inf) and checks
that each call either matches the reference or raises TypeError/ValueError naming an argument.
"""

from __future__ import annotations

import collections

import numpy as np
from hypothesis import strategies as st

# function name -> number of cases tried; reported in the terminal summary (see conftest.py).
CASES: collections.Counter = collections.Counter()

FLOATS = [np.float32, np.float64]
BAD_DTYPES = [np.float16, np.int32, np.int64, np.complex64, np.bool_, np.object_, np.uint8]


@st.composite
def layouts(draw, arr):
    """The same values in another memory layout: sliced, transposed back, Fortran, reversed."""
    arr = np.array(arr)
    kind = draw(st.sampled_from(["c", "fortran", "reversed", "sliced", "readonly"]))
    if kind == "fortran":
        return np.asfortranarray(arr)
    if kind == "reversed" and arr.ndim:
        return np.flip(np.flip(arr, 0).copy(), 0)
    if kind == "sliced" and arr.ndim:
        wide = np.repeat(arr, 2, axis=-1)
        return wide[..., ::2]
    if kind == "readonly":
        arr.flags.writeable = False
    return arr


def values(draw, shape, dtype, *, special=True):
    """Random values of `shape`; sometimes with NaN/inf or large magnitudes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from([1.0, 1.0, 30.0, 1e4]))
    a = np.asarray(rng.standard_normal(shape) * scale)
    if special and a.size and draw(st.integers(0, 9)) == 0:
        flat = a.reshape(-1)
        flat[rng.integers(0, flat.size)] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    if dtype is np.object_:
        return a.astype(object)
    if np.issubdtype(dtype, np.complexfloating):
        return a.astype(dtype)
    if dtype is np.bool_:
        return a > 0
    if np.issubdtype(dtype, np.integer):
        return np.nan_to_num(a, nan=0, posinf=1, neginf=-1).astype(dtype)
    return a.astype(dtype)


def dtypes(valid_weight=4):
    return st.sampled_from(FLOATS * valid_weight + BAD_DTYPES)


def names_an_argument(exc: Exception, fn: str, args: list[str]) -> bool:
    msg = str(exc)
    return msg.startswith(fn + ":") and any(a in msg for a in args)
