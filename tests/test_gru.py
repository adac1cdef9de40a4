"""gru_forward / gru_backward / GRUWeights (the kernels) against the NumPy reference, per ISA level,
for both variants: the reset after the recurrent product (PyTorch's, on the recurrent core) and
before it (ONNX's default, on the packed GEMM).

The reference itself is checked against finite differences, PyTorch and ONNX Runtime in
test_gru_reference.py; here the kernels must match it (float32 within the suite's self-calibrating
rule, float64 to 1e-9), on every path of the recurrent core: claimed unit blocks (B < 8), the
per-step GEMM, the batch split, several k chunks.
"""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import reference as ref

from checks import assert_close
from test_gru_reference import GRAD_FIELDS, gru_inputs, upstream
from test_lstm import SHAPES  # the same paths of the recurrent core

# Both variants: reset after the product (linear_before_reset=True) and before it.
VARIANTS = pytest.mark.parametrize("lbr", [True, False], ids=["reset_after", "reset_before"])



def lengths_for(rng, T, B):
    lengths = rng.integers(0, T + 1, B)
    lengths[0] = T
    if B > 1:
        lengths[1] = 0
    return lengths


def run_both(kw64, dtype, lengths, g64, lbr=True):
    kw = {k: v.astype(dtype) for k, v in kw64.items()}
    g = tuple(a.astype(dtype) for a in g64)
    out = seqkern.gru_forward(**kw, lengths=lengths, linear_before_reset=lbr)
    grads = seqkern.gru_backward(out.cache, *g)
    expected = {}
    for name, inputs, up in (("64", kw64, g64), ("32", {k: v.astype(np.float32) for k, v in kw64.items()},
                                                       tuple(a.astype(np.float32) for a in g64))):
        r = ref.gru_forward(**inputs, lengths=lengths, linear_before_reset=lbr)
        expected[name] = (r, ref.gru_backward(r.cache, *up))
    return out, grads, expected


@VARIANTS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%d-B%d-D%d-H%d" % s)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["all", "lengths"])
def test_matches_reference(isa, rng, dtype, shape, with_lengths, lbr):
    T, B, D, H = shape
    kw64 = gru_inputs(rng, T, B, D, H)
    lengths = lengths_for(rng, T, B) if with_lengths else None
    g64 = upstream(rng, T, B, H)
    out, grads, expected = run_both(kw64, dtype, lengths, g64, lbr)
    (r64, gr64), (r32, gr32) = expected["64"], expected["32"]
    for name in ("y", "h_n"):
        got, e64 = getattr(out, name), getattr(r64, name)
        if dtype == np.float32:
            assert_close(got, e64, getattr(r32, name), name=name)
        else:
            assert_close(got, e64, name=name)
    for name in GRAD_FIELDS:
        got, e64 = getattr(grads, name), getattr(gr64, name)
        assert got.shape == e64.shape and got.dtype == dtype, name
        if dtype == np.float32:
            assert_close(got, e64, getattr(gr32, name), name=name)
        else:
            assert_close(got, e64, name=name)
    if with_lengths:
        ended = np.arange(T)[:, None] >= lengths[None, :]
        assert np.all(out.y[ended] == 0)
        assert np.all(out.cache.gates[ended] == 0)


@VARIANTS
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,D,H", [(1, 7, 17), (3, 16, 40), (8, 5, 64)])
def test_step_matches_reference(isa, rng, dtype, B, D, H, lbr):
    kw64 = gru_inputs(rng, 1, B, D, H)
    kw = {k: v.astype(dtype) for k, v in kw64.items()}
    w = seqkern.GRUWeights(kw["w_ih"], kw["w_hh"], kw["b_ih"], kw["b_hh"], linear_before_reset=lbr)
    h = w.step(kw["x"][0], kw["h0"])
    e64 = ref.gru_forward(**kw64, linear_before_reset=lbr).h_n
    if dtype == np.float32:
        kw32 = {k: v.astype(np.float32) for k, v in kw64.items()}
        assert_close(h, e64, ref.gru_forward(**kw32, linear_before_reset=lbr).h_n)
    else:
        assert_close(h, e64)
    # In place (out_h = h) gives the same bits.
    state = kw["h0"].copy()
    assert w.step(kw["x"][0], state, out_h=state) is state
    np.testing.assert_array_equal(state, h)


# B = 9 runs each step as a GEMM with a fixed split; B = 3 and 1 claim blocks; B = 40 may split the
# batch. Three threads on fewer cores exercise descheduled threads.
@VARIANTS
@pytest.mark.parametrize("shape", [(7, 9, 24, 72), (9, 3, 24, 72), (9, 1, 16, 136), (5, 40, 24, 40)])
def test_thread_count_does_not_change_results(isa, rng, shape, lbr):
    if not seqkern.isa_info()["openmp"]:
        pytest.skip("built without OpenMP")
    T, B, D, H = shape
    kw = {k: v.astype(np.float32) for k, v in gru_inputs(rng, T, B, D, H).items()}
    g = tuple(a.astype(np.float32) for a in upstream(rng, T, B, H))
    lengths = lengths_for(rng, T, B)
    w = seqkern.GRUWeights(kw["w_ih"], kw["w_hh"], kw["b_ih"], kw["b_hh"], linear_before_reset=lbr)
    results = []
    before = seqkern.get_num_threads()
    try:
        for n in (1, 2, 3):
            seqkern.set_num_threads(n)
            out = seqkern.gru_forward(kw["x"], w, h0=kw["h0"], lengths=lengths)
            results.append(out[:2] + tuple(seqkern.gru_backward(out.cache, *g)) + (w.step(kw["x"][0], kw["h0"]),))
    finally:
        seqkern.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


@VARIANTS
def test_no_biases_and_no_upstream(rng, lbr):
    T, B, D, H = 4, 3, 5, 6
    kw = gru_inputs(rng, T, B, D, H)
    out = seqkern.gru_forward(kw["x"], kw["w_ih"], kw["w_hh"], linear_before_reset=lbr)
    zeros = seqkern.gru_forward(kw["x"], kw["w_ih"], kw["w_hh"], np.zeros(3 * H), np.zeros(3 * H),
                                linear_before_reset=lbr)
    np.testing.assert_array_equal(out.y, zeros.y)
    g = seqkern.gru_backward(out.cache)
    for name in GRAD_FIELDS:
        assert np.all(getattr(g, name) == 0), name
    assert g.db_ih.shape == g.db_hh.shape == (3 * H,)


def test_weights_are_immutable_and_the_cache_read_only(rng):
    kw = gru_inputs(rng, 3, 2, 4, 5)
    w = seqkern.GRUWeights(kw["w_ih"], kw["w_hh"], kw["b_ih"], kw["b_hh"])
    for name in ("w_ih", "w_hh", "b_ih", "b_hh"):
        a = getattr(w, name)
        np.testing.assert_array_equal(a, kw[name])
        with pytest.raises(ValueError, match="read-only"):
            a[...] = 0
    kw["w_ih"][...] = 0  # the caller's array: the object kept its own copy
    assert np.any(w.w_ih != 0)
    with pytest.raises(AttributeError):
        w.extra = 1
    cache = seqkern.gru_forward(kw["x"], w).cache
    with pytest.raises(AttributeError):
        cache.gates = np.zeros(1)
    with pytest.raises(ValueError, match="read-only"):
        cache.gates[...] = 0
    with pytest.raises(TypeError, match="only gru_forward"):
        seqkern.GRUCache()


def test_errors(rng):
    kw = gru_inputs(rng, 3, 2, 4, 5)
    x, wi, wh = kw["x"], kw["w_ih"], kw["w_hh"]
    with pytest.raises(TypeError, match="GRUWeights: w_hh must be float64, like w_ih"):
        seqkern.gru_forward(x, wi, wh.astype(np.float32))
    with pytest.raises(ValueError, match=r"GRUWeights: w_ih must have shape \(3\*H, D\)"):
        seqkern.gru_forward(x, wi[:-1], wh)
    with pytest.raises(ValueError, match=r"GRUWeights: b_hh must have shape \(3\*H,\)"):
        seqkern.gru_forward(x, wi, wh, None, np.zeros(4))
    with pytest.raises(TypeError, match="gru_forward: x must be float64, like the weights"):
        seqkern.gru_forward(x.astype(np.float32), wi, wh)
    with pytest.raises(ValueError, match=r"gru_forward: x must have shape \(T, B, D\)"):
        seqkern.gru_forward(x[:, :, :3], wi, wh)
    with pytest.raises(ValueError, match=r"gru_forward: h0 must have shape \(B, H\)"):
        seqkern.gru_forward(x, wi, wh, h0=np.zeros((3, 5)))
    with pytest.raises(ValueError, match=r"gru_forward: lengths must lie in \[0, T\]"):
        seqkern.gru_forward(x, wi, wh, lengths=np.array([1, 4]))
    with pytest.raises(TypeError, match="GRUWeights: linear_before_reset must be a bool"):
        seqkern.gru_forward(x, wi, wh, linear_before_reset=0)
    with pytest.raises(ValueError, match="GRUWeights: dtype='int8' needs linear_before_reset=True"):
        seqkern.GRUWeights(wi.astype(np.float32), wh.astype(np.float32), linear_before_reset=False, dtype="int8")
    with pytest.raises(TypeError, match="linear_before_reset belongs to the GRUWeights"):
        seqkern.gru_forward(x, seqkern.GRUWeights(wi, wh), linear_before_reset=False)
    out = seqkern.gru_forward(x, wi, wh)
    with pytest.raises(ValueError, match=r"gru_backward: dy must have shape \(T, B, H\)"):
        seqkern.gru_backward(out.cache, dy=np.zeros((3, 2, 4)))
    with pytest.raises(TypeError, match="gru_backward: cache must be the GRUCache"):
        seqkern.gru_backward(object())
    w = seqkern.GRUWeights(wi, wh)
    with pytest.raises(ValueError, match=r"GRUWeights.step: h must have shape \(B, H\)"):
        w.step(x[0], np.zeros((2, 4)))
    with pytest.raises(TypeError, match="either a GRUWeights or the arrays"):
        seqkern.gru_forward(x, w, wh)


@VARIANTS
@pytest.mark.parametrize("T,B", [(0, 3), (4, 0), (0, 0)])
def test_empty(isa, rng, T, B, lbr):
    D, H = 3, 4
    kw = gru_inputs(rng, max(T, 1), max(B, 1), D, H)
    x = np.zeros((T, B, D))
    out = seqkern.gru_forward(x, kw["w_ih"], kw["w_hh"], linear_before_reset=lbr)
    assert out.y.shape == (T, B, H) and out.h_n.shape == (B, H)
    np.testing.assert_array_equal(out.h_n, 0)
    g = seqkern.gru_backward(out.cache)
    assert g.dx.shape == (T, B, D) and np.all(g.dw_ih == 0)


@VARIANTS
@pytest.mark.parametrize("B", [3, 9, 40])
@pytest.mark.parametrize("where", ["x", "h0"])
def test_infinities_give_the_references_values_on_every_path(isa, rng, B, where, lbr):
    # The per-step GEMM (from 8 rows) multiplies the column forms' zero blocks: an infinity there
    # would make 0 * inf = NaN, so such calls run on the tiles, which skip the zero blocks.
    T, D, H = 4, 6, 20
    kw = gru_inputs(rng, T, B, D, H)
    if where == "x":
        kw["x"][1, 0, 2], kw["x"][2, B - 1, 0] = np.inf, -np.inf
    else:
        kw["h0"][0, 3] = np.inf
    with np.errstate(all="ignore"):
        expected = ref.gru_forward(**kw, linear_before_reset=lbr)
    out = seqkern.gru_forward(**kw, linear_before_reset=lbr)
    # The reference mostly stays finite here (sigmoid(inf) = 1, tanh(inf) = 1); the kernels must too.
    for name in ("y", "h_n"):
        assert_close(getattr(out, name), getattr(expected, name), name=name)
