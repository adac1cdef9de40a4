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


def values(draw, shape, dtype, *, special=True, scales=(1.0, 1.0, 30.0, 1e4)):
    """Random values of `shape`; sometimes with NaN/inf or large magnitudes."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    scale = draw(st.sampled_from(list(scales)))
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


def fuzz_settings(n):
    """``n`` cases per property, derandomized: CI tries the same cases every run."""
    from hypothesis import HealthCheck, settings

    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def isa_levels():
    import seqkern

    return st.sampled_from(seqkern.available_isas())


def operand(draw, shape, dtype, *, special=False, wrong=20, scales=(1.0, 1.0, 30.0, 1e4)):
    """An argument of `shape` and `dtype` in a random layout; about one draw in `wrong` gets a
    wrong dtype, one a wrong size along one dim, one a wrong rank. Returns the array."""
    shape = tuple(shape)
    kind = draw(st.integers(0, wrong - 1))
    if kind == 0:
        dtype = draw(st.sampled_from(BAD_DTYPES + [np.float32 if dtype == np.float64 else np.float64]))
    elif kind == 1 and shape:
        i = draw(st.integers(0, len(shape) - 1))
        shape = shape[:i] + (shape[i] + draw(st.sampled_from([1, 2])),) + shape[i + 1 :]
    elif kind == 2:
        shape = shape[:-1] if shape and draw(st.booleans()) else shape + (1,)
    return draw(layouts(values(draw, shape, dtype, special=special, scales=scales)))


def mask_operand(draw, shape, dtype):
    """A recurrent dropout mask argument: like ``operand`` (wrong dtype, size or rank now and
    then), with the values of a real mask, 0 and 1/keep."""
    a = operand(draw, shape, dtype, scales=(1.0,))
    if a.dtype.kind != "f":
        return a
    scale = draw(st.sampled_from([2.0, 1.25]))
    return np.where(a > 0, scale, 0.0).astype(a.dtype)


def finite_pattern_matches(actual, expected):
    """Where the float64 reference is not finite, the kernel has the same value (NaN, +inf or
    -inf), and it is finite everywhere else."""
    from checks import same_non_finite

    return same_non_finite(actual, expected)


def floats_ok(*arrays):
    """Every array is a float32/float64 ndarray of one dtype."""
    dts = {a.dtype for a in arrays}
    return len(dts) == 1 and dts <= {np.dtype(np.float32), np.dtype(np.float64)}


def lengths_arg(draw, n, top):
    """Lengths for `n` rows in [0, top]; sometimes out of range, of the wrong shape or dtype."""
    kind = draw(st.integers(0, 11))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == 0:
        return rng.integers(0, top + 1, size=n).astype(np.float64)
    if kind == 1:
        return rng.integers(0, top + 1, size=n + 1)
    if kind == 2 and n:
        out = rng.integers(0, top + 1, size=n)
        out[rng.integers(0, n)] = draw(st.sampled_from([-1, top + 1, -(2**40), 2**62]))
        return out
    if kind == 3:
        return rng.integers(0, 2, size=n).astype(bool)
    dtype = draw(st.sampled_from([np.int64, np.int32, np.uint8, np.int16]))
    top = min(top, np.iinfo(dtype).max)
    return draw(layouts(rng.integers(0, top + 1, size=n).astype(dtype)))


def lengths_ok(lengths, n, top):
    return (
        lengths.dtype.kind in "iu" and lengths.shape == (n,)
        and bool(np.all((lengths.astype(np.int64) >= 0) & (lengths.astype(np.int64) <= top)))
    )


def run_checked(call, valid, fns, args):
    """``call()``, which must succeed when ``valid`` and otherwise raise TypeError/ValueError naming
    one of the functions ``fns`` and one of ``args``; returns its result, or None after such an error."""
    try:
        out = call()
    except (TypeError, ValueError) as e:
        assert not valid, f"valid input rejected: {e}"
        assert any(names_an_argument(e, fn, args) for fn in fns), e
        return None
    assert valid, "invalid input accepted"
    return out
