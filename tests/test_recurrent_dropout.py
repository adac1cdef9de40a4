"""Variational recurrent dropout in the kernels: ``recurrent_mask`` of lstm_forward, gru_forward,
rnn_forward (and the whole-layer functions), forward and backward.

The references are checked against finite differences in float64 here, the kernels against the
references on every path of the recurrent core (test_lstm.SHAPES: the fused tiles, one row read in
place, several k chunks, the per-step GEMM; the batch split in the thread test), and results must
not depend on the thread count.
"""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import reference as ref

from checks import assert_close, check_grad
from test_gru import lengths_for
from test_gru_reference import GRAD_FIELDS as GRU_FIELDS
from test_gru_reference import gru_inputs
from test_lstm import SHAPES, make_inputs
from test_rnn_reference import GRAD_FIELDS as RNN_FIELDS
from test_rnn_reference import rnn_inputs

LSTM_FIELDS = ("dx", "dw_ih", "dw_hh", "dbias", "dh0", "dc0", "dpeephole")
CELLS = ["lstm", "gru", "rnn"]


# At rate 0.5 the kept entries are 2, exact in float32: the float64 reference and the float32
# kernels then apply the same mask.
RATE = 0.5


def _mask(rng, B, H, rate=RATE):
    return seqkern.recurrent_dropout_mask(rate, (B, H), seed=int(rng.integers(1 << 30)), dtype=np.float64)


def _inputs(cell, rng, T, B, D, H):
    """float64 keyword inputs of the cell's forward (lengths separate) and its upstream gradients;
    w_hh scaled by 1 - RATE, so that the masked product (h scaled by 1 / (1 - RATE) where kept)
    stays in the range of the cell's own tests."""
    if cell == "lstm":
        kw = make_inputs(rng, T, B, D, H)
        kw.pop("lengths")
        g = (rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H)))
    elif cell == "gru":
        kw = gru_inputs(rng, T, B, D, H)
        g = (rng.standard_normal((T, B, H)), rng.standard_normal((B, H)))
    else:
        kw = rnn_inputs(rng, T, B, D, H)
        g = (rng.standard_normal((T, B, H)), rng.standard_normal((B, H)))
    kw["w_hh"] = kw["w_hh"] * (1 - RATE)
    return kw, g


def _api(cell, module):
    fwd = getattr(module, f"{cell}_forward")
    bwd = getattr(module, f"{cell}_backward")
    fields = {"lstm": LSTM_FIELDS, "gru": GRU_FIELDS, "rnn": RNN_FIELDS}[cell]
    return fwd, bwd, fields


def _outputs(cell, out):
    return (out.y, out.h_n, out.c_n) if cell == "lstm" else (out.y, out.h_n)


def _cast(kw, dtype):
    return {k: v.astype(dtype) for k, v in kw.items()}


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("T,B,D,H,lengths", [(4, 3, 3, 5, [4, 0, 2]), (3, 2, 2, 4, None)])
def test_reference_gradients_match_finite_differences(cell, T, B, D, H, lengths):
    rng = np.random.default_rng(7)
    kw, g = _inputs(cell, rng, T, B, D, H)
    mask = _mask(rng, B, H)
    fwd, bwd, fields = _api(cell, ref)
    lens = None if lengths is None else np.array(lengths)
    out = fwd(**kw, lengths=lens, recurrent_mask=mask)
    grads = bwd(out.cache, *g)
    names = {"dx": "x", "dw_ih": "w_ih", "dw_hh": "w_hh", "dbias": "bias", "db_ih": "b_ih", "db_hh": "b_hh",
             "dh0": "h0", "dc0": "c0", "dpeephole": "peephole"}
    analytic = {names[f]: getattr(grads, f) for f in fields if names[f] in kw}
    check_grad(lambda **a: _outputs(cell, fwd(**a, lengths=lens, recurrent_mask=mask)), kw,
               {"__g__": g, **analytic}, rng=rng, name=f"{cell} with recurrent_mask")


@pytest.mark.parametrize("cell", CELLS)
def test_reference_mask_changes_the_product_only(cell):
    # A mask of ones is no mask; a mask of zeros cuts the recurrent product (h_{t-1} still enters
    # the LSTM's cell update through c and the GRU's through z * h).
    rng = np.random.default_rng(3)
    T, B, D, H = 4, 2, 3, 5
    kw, _ = _inputs(cell, rng, T, B, D, H)
    fwd, _, _ = _api(cell, ref)
    plain = fwd(**kw)
    np.testing.assert_array_equal(fwd(**kw, recurrent_mask=np.ones((B, H))).y, plain.y)
    cut = dict(kw, w_hh=np.zeros_like(kw["w_hh"]))  # (b_hh still enters, as with a zero mask)
    zero = fwd(**kw, recurrent_mask=np.zeros((B, H)))
    np.testing.assert_array_equal(zero.y, fwd(**cut).y)
    assert not np.array_equal(zero.y, plain.y)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%d-B%d-D%d-H%d" % s)
@pytest.mark.parametrize("with_lengths", [False, True], ids=["all", "lengths"])
def test_kernels_match_reference(isa, rng, cell, dtype, shape, with_lengths):
    T, B, D, H = shape
    kw64, g64 = _inputs(cell, rng, T, B, D, H)
    mask64 = _mask(rng, B, H)
    lengths = lengths_for(rng, T, B) if with_lengths else None
    kw32, g32, mask32 = _cast(kw64, np.float32), tuple(a.astype(np.float32) for a in g64), mask64.astype(np.float32)
    kw, g, mask = (kw32, g32, mask32) if dtype == np.float32 else (kw64, g64, mask64)
    fwd, bwd, fields = _api(cell, seqkern)
    rfwd, rbwd, _ = _api(cell, ref)
    out = fwd(**kw, lengths=lengths, recurrent_mask=mask)
    grads = bwd(out.cache, *g)
    r64 = rfwd(**kw64, lengths=lengths, recurrent_mask=mask64)
    r32 = rfwd(**kw32, lengths=lengths, recurrent_mask=mask32)
    gr64, gr32 = rbwd(r64.cache, *g64), rbwd(r32.cache, *g32)
    for name, got, e64, e32 in zip(("y", "h_n", "c_n"), _outputs(cell, out), _outputs(cell, r64), _outputs(cell, r32)):
        assert got.dtype == dtype
        assert_close(got, e64, e32 if dtype == np.float32 else None, name=name)
    for name in fields:
        got = getattr(grads, name)
        if got is None:
            assert getattr(gr64, name) is None
            continue
        assert got.dtype == dtype and got.shape == getattr(gr64, name).shape, name
        assert_close(got, getattr(gr64, name), getattr(gr32, name) if dtype == np.float32 else None, name=name)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(5, 1, 7, 20), (6, 3, 5, 40), (5, 9, 8, 24), (4, 40, 9, 24)])
def test_mask_of_ones_is_bitwise_no_mask(isa, rng, cell, shape):
    T, B, D, H = shape
    kw, g = _inputs(cell, rng, T, B, D, H)
    kw, g = _cast(kw, np.float32), tuple(a.astype(np.float32) for a in g)
    fwd, bwd, _ = _api(cell, seqkern)
    plain = fwd(**kw)
    ones = fwd(**kw, recurrent_mask=np.ones((B, H), np.float32))
    for a, b in zip(_outputs(cell, plain), _outputs(cell, ones)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(bwd(plain.cache, *g), bwd(ones.cache, *g)):
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape", [(7, 9, 24, 72), (9, 3, 24, 72), (9, 1, 16, 136), (5, 40, 24, 40),
                                   (3, 16, 400, 112)])
def test_thread_count_does_not_change_results(isa, rng, cell, shape):
    if not seqkern.isa_info()["openmp"]:
        pytest.skip("built without OpenMP")
    T, B, D, H = shape
    kw, g = _inputs(cell, rng, T, B, D, H)
    kw, g = _cast(kw, np.float32), tuple(a.astype(np.float32) for a in g)
    mask = _mask(rng, B, H).astype(np.float32)
    lengths = lengths_for(rng, T, B)
    fwd, bwd, _ = _api(cell, seqkern)
    per = []
    before = seqkern.get_num_threads()
    try:
        for n in (1, 2, 3):
            seqkern.set_num_threads(n)
            out = fwd(**kw, lengths=lengths, recurrent_mask=mask)
            per.append(_outputs(cell, out) + tuple(a for a in bwd(out.cache, *g) if a is not None))
    finally:
        seqkern.set_num_threads(before)
    for other in per[1:]:
        for a, b in zip(per[0], other):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("cell", CELLS)
def test_cache_keeps_its_own_mask(rng, cell):
    T, B, D, H = 4, 3, 5, 6
    kw, g = _inputs(cell, rng, T, B, D, H)
    kw, g = _cast(kw, np.float32), tuple(a.astype(np.float32) for a in g)
    mask = _mask(rng, B, H).astype(np.float32)
    fwd, bwd, _ = _api(cell, seqkern)
    out = fwd(**kw, recurrent_mask=mask)
    before = bwd(out.cache, *g)
    kept = out.cache.recurrent_mask
    np.testing.assert_array_equal(kept, mask)
    assert not kept.flags.writeable
    mask[:] = 0  # the caller's array changes; the cache's copy does not
    for a, b in zip(before, bwd(out.cache, *g)):
        if a is not None:
            np.testing.assert_array_equal(a, b)
    assert fwd(**kw).cache.recurrent_mask is None


@pytest.mark.parametrize("cell", CELLS)
def test_bad_masks_are_refused_by_name(rng, cell):
    T, B, D, H = 3, 2, 4, 5
    kw, _ = _inputs(cell, rng, T, B, D, H)
    kw = _cast(kw, np.float32)
    fwd, _, _ = _api(cell, seqkern)
    with pytest.raises(ValueError, match="recurrent_mask"):
        fwd(**kw, recurrent_mask=np.ones((B, H + 1), np.float32))
    with pytest.raises(ValueError, match="recurrent_mask"):
        fwd(**kw, recurrent_mask=np.ones((H,), np.float32))
    with pytest.raises(TypeError, match="recurrent_mask"):
        fwd(**kw, recurrent_mask=np.ones((B, H), np.float64))
    bad = np.ones((B, H), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="recurrent_mask must be finite"):
        fwd(**kw, recurrent_mask=bad)


def test_reset_before_gru_and_int8_weights_refuse_masks(rng):
    T, B, D, H = 3, 2, 4, 5
    kw = _cast(gru_inputs(rng, T, B, D, H), np.float32)
    mask = np.ones((B, H), np.float32)
    with pytest.raises(ValueError, match="recurrent_mask is not available with linear_before_reset=False"):
        seqkern.gru_forward(**kw, linear_before_reset=False, recurrent_mask=mask)
    with pytest.raises(ValueError, match="linear_before_reset=False"):
        ref.gru_forward(**kw, linear_before_reset=False, recurrent_mask=mask)
    lkw = _cast(make_inputs(rng, T, B, D, H, full=False), np.float32)
    w8 = seqkern.LSTMWeights(lkw["w_ih"], lkw["w_hh"], dtype="int8")
    with pytest.raises(ValueError, match="recurrent_mask needs float weights"):
        seqkern.lstm_forward(lkw["x"], w8, need_cache=False, recurrent_mask=mask)


def test_recurrent_dropout_mask_draws_scaled_keep_masks():
    m = seqkern.recurrent_dropout_mask(0.25, (400, 300), seed=5)
    assert m.dtype == np.float32 and m.shape == (400, 300)
    assert set(np.unique(m)) == {0.0, np.float32(1 / 0.75)}
    assert abs((m == 0).mean() - 0.25) < 0.01
    np.testing.assert_array_equal(m, seqkern.recurrent_dropout_mask(0.25, (400, 300), seed=5))
    np.testing.assert_array_equal(seqkern.recurrent_dropout_mask(0.0, (2, 3)), np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match="rate"):
        seqkern.recurrent_dropout_mask(1.0, (2, 3))


def _bidirectional_stack(rng, cell, D, H, dtype):
    """Two bidirectional layers of random weights objects of the cell."""
    Weights = {"lstm": seqkern.LSTMWeights, "gru": seqkern.GRUWeights, "rnn": seqkern.RNNWeights}[cell]
    G = {"lstm": 4, "gru": 3, "rnn": 1}[cell]

    def weights(d_in):
        return Weights((rng.standard_normal((G * H, d_in)) * 0.4).astype(dtype),
                       (rng.standard_normal((G * H, H)) * 0.4).astype(dtype))

    return [(weights(D), weights(D)), (weights(2 * H), weights(2 * H))]


@pytest.mark.parametrize("cell", CELLS)
def test_layers_take_one_mask_per_layer_and_direction(rng, cell):
    # A 2-layer bidirectional stack: each direction's output and gradients are those of its own
    # call with its mask (the reverse direction's mask is per row, so reversal does not move it).
    T, B, D, H = 5, 3, 4, 6
    layers = _bidirectional_stack(rng, cell, D, H, np.float32)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    masks = seqkern.recurrent_dropout_mask(0.3, (4, B, H), seed=2)
    fwd = getattr(seqkern, f"{cell}_layers_forward")
    bwd = getattr(seqkern, f"{cell}_layers_backward")
    out = fwd(x, layers, recurrent_masks=masks, schedule="sequential")
    one = getattr(seqkern, f"{cell}_forward")
    inp = x
    for k in range(2):
        ys = [one(inp, layers[k][0], recurrent_mask=masks[2 * k]).y,
              one(inp[::-1].copy(), layers[k][1], recurrent_mask=masks[2 * k + 1]).y[::-1]]
        inp = np.concatenate(ys, axis=2)
    np.testing.assert_array_equal(out.y, inp)
    plain = fwd(x, layers, schedule="sequential")
    assert not np.array_equal(plain.y, out.y)
    dy = rng.standard_normal(out.y.shape).astype(np.float32)
    g_mask, g_plain = bwd(out.cache, dy), bwd(plain.cache, dy)
    assert not np.array_equal(g_mask.dx, g_plain.dx)
    with pytest.raises(ValueError, match="recurrent_masks"):
        fwd(x, layers, recurrent_masks=masks[:3])


@pytest.mark.parametrize("cell", CELLS)
def test_layers_match_the_reference_layers(rng, cell):
    # float64, 2 layers, both directions, lengths: outputs and every gradient to 1e-9.
    T, B, D, H = 6, 3, 4, 5
    layers = _bidirectional_stack(rng, cell, D, H, np.float64)
    x = rng.standard_normal((T, B, D))
    lengths = np.array([6, 2, 4])
    masks = seqkern.recurrent_dropout_mask(0.5, (4, B, H), seed=8, dtype=np.float64)
    name = f"{cell}_layers_forward"
    out = getattr(seqkern, name)(x, layers, lengths=lengths, recurrent_masks=masks)
    want = getattr(ref, name)(x, layers, lengths=lengths, recurrent_masks=masks)
    dy = rng.standard_normal(out.y.shape)
    g = getattr(seqkern, f"{cell}_layers_backward")(out.cache, dy)
    gw = getattr(ref, f"{cell}_layers_backward")(want.cache, dy)
    assert_close(out.y, want.y, name="y")
    assert_close(g.dx, gw.dx, name="dx")
    for k in range(2):
        for j in range(2):
            for f in g.layers[k][j]._fields:
                a, b = getattr(g.layers[k][j], f), getattr(gw.layers[k][j], f)
                if a is not None:
                    assert_close(a, b, name=f"layer {k} dir {j} {f}")
