"""What is the log-softmax's own: -inf where the softmax gives 0, the values the softmax underflows,
the backward's skipped entries, PyTorch, errors. The tests it shares with the softmax (every
axis, float64, layouts, empty sizes, threads, finite differences) are in test_softmax.py."""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import reference as ref
from checks import assert_close

def _forward(x, axis=-1, mask=None):
    got = seqkern.log_softmax(x, axis=axis, mask=mask)
    return got, ref.log_softmax(x.astype(np.float64), axis=axis, mask=mask), ref.log_softmax(x, axis=axis, mask=mask)


def test_is_the_log_of_softmax_and_keeps_what_softmax_underflows(isa):
    x = np.array([[0.0, 1.0, -2.0, 3.0], [0.0, -200.0, -1e4, 50.0]], np.float32)
    got = seqkern.log_softmax(x)
    np.testing.assert_allclose(got[0], np.log(seqkern.softmax(x)[0]), rtol=1e-6)
    assert seqkern.softmax(x)[1, 1] == 0  # exp(-250) is no float32
    assert np.all(np.isfinite(got[1]))
    np.testing.assert_allclose(got[1], [-50.0, -250.0, -1e4 - 50.0, 0.0], rtol=1e-6)


@pytest.mark.parametrize("axis", [-1, 1])
def test_mask_and_fully_masked_rows(isa, rng, axis):
    x = rng.standard_normal((6, 17, 9)).astype(np.float32)
    mask = rng.random((6, 17, 9)) > 0.4
    empty = (2, 3, slice(None)) if axis == -1 else (1, slice(None), 4)
    mask[empty] = False  # a row with nothing kept
    got, e64, e32 = _forward(x, axis=axis, mask=mask)
    assert_close(got, e64, e32)
    assert np.all(got[~mask] == -np.inf)
    assert np.all(np.isfinite(got[mask]))
    dy = rng.standard_normal(x.shape).astype(np.float32)
    dx = seqkern.log_softmax_backward(got, dy, axis=axis)
    assert np.all(dx[~mask] == 0)
    assert_close(dx, ref.log_softmax_backward(e64, dy.astype(np.float64), axis=axis),
                 ref.log_softmax_backward(e32, dy, axis=axis), name="dx")


def test_broadcast_mask(isa, rng):
    x = rng.standard_normal((4, 3, 20)).astype(np.float32)
    key_mask = rng.random(20) > 0.3
    got, e64, e32 = _forward(x, mask=key_mask)
    assert_close(got, e64, e32)
    assert np.all(got[..., ~key_mask] == -np.inf)


@pytest.mark.parametrize("axis", [-1, 0])
def test_infinities_and_nan(isa, axis):
    rows = np.array([[-np.inf, 0.0, 1.0, -np.inf],  # -inf entries stay -inf, the rest are finite
                     [-np.inf] * 4,                  # nothing but -inf: all -inf, like an empty row
                     [0.0, np.nan, 0.0, 0.0],        # NaN: the row is NaN
                     [np.inf, 0.0, 0.0, 0.0]], np.float32)  # +inf: NaN, as in softmax
    x = rows if axis == -1 else np.ascontiguousarray(rows.T)
    got = seqkern.log_softmax(x, axis=axis)
    got = got if axis == -1 else got.T
    assert got[0, 0] == got[0, 3] == -np.inf
    np.testing.assert_allclose(got[0, 1:3], ref.log_softmax(np.array([0.0, 1.0])), rtol=1e-6)
    assert np.all(got[1] == -np.inf)
    assert np.all(np.isnan(got[2])) and np.all(np.isnan(got[3]))
    dx = seqkern.log_softmax_backward(got if axis == -1 else np.ascontiguousarray(got.T),
                                      np.ones_like(x), axis=axis)
    dx = dx if axis == -1 else dx.T
    assert np.all(dx[0, [0, 3]] == 0) and np.all(dx[1] == 0)
    assert np.all(np.isnan(dx[2]))


def test_masked_nan_is_ignored(isa):
    x = np.zeros((1, 5), dtype=np.float32)
    x[0, 2] = np.nan
    got = seqkern.log_softmax(x, mask=np.array([True, True, False, True, True]))
    np.testing.assert_allclose(got[0, [0, 1, 3, 4]], np.log(0.25), rtol=1e-6)
    assert got[0, 2] == -np.inf


@pytest.mark.parametrize("axis", [-1, 1])
def test_matches_pytorch(rng, axis):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 19, 7))
    mask = rng.random(x.shape) > 0.3
    mask[..., 0, :] = True  # PyTorch makes a row with nothing kept NaN; ours is -inf
    mask[..., :, 0] = True
    dy = rng.standard_normal(x.shape)
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.log_softmax(xt.masked_fill(~torch.tensor(mask), float("-inf")), dim=axis)
    yt.backward(torch.tensor(np.where(mask, dy, 0.0)))
    for dtype, tol in ((np.float64, 1e-12), (np.float32, 2e-6)):
        y = seqkern.log_softmax(x.astype(dtype), axis=axis, mask=mask)
        np.testing.assert_allclose(y[mask], yt.detach().numpy()[mask], rtol=tol, atol=tol)
        dx = seqkern.log_softmax_backward(y, dy.astype(dtype), axis=axis)
        np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=tol, atol=tol)


def test_errors_name_the_function_and_argument():
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(TypeError, match=r"log_softmax: x must be float32 or float64, got"):
        seqkern.log_softmax(x.astype(np.int32))
    with pytest.raises(ValueError, match=r"log_softmax: axis 2 is out of range for x of shape \(2, 3\)"):
        seqkern.log_softmax(x, axis=2)
    with pytest.raises(TypeError, match=r"log_softmax: axis must be an integer, got"):
        seqkern.log_softmax(x, axis=1.0)
    with pytest.raises(TypeError, match=r"log_softmax_backward: axis must be an integer, got"):
        seqkern.log_softmax_backward(x, x, axis=True)
    with pytest.raises(ValueError, match=r"log_softmax_backward: dy"):
        seqkern.log_softmax_backward(x, np.zeros((3, 2), np.float32))
    with pytest.raises(TypeError, match=r"log_softmax_backward: dy"):
        seqkern.log_softmax_backward(x, x.astype(np.float64))
    with pytest.raises(ValueError, match=r"log_softmax: mask"):
        seqkern.log_softmax(x, mask=np.ones((3, 3), bool))
    with pytest.raises(ValueError, match=r"log_softmax: x must have at least one dimension"):
        seqkern.log_softmax(np.float32(1.0))
