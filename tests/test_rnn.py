"""rnn_forward / rnn_backward / RNNWeights (the kernels) against the NumPy reference, per ISA level.

The reference is checked against finite differences, PyTorch and ONNX Runtime in
test_rnn_reference.py; here the kernels must match it (float32 within the suite's self-calibrating
rule, float64 to 1e-9) on every path of the recurrent core (test_lstm.SHAPES), for tanh and relu.
"""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import reference as ref

from checks import assert_close
from test_gru import lengths_for
from test_lstm import SHAPES
from test_rnn_reference import GRAD_FIELDS, NONLINEARITIES, rnn_inputs, upstream


def _check(got, e64, e32, name):
    if got.dtype == np.float32:
        assert_close(got, e64, e32, name=name)
    else:
        assert_close(got, e64, name=name)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%d-B%d-D%d-H%d" % s)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["all", "lengths"])
def test_matches_reference(isa, rng, dtype, shape, with_lengths, nonlinearity):
    T, B, D, H = shape
    kw64 = rnn_inputs(rng, T, B, D, H)
    kw32 = {k: v.astype(np.float32) for k, v in kw64.items()}
    lengths = lengths_for(rng, T, B) if with_lengths else None
    g64 = upstream(rng, T, B, H)
    g32 = tuple(a.astype(np.float32) for a in g64)
    kw, g = (kw32, g32) if dtype == np.float32 else (kw64, g64)
    out = seqkern.rnn_forward(**kw, lengths=lengths, nonlinearity=nonlinearity)
    grads = seqkern.rnn_backward(out.cache, *g)
    r64 = ref.rnn_forward(**kw64, lengths=lengths, nonlinearity=nonlinearity)
    r32 = ref.rnn_forward(**kw32, lengths=lengths, nonlinearity=nonlinearity)
    gr64, gr32 = ref.rnn_backward(r64.cache, *g64), ref.rnn_backward(r32.cache, *g32)
    for name in ("y", "h_n"):
        assert getattr(out, name).dtype == dtype
        _check(getattr(out, name), getattr(r64, name), getattr(r32, name), name)
    for name in GRAD_FIELDS:
        got = getattr(grads, name)
        assert got.shape == getattr(gr64, name).shape and got.dtype == dtype, name
        _check(got, getattr(gr64, name), getattr(gr32, name), name)
    if with_lengths:
        ended = np.arange(T)[:, None] >= lengths[None, :]
        assert np.all(out.y[ended] == 0)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,D,H", [(1, 7, 17), (3, 16, 40), (12, 5, 64)])
def test_step_matches_reference(isa, rng, dtype, B, D, H, nonlinearity):
    kw64 = rnn_inputs(rng, 1, B, D, H)
    kw = {k: v.astype(dtype) for k, v in kw64.items()}
    w = seqkern.RNNWeights(kw["w_ih"], kw["w_hh"], kw["bias"], nonlinearity=nonlinearity)
    h = w.step(kw["x"][0], kw["h0"])
    e32 = ref.rnn_forward(**{k: v.astype(np.float32) for k, v in kw64.items()}, nonlinearity=nonlinearity).h_n
    _check(h, ref.rnn_forward(**kw64, nonlinearity=nonlinearity).h_n, e32, "h")
    state = kw["h0"].copy()
    assert w.step(kw["x"][0], state, out_h=state) is state
    np.testing.assert_array_equal(state, h)


# (3, 16, 400, 112): the per-step GEMM split over 7 unit blocks, the second thread's share starting
# at an odd block (half a packed GEMM panel of 32 floats).
@pytest.mark.parametrize("shape", [(7, 9, 24, 72), (9, 3, 24, 72), (9, 1, 16, 136), (5, 40, 24, 40), (3, 16, 400, 112)])
def test_thread_count_does_not_change_results(isa, rng, shape):
    if not seqkern.isa_info()["openmp"]:
        pytest.skip("built without OpenMP")
    T, B, D, H = shape
    kw = {k: v.astype(np.float32) for k, v in rnn_inputs(rng, T, B, D, H).items()}
    g = tuple(a.astype(np.float32) for a in upstream(rng, T, B, H))
    lengths = lengths_for(rng, T, B)
    results = []
    before = seqkern.get_num_threads()
    try:
        for nl in NONLINEARITIES:
            w = seqkern.RNNWeights(kw["w_ih"], kw["w_hh"], kw["bias"], nonlinearity=nl)
            per = []
            for n in (1, 2, 3):
                seqkern.set_num_threads(n)
                out = seqkern.rnn_forward(kw["x"], w, h0=kw["h0"], lengths=lengths)
                per.append(out[:2] + tuple(seqkern.rnn_backward(out.cache, *g)) + (w.step(kw["x"][0], kw["h0"]),))
            results.append(per)
    finally:
        seqkern.set_num_threads(before)
    for per in results:
        for other in per[1:]:
            for a, b in zip(per[0], other):
                np.testing.assert_array_equal(a, b)


def test_relu_is_not_tanh_and_keeps_nan(rng):
    T, B, D, H = 3, 2, 4, 5
    kw = rnn_inputs(rng, T, B, D, H)
    relu = seqkern.rnn_forward(**kw, nonlinearity="relu")
    assert np.all(relu.y >= 0) and np.any(relu.y == 0) and np.any(relu.y > 1)
    assert not np.allclose(relu.y, seqkern.rnn_forward(**kw).y)
    kw["x"][1, 0, 2] = np.nan
    for nl in NONLINEARITIES:
        out = seqkern.rnn_forward(**kw, nonlinearity=nl)
        with np.errstate(all="ignore"):
            expected = ref.rnn_forward(**kw, nonlinearity=nl)
        assert_close(out.y, expected.y, name=f"y {nl}")
        assert np.isnan(out.y[1, 0]).all() and not np.isnan(out.y[1, 1]).any()


def test_no_bias_and_no_upstream(rng):
    T, B, D, H = 4, 3, 5, 6
    kw = rnn_inputs(rng, T, B, D, H)
    out = seqkern.rnn_forward(kw["x"], kw["w_ih"], kw["w_hh"])
    zeros = seqkern.rnn_forward(kw["x"], kw["w_ih"], kw["w_hh"], np.zeros(H))
    np.testing.assert_array_equal(out.y, zeros.y)
    g = seqkern.rnn_backward(out.cache)
    for name in GRAD_FIELDS:
        assert np.all(getattr(g, name) == 0), name
    assert g.dbias.shape == (H,)


def test_weights_are_immutable_and_the_cache_read_only(rng):
    kw = rnn_inputs(rng, 3, 2, 4, 5)
    w = seqkern.RNNWeights(kw["w_ih"], kw["w_hh"], kw["bias"], nonlinearity="relu")
    assert w.nonlinearity == "relu" and "relu" in repr(w)
    for name in ("w_ih", "w_hh", "bias"):
        a = getattr(w, name)
        np.testing.assert_array_equal(a, kw[name])
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0
        with pytest.raises(ValueError, match="WRITEABLE"):
            a.setflags(write=True)  # frozen copies, not flippable views
    kw["w_ih"][...] = 0  # the caller's array: the object kept its own copy
    assert np.any(w.w_ih != 0)
    with pytest.raises(AttributeError):
        w.nonlinearity = "tanh"
    assert seqkern.RNNWeights(kw["w_ih"], kw["w_hh"]).bias is None
    cache = seqkern.rnn_forward(kw["x"], w).cache
    with pytest.raises(AttributeError):
        cache.gates = np.zeros(1)
    with pytest.raises(ValueError, match="read-only"):
        cache.h[...] = 0
    with pytest.raises(TypeError, match="only rnn_forward"):
        seqkern.RNNCache()


def test_errors(rng):
    kw = rnn_inputs(rng, 3, 2, 4, 5)
    x, wi, wh = kw["x"], kw["w_ih"], kw["w_hh"]
    with pytest.raises(TypeError, match="RNNWeights: w_hh must be float64, like w_ih"):
        seqkern.rnn_forward(x, wi, wh.astype(np.float32))
    with pytest.raises(ValueError, match=r"RNNWeights: w_ih must have shape \(H, D\) with H = w_hh.shape\[1\]"):
        seqkern.rnn_forward(x, wi[:-1], wh)
    with pytest.raises(ValueError, match=r"RNNWeights: bias must have shape \(H,\)"):
        seqkern.rnn_forward(x, wi, wh, np.zeros(4))
    with pytest.raises(TypeError, match="rnn_forward: x must be float64, like the weights"):
        seqkern.rnn_forward(x.astype(np.float32), wi, wh)
    with pytest.raises(ValueError, match=r"rnn_forward: x must have shape \(T, B, D\)"):
        seqkern.rnn_forward(x[:, :, :3], wi, wh)
    with pytest.raises(ValueError, match=r"rnn_forward: h0 must have shape \(B, H\)"):
        seqkern.rnn_forward(x, wi, wh, h0=np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"rnn_forward: lengths must lie in \[0, T\]"):
        seqkern.rnn_forward(x, wi, wh, lengths=np.array([1, 4]))
    with pytest.raises(ValueError, match="rnn_forward: nonlinearity must be 'tanh' or 'relu'"):
        seqkern.rnn_forward(x, wi, wh, nonlinearity="sigmoid")
    out = seqkern.rnn_forward(x, wi, wh)
    with pytest.raises(ValueError, match=r"rnn_backward: dy must have shape \(T, B, H\)"):
        seqkern.rnn_backward(out.cache, dy=np.zeros((3, 2, 4)))
    with pytest.raises(TypeError, match="rnn_backward: cache must be the RNNCache"):
        seqkern.rnn_backward(object())
    w = seqkern.RNNWeights(wi, wh)
    with pytest.raises(ValueError, match=r"RNNWeights.step: h must have shape \(B, H\)"):
        w.step(x[0], np.zeros((2, 4)))
    with pytest.raises(TypeError, match="either an RNNWeights or the arrays"):
        seqkern.rnn_forward(x, w, wh)
    with pytest.raises(TypeError, match="nonlinearity belongs to the RNNWeights"):
        seqkern.rnn_forward(x, w, nonlinearity="relu")
    np.testing.assert_array_equal(seqkern.rnn_forward(x, w, nonlinearity="tanh").y, out.y)


@pytest.mark.parametrize("T,B", [(0, 3), (4, 0), (0, 0)])
def test_empty(isa, rng, T, B):
    D, H = 3, 4
    kw = rnn_inputs(rng, 1, 1, D, H)
    out = seqkern.rnn_forward(np.zeros((T, B, D)), kw["w_ih"], kw["w_hh"])
    assert out.y.shape == (T, B, H) and out.h_n.shape == (B, H)
    np.testing.assert_array_equal(out.h_n, 0)
    g = seqkern.rnn_backward(out.cache)
    assert g.dx.shape == (T, B, D) and np.all(g.dw_ih == 0)
