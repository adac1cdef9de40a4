"""Property tests: random, often invalid, arguments to every public function."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import seqkern
from seqkern import reference as ref
from checks import assert_close, same_non_finite
from fuzz_support import CASES, dtypes, fuzz_settings, layouts, names_an_argument, values

FUZZ = fuzz_settings(600)


@st.composite
def softmax_args(draw):
    ndim = draw(st.integers(0, 4))
    shape = tuple(draw(st.lists(st.integers(0, 9), min_size=ndim, max_size=ndim)))
    dtype = draw(dtypes())
    x = draw(layouts(values(draw, shape, dtype)))
    axis = draw(st.integers(-ndim - 1, ndim))
    mask = None
    if draw(st.booleans()):
        mdtype = draw(st.sampled_from([np.bool_] * 4 + [np.float32, np.int8]))
        mshape = shape[draw(st.integers(0, ndim)):] if draw(st.integers(0, 3)) else (3,) * ndim
        mshape = tuple(1 if draw(st.integers(0, 3)) == 0 else d for d in mshape)
        mask = draw(layouts(values(draw, mshape, np.bool_, special=False).astype(mdtype)))
    return x, axis, mask


def _broadcastable(mshape, shape):
    if len(mshape) > len(shape):
        return False
    return all(m in (1, s) for m, s in zip(mshape[::-1], shape[::-1]))


# The softmax and the log-softmax take the same arguments and share the checks.
SOFTMAXES = ["softmax", "log_softmax"]


@pytest.mark.parametrize("name", SOFTMAXES)
@FUZZ
@given(args=softmax_args())
def test_softmax_fuzz(name, args):
    x, axis, mask = args
    CASES[name] += 1
    kernel, spec = getattr(seqkern, name), getattr(ref, name)
    valid = (
        x.dtype in (np.float32, np.float64)
        and x.ndim >= 1
        and -x.ndim <= axis < x.ndim
        and (mask is None or (mask.dtype == np.bool_ and _broadcastable(mask.shape, x.shape)))
    )
    try:
        y = kernel(x, axis=axis, mask=mask)
    except (TypeError, ValueError) as e:
        assert not valid, f"valid input rejected: {e}"
        assert names_an_argument(e, name, ["x", "axis", "mask"]), str(e)
        return
    assert valid, "invalid input accepted"
    assert y.shape == x.shape and y.dtype == x.dtype and y.flags.c_contiguous
    expected = spec(x.astype(np.float64), axis=axis, mask=mask)
    # Rows holding NaN or +inf come out NaN; rows with -inf entries stay finite in the softmax
    # (the log-softmax gives -inf there, and for masked entries).
    if x.dtype == np.float32:
        assert_close(y, expected, spec(x, axis=axis, mask=mask), name="y")
        return
    # float64: 1e-12, tighter than assert_close's float64 bound (1e-9 of the largest output).
    assert same_non_finite(y, expected)
    finite = np.isfinite(expected)
    np.testing.assert_allclose(y[finite], expected[finite], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", [f"{n}_backward" for n in SOFTMAXES])
@FUZZ
@given(data=st.data())
def test_softmax_backward_fuzz(name, data):
    CASES[name] += 1
    kernel, spec = getattr(seqkern, name), getattr(ref, name)
    ndim = data.draw(st.integers(1, 3))
    shape = tuple(data.draw(st.lists(st.integers(0, 7), min_size=ndim, max_size=ndim)))
    dtype = data.draw(dtypes())
    y = values(data.draw, shape, dtype, special=False)
    if name.startswith("log_") and y.dtype.kind == "f":
        y = -np.abs(y)  # log-probabilities: at most 0
    y = data.draw(layouts(y))
    dshape = shape if data.draw(st.integers(0, 4)) else tuple(d + 1 for d in shape)
    dy = data.draw(layouts(values(data.draw, dshape, data.draw(dtypes(valid_weight=8)), special=False)))
    axis = data.draw(st.integers(-ndim - 1, ndim))
    valid = (
        y.dtype in (np.float32, np.float64) and dy.dtype == y.dtype and dy.shape == y.shape and -ndim <= axis < ndim
    )
    try:
        dx = kernel(y, dy, axis=axis)
    except (TypeError, ValueError) as e:
        assert not valid, f"valid input rejected: {e}"
        assert names_an_argument(e, name, ["y", "dy", "axis"]), str(e)
        return
    assert valid
    expected = spec(y.astype(np.float64), dy.astype(np.float64), axis=axis)
    if y.dtype == np.float32:
        assert_close(dx, expected, spec(y, dy, axis=axis), name="dx")
        return
    # float64: 1e-10, tighter than assert_close's float64 bound for outputs above 0.1.
    np.testing.assert_allclose(dx, expected, rtol=1e-10, atol=1e-10 * (1 + np.abs(expected).max(initial=0)))
