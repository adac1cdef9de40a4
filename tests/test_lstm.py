"""lstm_forward / lstm_backward / LSTMWeights against the NumPy reference, per ISA level."""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import reference as ref

from checks import assert_close

# (T, B, D, H): T in 1, 5, 33; B in 1, 3, 8; widths around the vector and block sizes
# (8/16 lanes, 16-float / 8-double unit blocks) and their tails.
SHAPES = [
    (1, 1, 1, 1),
    (5, 3, 7, 17),
    (5, 8, 16, 16),
    (33, 3, 33, 15),
    (1, 8, 40, 33),
    (33, 1, 3, 8),
    (5, 1, 17, 64),
    (33, 8, 5, 40),
    (5, 8, 7, 130),  # the recurrent sum in several k chunks
]
FIELDS = ("dx", "dw_ih", "dw_hh", "dbias", "dh0", "dc0", "dpeephole")


def make_inputs(rng, T, B, D, H, *, full=True):
    """float64 inputs; `full` adds bias, peepholes, h0/c0 and mixed lengths (0 and T included)."""
    s = 1.0 / np.sqrt(H)
    kw = {
        "x": rng.standard_normal((T, B, D)),
        "w_ih": rng.uniform(-s, s, (4 * H, D)) * 2,
        "w_hh": rng.uniform(-s, s, (4 * H, H)) * 2,
    }
    if full:
        lengths = rng.integers(0, T + 1, B)
        lengths[0] = T
        if B > 1:
            lengths[1] = 0
        kw.update(
            bias=rng.standard_normal(4 * H) * 0.5,
            h0=rng.standard_normal((B, H)) * 0.5,
            c0=rng.standard_normal((B, H)),
            peephole=rng.standard_normal((3, H)) * 0.5,
            lengths=lengths,
        )
    return kw


def cast(kw, dtype):
    return {k: (v.astype(dtype) if k != "lengths" and v is not None else v) for k, v in kw.items()}


def upstream(rng, T, B, H):
    return rng.standard_normal((T, B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))


def check_against_reference(rng, dtype, T, B, D, H, *, full=True):
    kw64 = make_inputs(rng, T, B, D, H, full=full)
    kw = cast(kw64, dtype)
    grads64 = upstream(rng, T, B, H)
    grads = tuple(g.astype(dtype) for g in grads64)
    # The references see exactly the values the kernel sees.
    r64 = ref.lstm_forward(**cast(kw, np.float64))
    r32 = ref.lstm_forward(**cast(kw, np.float32))
    out = seqkern.lstm_forward(**kw)
    for name, a, e64, e32 in zip(("y", "h_n", "c_n"), out[:3], r64[:3], r32[:3]):
        assert a.dtype == dtype
        assert_close(a, e64, e32, name=name)
    g64 = ref.lstm_backward(r64.cache, *(g.astype(np.float64) for g in grads))
    g32 = ref.lstm_backward(r32.cache, *(g.astype(np.float32) for g in grads))
    got = seqkern.lstm_backward(out.cache, *grads)
    for name in FIELDS:
        a, e64, e32 = getattr(got, name), getattr(g64, name), getattr(g32, name)
        if e64 is None:
            assert a is None, name
            continue
        assert a.dtype == dtype, name
        assert_close(a, e64, e32, name=name)
    return kw, out, got


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "T%d-B%d-D%d-H%d" % s)
@pytest.mark.parametrize("full", [False, True], ids=["plain", "peephole-lengths-state"])
def test_matches_reference(isa, rng, dtype, shape, full):
    check_against_reference(rng, dtype, *shape, full=full)


def test_lengths_semantics(isa, rng):
    T, B, D, H = 6, 4, 5, 20
    kw = cast(make_inputs(rng, T, B, D, H), np.float64)
    kw["lengths"] = np.array([6, 0, 3, 1])
    out = seqkern.lstm_forward(**kw)
    for b, n in enumerate(kw["lengths"]):
        assert np.all(out.y[n:, b] == 0)
        if n == 0:
            np.testing.assert_array_equal(out.h_n[b], kw["h0"][b])
            np.testing.assert_array_equal(out.c_n[b], kw["c0"][b])
        else:
            np.testing.assert_array_equal(out.h_n[b], out.y[n - 1, b])
    # Gradients reaching padded steps are ignored; a length-0 row passes dh_n/dc_n to dh0/dc0.
    dy, dh, dc = upstream(rng, T, B, H)
    g = seqkern.lstm_backward(out.cache, dy, dh, dc)
    np.testing.assert_array_equal(g.dh0[1], dh[1])
    np.testing.assert_array_equal(g.dc0[1], dc[1])
    assert np.all(g.dx[3:, 2] == 0) and np.all(g.dx[:, 1] == 0)
    dy2 = dy.copy()
    dy2[4:, 2] = 1e3
    g2 = seqkern.lstm_backward(out.cache, dy2, dh, dc)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(g2, name), getattr(g, name))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_long_sequence(isa, rng, dtype):
    T, B, D, H = 2000, 2, 6, 20
    _, out, grads = check_against_reference(rng, dtype, T, B, D, H)
    assert np.all(np.isfinite(out.y))
    for name in FIELDS:
        assert np.all(np.isfinite(getattr(grads, name)))


@pytest.mark.parametrize("T,B", [(0, 3), (4, 0), (0, 0)])
def test_empty(isa, rng, T, B):
    D, H = 5, 7
    kw = cast(make_inputs(rng, T, B, D, H, full=False), np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    out = seqkern.lstm_forward(**kw, h0=h0)
    assert out.y.shape == (T, B, H) and out.h_n.shape == (B, H) and out.c_n.shape == (B, H)
    np.testing.assert_array_equal(out.h_n, h0)
    np.testing.assert_array_equal(out.c_n, 0)
    dh = rng.standard_normal((B, H)).astype(np.float32)
    g = seqkern.lstm_backward(out.cache, None, dh)
    assert g.dx.shape == (T, B, D) and g.dw_ih.shape == (4 * H, D) and g.dbias.shape == (4 * H,)
    np.testing.assert_array_equal(g.dw_ih, 0)
    np.testing.assert_array_equal(g.dw_hh, 0)
    np.testing.assert_array_equal(g.dh0, dh)
    assert g.dpeephole is None


# B = 9 runs each step as a GEMM with a fixed split; B = 3 and 1 share steps by claiming blocks.
# Three threads on fewer cores exercise descheduled threads.
@pytest.mark.parametrize("shape", [(7, 9, 24, 72), (9, 3, 24, 72), (9, 1, 16, 136)])
def test_thread_count_does_not_change_results(isa, rng, shape):
    if not seqkern.isa_info()["openmp"]:
        pytest.skip("built without OpenMP")
    T, B, D, H = shape
    kw = cast(make_inputs(rng, T, B, D, H), np.float32)
    grads = tuple(g.astype(np.float32) for g in upstream(rng, T, B, H))
    weights = seqkern.LSTMWeights(kw["w_ih"], kw["w_hh"], kw["bias"], kw["peephole"])
    step_in = (kw["x"][0], kw["h0"], kw["c0"])
    results = []
    before = seqkern.get_num_threads()
    try:
        for n in (1, 2, 3):
            seqkern.set_num_threads(n)
            out = seqkern.lstm_forward(**kw)
            results.append(out[:3] + tuple(seqkern.lstm_backward(out.cache, *grads)) + weights.step(*step_in))
    finally:
        seqkern.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)


# From 16 rows per thread the forward splits the batch between the threads (each runs its own
# rows through every step, no barrier) instead of the units when the packed weights fit the L2
# (40 KiB here: an L2 of 1 GiB splits the batch at 2 and 3 threads, 4 and 30 KiB the units).
# Every split, every thread count: the bits of one thread, and the reference's values.
@pytest.mark.parametrize("full", [False, True])
def test_batch_and_unit_splits_agree_bitwise(isa, rng, full):
    if not seqkern.isa_info()["openmp"]:
        pytest.skip("built without OpenMP")
    T, B, D, H = 5, 50, 24, 40
    kw64 = make_inputs(rng, T, B, D, H, full=full)
    kw = cast(kw64, np.float32)
    grads = tuple(g.astype(np.float32) for g in upstream(rng, T, B, H))
    before = seqkern.get_num_threads()
    results = []
    try:
        for l2 in (4 << 10, 30 << 10, 1 << 30):
            with seqkern.use_cache_sizes(l2=l2):
                for n in (1, 2, 3):
                    seqkern.set_num_threads(n)
                    out = seqkern.lstm_forward(**kw)
                    results.append(out[:3] + tuple(seqkern.lstm_backward(out.cache, *grads)))
    finally:
        seqkern.set_num_threads(before)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            np.testing.assert_array_equal(a, b)
    ref64 = ref.lstm_forward(**kw64)
    ref32 = ref.lstm_forward(**kw)
    for name, got, e64, e32 in zip(("y", "h_n", "c_n"), results[0][:3], ref64[:3], ref32[:3]):
        assert_close(got, e64, e32, name=name)


def test_noncontiguous_inputs(isa, rng):
    T, B, D, H = 5, 3, 6, 18
    kw = cast(make_inputs(rng, T, B, D, H), np.float32)
    expected = seqkern.lstm_forward(**kw)
    big = np.zeros((T, 2 * B, D), np.float32)
    big[:, ::2] = kw["x"]
    odd = dict(kw, x=big[:, ::2], w_ih=np.asfortranarray(kw["w_ih"]), h0=np.asfortranarray(kw["h0"]),
               c0=kw["c0"][:, ::-1].copy()[:, ::-1], peephole=np.asfortranarray(kw["peephole"]))
    assert not odd["x"].flags.c_contiguous and not odd["c0"].flags.c_contiguous
    got = seqkern.lstm_forward(**odd)
    for a, e in zip(got[:3], expected[:3]):
        np.testing.assert_array_equal(a, e)
    dy = np.asfortranarray(rng.standard_normal((T, B, H)).astype(np.float32))
    g1 = seqkern.lstm_backward(got.cache, dy)
    g2 = seqkern.lstm_backward(expected.cache, np.ascontiguousarray(dy))
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(g1, name), getattr(g2, name))


def test_weights_object_and_cache_reuse(isa, rng):
    T, B, D, H = 4, 3, 9, 21
    kw = cast(make_inputs(rng, T, B, D, H), np.float64)
    arrays = {k: kw.pop(k) for k in ("w_ih", "w_hh", "bias", "peephole")}
    weights = seqkern.LSTMWeights(**arrays)
    assert (weights.input_size, weights.hidden_size, weights.dtype) == (D, H, np.float64)
    a = seqkern.lstm_forward(**kw, **arrays)
    b = seqkern.lstm_forward(**kw, w_ih=weights)
    for x, y in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(x, y)
    # The weights object copied the arrays: changing them afterwards does not reach it.
    arrays["w_hh"][:] = 0
    c = seqkern.lstm_forward(**kw, w_ih=weights)
    np.testing.assert_array_equal(b.y, c.y)
    # The reference accepts the weights object too.
    r = ref.lstm_forward(**kw, w_ih=weights)
    assert_close(b.y, r.y)
    # Backward leaves the cache as it was, so it can be used again.
    cache = b.cache
    assert cache.nbytes == (6 * T * B * H + 2 * B * H) * 8
    saved = [cache.gates.copy(), cache.h.copy(), cache.c.copy()]
    dy, dh, dc = upstream(rng, T, B, H)
    g1 = seqkern.lstm_backward(cache, dy, dh, dc)
    g2 = seqkern.lstm_backward(cache, dy, dh, dc)
    for name in FIELDS:
        np.testing.assert_array_equal(getattr(g1, name), getattr(g2, name))
    for s, now in zip(saved, (cache.gates, cache.h, cache.c)):
        np.testing.assert_array_equal(s, now)
    # No cache for inference: the same outputs.
    d = seqkern.lstm_forward(**kw, w_ih=weights, need_cache=False)
    assert d.cache is None
    for x, y in zip(b[:3], d[:3]):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("B,D,H", [(1, 7, 17), (3, 16, 40), (8, 5, 64)])
def test_step_matches_reference(isa, rng, dtype, B, D, H):
    T = 4
    kw = cast(make_inputs(rng, T, B, D, H), dtype)
    kw.pop("lengths")
    weights = seqkern.LSTMWeights(kw["w_ih"], kw["w_hh"], kw["bias"], kw["peephole"])
    r64 = ref.lstm_forward(**cast(kw, np.float64))
    r32 = ref.lstm_forward(**cast(kw, np.float32))
    h, c = kw["h0"].copy(), kw["c0"].copy()
    h_buf, c_buf = h, c
    for t in range(T):
        # In place: the outputs are the inputs' own buffers.
        h, c = weights.step(kw["x"][t], h, c, out_h=h, out_c=c)
        assert h is h_buf and c is c_buf
        assert_close(h, r64.cache["h"][t + 1], r32.cache["h"][t + 1], name=f"h[{t}]")
        assert_close(c, r64.cache["c"][t + 1], r32.cache["c"][t + 1], name=f"c[{t}]")
    # Fresh outputs, and an output that overlaps an input in another way.
    h1, c1 = weights.step(kw["x"][0], kw["h0"], kw["c0"])
    both = np.concatenate([kw["h0"], kw["c0"]], axis=1)
    h2, c2 = weights.step(kw["x"][0], both[:, :H], kw["c0"], out_h=kw["c0"].copy(), out_c=both[:, :H].copy())
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(c1, c2)
    hc = kw["c0"].copy()
    h3, c3 = weights.step(kw["x"][0], kw["h0"], hc, out_h=hc, out_c=np.empty_like(hc))
    np.testing.assert_array_equal(h3, h1)
    np.testing.assert_array_equal(c3, c1)


def test_step_empty_batch():
    weights = seqkern.LSTMWeights(np.ones((8, 3), np.float32), np.ones((8, 2), np.float32))
    h, c = weights.step(np.zeros((0, 3), np.float32), np.zeros((0, 2), np.float32), np.zeros((0, 2), np.float32))
    assert h.shape == (0, 2) and c.shape == (0, 2)


def test_errors(rng):
    T, B, D, H = 3, 2, 4, 5
    kw = cast(make_inputs(rng, T, B, D, H), np.float32)
    with pytest.raises(TypeError, match="w_hh must be float32"):
        seqkern.lstm_forward(**dict(kw, w_hh=kw["w_hh"].astype(np.float64)))
    with pytest.raises(TypeError, match="x must be float32"):
        seqkern.lstm_forward(**dict(kw, x=kw["x"].astype(np.float64)))
    with pytest.raises(TypeError, match="h0 must be float32"):
        seqkern.lstm_forward(**dict(kw, h0=kw["h0"].astype(np.float64)))
    with pytest.raises(TypeError, match="x must be float32 or float64"):
        seqkern.lstm_forward(**dict(kw, x=kw["x"].astype(np.int32)))
    with pytest.raises(ValueError, match=r"w_hh must have shape \(4\*H, H\)"):
        seqkern.lstm_forward(**dict(kw, w_hh=kw["w_hh"][:, :-1]))
    with pytest.raises(ValueError, match=r"w_ih must have shape \(4\*H, D\)"):
        seqkern.lstm_forward(**dict(kw, w_ih=kw["w_ih"][:-1]))
    with pytest.raises(ValueError, match=r"x must have shape \(T, B, D\)"):
        seqkern.lstm_forward(**dict(kw, x=kw["x"][:, :, :-1]))
    with pytest.raises(ValueError, match=r"x must be 3-D"):
        seqkern.lstm_forward(**dict(kw, x=kw["x"][0]))
    with pytest.raises(ValueError, match=r"bias must have shape \(4\*H,\)"):
        seqkern.lstm_forward(**dict(kw, bias=kw["bias"][:-1]))
    with pytest.raises(ValueError, match=r"peephole must have shape \(3, H\)"):
        seqkern.lstm_forward(**dict(kw, peephole=kw["peephole"][:2]))
    with pytest.raises(ValueError, match=r"c0 must have shape \(B, H\)"):
        seqkern.lstm_forward(**dict(kw, c0=kw["c0"][:1]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\]"):
        seqkern.lstm_forward(**dict(kw, lengths=np.array([1, T + 1])))
    with pytest.raises(ValueError, match=r"lengths must lie in \[0, T\]"):
        seqkern.lstm_forward(**dict(kw, lengths=np.array([-1, 1])))
    with pytest.raises(ValueError, match=r"lengths must have shape \(B,\)"):
        seqkern.lstm_forward(**dict(kw, lengths=np.array([1, 1, 1])))
    with pytest.raises(TypeError, match="lengths must be an integer array"):
        seqkern.lstm_forward(**dict(kw, lengths=np.array([1.0, 2.0])))
    weights = seqkern.LSTMWeights(kw["w_ih"], kw["w_hh"])
    with pytest.raises(TypeError, match="either an LSTMWeights or the arrays"):
        seqkern.lstm_forward(kw["x"], weights, kw["w_hh"])
    with pytest.raises(TypeError, match="w_hh is required"):
        seqkern.lstm_forward(kw["x"], kw["w_ih"])

    out = seqkern.lstm_forward(**kw)
    with pytest.raises(ValueError, match=r"dy must have shape \(T, B, H\)"):
        seqkern.lstm_backward(out.cache, out.y[:-1])
    with pytest.raises(ValueError, match=r"dh_n must have shape \(B, H\)"):
        seqkern.lstm_backward(out.cache, None, out.h_n.T)
    with pytest.raises(ValueError, match=r"dc_n must have shape \(B, H\)"):
        seqkern.lstm_backward(out.cache, None, None, out.c_n[:, :-1])
    with pytest.raises(TypeError, match="dy must be float32"):
        seqkern.lstm_backward(out.cache, out.y.astype(np.float64))
    with pytest.raises(TypeError, match="cache must be the LSTMCache"):
        seqkern.lstm_backward({"y": out.y})
    with pytest.raises(TypeError, match="cache must be the LSTMCache"):
        seqkern.lstm_backward(ref.lstm_forward(**kw).cache)

    x0, h0, c0 = kw["x"][0], kw["h0"], kw["c0"]
    with pytest.raises(ValueError, match=r"x must have shape \(B, D\)"):
        weights.step(x0[:, :-1], h0, c0)
    with pytest.raises(ValueError, match=r"h must have shape \(B, H\)"):
        weights.step(x0, h0[:1], c0)
    with pytest.raises(TypeError, match="c must be float32"):
        weights.step(x0, h0, c0.astype(np.float64))
    with pytest.raises(ValueError, match=r"out_h must have shape \(B, H\)"):
        weights.step(x0, h0, c0, out_h=np.empty((B, H + 1), np.float32))
    with pytest.raises(ValueError, match="out_c must be C-contiguous"):
        weights.step(x0, h0, c0, out_c=np.empty((H, B), np.float32).T)
    frozen = np.empty((B, H), np.float32)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="out_h must be writeable"):
        weights.step(x0, h0, c0, out_h=frozen)
    with pytest.raises(ValueError, match="must not overlap"):
        buf = np.empty((B, H), np.float32)
        weights.step(x0, h0, c0, out_h=buf, out_c=buf)
    with pytest.raises(TypeError, match="w_hh must be float32"):
        seqkern.LSTMWeights(kw["w_ih"], kw["w_hh"].astype(np.float64))


@pytest.mark.parametrize("B", [3, 8, 40])
def test_saved_gates_are_zero_past_each_rows_length(B):
    # Whatever path the forward takes (claimed blocks, the per-step GEMM, the batch split), the
    # cache never holds stale or uninitialised values where a row has ended.
    rng = np.random.default_rng(11)
    kw = make_inputs(rng, 6, B, 7, 20)
    lengths = rng.integers(0, 7, B)
    lengths[0] = 6
    out = seqkern.lstm_forward(kw["x"], kw["w_ih"], kw["w_hh"], kw["bias"], peephole=kw["peephole"],
                               lengths=lengths)
    ended = np.arange(6)[:, None] >= lengths[None, :]
    assert np.all(out.cache.gates[ended] == 0)
    assert np.all(out.cache.gates[~ended] != 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_and_backward_from_the_callers_arrays(isa, rng, dtype):
    # lstm_forward_arrays / lstm_backward_arrays (what seqkern.torch keeps as tensors) give
    # bitwise what lstm_forward and lstm_backward through an LSTMCache give.
    from seqkern import _core

    T, B, D, H = 6, 4, 9, 19
    kw = cast(make_inputs(rng, T, B, D, H), dtype)
    w = seqkern.LSTMWeights(kw["w_ih"], kw["w_hh"], kw["bias"], peephole=kw["peephole"])
    lengths = kw["lengths"]
    out = seqkern.lstm_forward(kw["x"], w, h0=kw["h0"], c0=kw["c0"], lengths=lengths)
    y, h_n, c_n, gates, h, c = _core.lstm_forward_arrays(kw["x"], w, kw["h0"], kw["c0"], lengths)
    for a, b in zip((y, h_n, c_n, gates, h, c), (*out[:3], out.cache.gates, out.cache.h, out.cache.c)):
        np.testing.assert_array_equal(a, b)
    assert all(a.flags.writeable for a in (gates, h, c))
    dy, dh, dc = (g.astype(dtype) for g in upstream(rng, T, B, H))
    want = seqkern.lstm_backward(out.cache, dy, dh, dc)
    got = _core.lstm_backward_arrays(kw["x"], w, lengths, gates, h, c, dy, dh, dc)
    for name, a in zip(FIELDS, got):
        np.testing.assert_array_equal(a, getattr(want, name), err_msg=name)
    # Every array is checked against the weights and the sizes of x.
    with pytest.raises(ValueError, match="gates must have the shape"):
        _core.lstm_backward_arrays(kw["x"], w, lengths, gates[:2], h, c, dy, dh, dc)
    with pytest.raises(ValueError, match="c must have the shape"):
        _core.lstm_backward_arrays(kw["x"], w, lengths, gates, h, c[1:], dy, dh, dc)
    with pytest.raises(TypeError, match="h must be"):
        _core.lstm_backward_arrays(kw["x"], w, lengths, gates, h.astype(np.float16), c, dy, dh, dc)
    with pytest.raises(ValueError, match="lengths"):
        _core.lstm_backward_arrays(kw["x"], w, lengths + T + 1, gates, h, c, dy, dh, dc)
