"""softmax / softmax_backward against the reference, per ISA level, and the reference against
finite differences."""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import reference as ref
from checks import assert_close, check_grad

WIDTHS = [1, 3, 15, 16, 17, 33, 100]


def _run_forward(x32, axis=-1, mask=None):
    got = seqkern.softmax(x32, axis=axis, mask=mask)
    exp64 = ref.softmax(x32.astype(np.float64), axis=axis, mask=mask)
    exp32 = ref.softmax(x32, axis=axis, mask=mask)
    return got, exp64, exp32


@pytest.mark.parametrize("width", WIDTHS)
def test_last_axis_matches_reference(isa, rng, width):
    x = rng.standard_normal((5, width)).astype(np.float32) * 3
    got, e64, e32 = _run_forward(x)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert_close(got, e64, e32)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
@pytest.mark.parametrize("shape", [(3, 17, 5), (2, 4, 33), (7, 1, 16)])
def test_every_axis_of_3d(isa, rng, axis, shape):
    x = rng.standard_normal(shape).astype(np.float32)
    got, e64, e32 = _run_forward(x, axis=axis)
    assert_close(got, e64, e32)


@pytest.mark.parametrize("width", WIDTHS)
def test_float64(isa, rng, width):
    x = rng.standard_normal((4, width, 3)) * 5
    for axis in (1, 2):
        got = seqkern.softmax(x, axis=axis)
        assert got.dtype == np.float64
        assert_close(got, ref.softmax(x, axis=axis))


@pytest.mark.parametrize("axis", [-1, 1])
def test_mask_and_fully_masked_rows(isa, rng, axis):
    x = rng.standard_normal((6, 17, 9)).astype(np.float32)
    mask = rng.random((6, 17, 9)) > 0.4
    if axis == -1:
        mask[2, 3, :] = False  # a row with nothing kept
    else:
        mask[1, :, 4] = False
    got, e64, e32 = _run_forward(x, axis=axis, mask=mask)
    assert_close(got, e64, e32)
    assert np.all(got[~mask] == 0)
    assert np.all(np.isfinite(got))
    if axis == -1:
        assert np.all(got[2, 3] == 0)
    else:
        assert np.all(got[1, :, 4] == 0)


def test_broadcast_mask(isa, rng):
    x = rng.standard_normal((4, 3, 20)).astype(np.float32)
    key_mask = rng.random(20) > 0.3  # broadcasts over the leading dims
    got, e64, e32 = _run_forward(x, mask=key_mask)
    assert_close(got, e64, e32)
    assert np.all(got[..., ~key_mask] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_extreme_values_stay_finite(isa, dtype):
    x = np.array([[1e4, -1e4, 0.0, 1e4 - 1.0], [-1e4, -1e4 - 2.0, -1e4, -1e4]], dtype=dtype)
    got = seqkern.softmax(x)
    assert np.all(np.isfinite(got))
    assert_close(got, ref.softmax(x.astype(np.float64)), ref.softmax(x.astype(np.float32)))


def test_minus_infinity_entries(isa):
    x = np.array(
        [[-np.inf, 0.0, 1.0, -np.inf], [-np.inf] * 4, [0.0, -np.inf, -np.inf, -np.inf]], dtype=np.float32
    )
    got = seqkern.softmax(x)
    assert np.all(np.isfinite(got))
    assert np.all(got[:, :][x == -np.inf] == 0)
    np.testing.assert_allclose(got[0, 1:3], ref.softmax(np.array([0.0, 1.0])), rtol=1e-6)
    assert np.all(got[1] == 0)
    assert got[2, 0] == 1.0


def test_nan_poisons_only_its_row(isa):
    x = np.zeros((3, 20), dtype=np.float32)
    x[1, 7] = np.nan
    got = seqkern.softmax(x)
    assert np.all(np.isnan(got[1]))
    assert np.all(np.isfinite(got[[0, 2]]))


def test_masked_nan_is_ignored(isa):
    x = np.zeros((1, 5), dtype=np.float32)
    x[0, 2] = np.nan
    mask = np.array([True, True, False, True, True])
    got = seqkern.softmax(x, mask=mask)
    np.testing.assert_allclose(got[0], [0.25, 0.25, 0.0, 0.25, 0.25], rtol=1e-6)


@pytest.mark.parametrize("layout", ["sliced", "fortran", "negative"])
def test_non_contiguous_input(isa, rng, layout):
    base = rng.standard_normal((8, 34)).astype(np.float32)
    x = {"sliced": base[:, ::2], "fortran": np.asfortranarray(base), "negative": base[::-1, ::-1]}[layout]
    got = seqkern.softmax(x)
    assert got.flags.c_contiguous
    assert_close(got, ref.softmax(np.asarray(x, np.float64)), ref.softmax(np.asarray(x)))


@pytest.mark.parametrize("shape", [(0, 5), (4, 0), (0,), (2, 0, 3)])
def test_empty(isa, shape):
    x = np.zeros(shape, np.float32)
    assert seqkern.softmax(x).shape == shape
    assert seqkern.softmax_backward(x, x).shape == shape


@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("width", [1, 3, 16, 33])
def test_backward_matches_reference(isa, rng, axis, width):
    x = rng.standard_normal((3, width, 5)).astype(np.float32)
    y = seqkern.softmax(x, axis=axis)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    got = seqkern.softmax_backward(y, dy, axis=axis)
    y64 = y.astype(np.float64)
    assert_close(got, ref.softmax_backward(y64, dy.astype(np.float64), axis=axis),
                 ref.softmax_backward(y, dy, axis=axis))
    got64 = seqkern.softmax_backward(y64, dy.astype(np.float64), axis=axis)
    assert_close(got64, ref.softmax_backward(y64, dy.astype(np.float64), axis=axis))


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_reference_backward_finite_differences(rng, axis):
    x = rng.standard_normal((3, 6, 4))
    mask = rng.random((3, 6, 4)) > 0.3
    g = rng.standard_normal(x.shape)
    for m in (None, mask):
        y = ref.softmax(x, axis=axis, mask=m)
        dx = ref.softmax_backward(y, g, axis=axis)
        check_grad(lambda x, m=m: ref.softmax(x, axis=axis, mask=m), {"x": x}, {"__g__": (g,), "x": dx},
                   rng=rng, name="softmax")


def test_threads_do_not_change_results(rng):
    x = rng.standard_normal((64, 1000)).astype(np.float32)
    previous = seqkern.get_num_threads()
    seqkern.set_num_threads(1)
    try:
        one = seqkern.softmax(x, axis=0)
        seqkern.set_num_threads(2)
        two = seqkern.softmax(x, axis=0)
    finally:
        seqkern.set_num_threads(previous)
    assert np.array_equal(one, two)
