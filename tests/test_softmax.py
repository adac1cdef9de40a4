"""softmax / softmax_backward against the reference, per ISA level, and the reference against
finite differences; the tests that hold for both run the log-softmax too (its own cases are in
test_log_softmax.py)."""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import reference as ref
from checks import assert_close, check_grad

WIDTHS = [1, 3, 15, 16, 17, 33, 100]
BOTH = pytest.mark.parametrize("name", ["softmax", "log_softmax"])


def _run_forward(x32, axis=-1, mask=None, name="softmax"):
    kernel, spec = getattr(seqkern, name), getattr(ref, name)
    got = kernel(x32, axis=axis, mask=mask)
    return got, spec(x32.astype(np.float64), axis=axis, mask=mask), spec(x32, axis=axis, mask=mask)


@BOTH
@pytest.mark.parametrize("width", WIDTHS)
def test_last_axis_matches_reference(isa, rng, width, name):
    x = rng.standard_normal((5, width)).astype(np.float32) * 3
    got, e64, e32 = _run_forward(x, name=name)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    assert_close(got, e64, e32)
    probs = got.astype(np.float64) if name == "softmax" else np.exp(got.astype(np.float64))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


@BOTH
@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2, -3])
@pytest.mark.parametrize("shape", [(3, 17, 5), (2, 4, 33), (7, 1, 16), (2, 9, 300)])
def test_every_axis_of_3d(isa, rng, axis, shape, name):
    # (2, 9, 300) over axis 1: more columns than one interleaved group takes.
    x = rng.standard_normal(shape).astype(np.float32)
    got, e64, e32 = _run_forward(x, axis=axis, name=name)
    assert_close(got, e64, e32)


@BOTH
@pytest.mark.parametrize("width", WIDTHS)
def test_float64(isa, rng, width, name):
    x = rng.standard_normal((4, width, 3)) * 5
    for axis in (1, 2):
        got = getattr(seqkern, name)(x, axis=axis)
        assert got.dtype == np.float64
        assert_close(got, getattr(ref, name)(x, axis=axis))


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


@BOTH
@pytest.mark.parametrize("layout", ["sliced", "fortran", "negative"])
def test_non_contiguous_input(isa, rng, layout, name):
    base = rng.standard_normal((8, 34)).astype(np.float32)
    x = {"sliced": base[:, ::2], "fortran": np.asfortranarray(base), "negative": base[::-1, ::-1]}[layout]
    got = getattr(seqkern, name)(x)
    assert got.flags.c_contiguous
    spec = getattr(ref, name)
    assert_close(got, spec(np.asarray(x, np.float64)), spec(np.asarray(x)))


@BOTH
@pytest.mark.parametrize("shape", [(0, 5), (4, 0), (0,), (2, 0, 3)])
def test_empty(isa, shape, name):
    x = np.zeros(shape, np.float32)
    assert getattr(seqkern, name)(x).shape == shape
    assert getattr(seqkern, name + "_backward")(x, x).shape == shape


@BOTH
@pytest.mark.parametrize("axis", [-1, 0, 1])
@pytest.mark.parametrize("width", [1, 3, 16, 33])
def test_backward_matches_reference(isa, rng, axis, width, name):
    x = rng.standard_normal((3, width, 5)).astype(np.float32)
    y = getattr(seqkern, name)(x, axis=axis)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    kernel, spec = getattr(seqkern, name + "_backward"), getattr(ref, name + "_backward")
    got = kernel(y, dy, axis=axis)
    y64, dy64 = y.astype(np.float64), dy.astype(np.float64)
    assert_close(got, spec(y64, dy64, axis=axis), spec(y, dy, axis=axis))
    assert_close(kernel(y64, dy64, axis=axis), spec(y64, dy64, axis=axis))


@BOTH
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_reference_backward_finite_differences(rng, axis, name):
    x = rng.standard_normal((3, 6, 4))
    mask = rng.random((3, 6, 4)) > 0.3
    g = rng.standard_normal(x.shape)
    spec, spec_backward = getattr(ref, name), getattr(ref, name + "_backward")
    for m in (None, mask):
        keep = np.ones(x.shape, bool) if m is None else m

        def f(x, m=m, keep=keep):  # the masked outputs (constants: 0, or -inf for the log) left out
            return np.where(keep, spec(x, axis=axis, mask=m), 0.0)

        dx = spec_backward(spec(x, axis=axis, mask=m), g, axis=axis)
        check_grad(f, {"x": x}, {"__g__": (np.where(keep, g, 0.0),), "x": dx}, rng=rng, name=name)


@BOTH
def test_threads_do_not_change_results(rng, name):
    x = rng.standard_normal((64, 1000)).astype(np.float32)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    forward, backward = getattr(seqkern, name), getattr(seqkern, name + "_backward")
    previous = seqkern.get_num_threads()
    out = []
    try:
        for n in (1, 2):
            seqkern.set_num_threads(n)
            y = forward(x, axis=0)
            out.append((y, backward(y, dy, axis=0), forward(x)))
    finally:
        seqkern.set_num_threads(previous)
    for one, two in zip(*out):
        assert np.array_equal(one, two)
