"""Bad input gets a clear TypeError/ValueError naming the function and the argument."""

from __future__ import annotations

import numpy as np
import pytest

import seqkern


@pytest.mark.parametrize("dtype", [np.float16, np.int32, np.int64, np.complex64, bool, object])
def test_softmax_wrong_dtype(dtype):
    x = np.zeros((2, 3), dtype=dtype)
    with pytest.raises(TypeError, match=r"softmax: x must be float32 or float64, got"):
        seqkern.softmax(x)


def test_softmax_list_input_is_converted_then_checked():
    np.testing.assert_allclose(seqkern.softmax([[0.0, 0.0]]), [[0.5, 0.5]])
    with pytest.raises(TypeError, match="x must be float32 or float64, got int64"):
        seqkern.softmax([[1, 2]])


@pytest.mark.parametrize("axis", [2, -3, 100])
def test_softmax_bad_axis(axis):
    with pytest.raises(ValueError, match=rf"softmax: axis {axis} is out of range for x of shape \(2, 3\)"):
        seqkern.softmax(np.zeros((2, 3), np.float32), axis=axis)


@pytest.mark.parametrize("axis", [0.9, -1.0, True, np.bool_(False), "0", None])
def test_softmax_non_integer_axis(axis):
    # 0.9 used to become axis 0 and True axis 1.
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"softmax: axis must be an integer, got"):
        seqkern.softmax(x, axis=axis)
    with pytest.raises(TypeError, match=r"softmax_backward: axis must be an integer, got"):
        seqkern.softmax_backward(x, x, axis=axis)
    assert seqkern.softmax(x, axis=np.int64(0)).shape == (2, 3)


def test_softmax_zero_dim():
    with pytest.raises(ValueError, match="at least one dimension"):
        seqkern.softmax(np.float32(1.0) * np.ones((), np.float32))


def test_softmax_mask_wrong_dtype():
    with pytest.raises(TypeError, match="softmax: mask must be bool, got float32"):
        seqkern.softmax(np.zeros((2, 3), np.float32), mask=np.ones((2, 3), np.float32))


@pytest.mark.parametrize("shape", [(3, 3), (2, 4), (1, 2, 3), (4,)])
def test_softmax_mask_wrong_shape(shape):
    with pytest.raises(ValueError, match=r"softmax: mask must be broadcastable to \(2, 3\), got shape"):
        seqkern.softmax(np.zeros((2, 3), np.float32), mask=np.ones(shape, bool))


def test_softmax_backward_mismatched():
    y = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match="softmax_backward: dy must be float32, like y, got float64"):
        seqkern.softmax_backward(y, np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"softmax_backward: dy must have the shape of y, \(2, 3\), got \(3, 2\)"):
        seqkern.softmax_backward(y, np.zeros((3, 2), np.float32))
    with pytest.raises(ValueError, match="softmax_backward: axis 5"):
        seqkern.softmax_backward(y, y, axis=5)


def test_not_an_array():
    with pytest.raises(TypeError, match="softmax: x must be"):
        seqkern.softmax("abc")


def test_read_only_input_is_fine():
    x = np.zeros((2, 3), np.float32)
    x.flags.writeable = False
    np.testing.assert_allclose(seqkern.softmax(x), 1 / 3, rtol=1e-6)
