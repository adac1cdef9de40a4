"""Scaled dot-product attention's additive bias, grouped-query heads and bottom-right causal
alignment: kernels against the reference (forward and every gradient, the bias's included), the
reference against finite differences, PyTorch's SDPA, thread counts, and the errors."""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import reference as ref

from checks import assert_close, check_grad


def inputs(rng, B, NH, NKV, Lq, Lk, Dh, dtype):
    q = rng.standard_normal((B, NH, Lq, Dh)).astype(dtype)
    k = rng.standard_normal((B, NKV, Lk, Dh)).astype(dtype)
    v = rng.standard_normal((B, NKV, Lk, Dh + 3)).astype(dtype)
    return q, k, v


def compare(rng, dtype, q, k, v, **kw):
    """The kernel against the float64 and same-dtype references, forward and backward."""
    up = lambda a: None if a is None else (a.astype(np.float64) if a.dtype.kind == "f" else a)  # noqa: E731
    kw64 = {n: (up(a) if n == "bias" else a) for n, a in kw.items()}
    out, cache = seqkern.attention_forward(q, k, v, **kw)
    e64, c64 = ref.attention_forward(up(q), up(k), up(v), **kw64)
    e32, c32 = ref.attention_forward(q, k, v, **kw)
    assert out.dtype == dtype
    assert_close(out, e64, e32, name="out")
    dout = rng.standard_normal(out.shape).astype(dtype)
    with_bias = kw.get("bias") is not None
    got = seqkern.attention_backward(cache, dout, dbias=with_bias)
    w64 = ref.attention_backward(c64, dout.astype(np.float64), dbias=with_bias)
    w32 = ref.attention_backward(c32, dout, dbias=with_bias)
    names = ("dq", "dk", "dv", "dbias")[: len(w64)]
    for name, a, b64, b32 in zip(names, got, w64, w32):
        assert a.shape == b64.shape, name
        assert_close(a, b64, b32, name=name)
    return out, got


BIAS_SHAPES = [  # broadcast to (B, NH, Lq, Lk) = (2, 4, Lq, Lk); not (Lq, 1): a per-query shift
    # changes no softmax, so its gradient is 0 up to cancellation
    lambda B, NH, Lq, Lk: (B, NH, Lq, Lk),
    lambda B, NH, Lq, Lk: (NH, Lq, Lk),        # shared by the batch (relative-position bias)
    lambda B, NH, Lq, Lk: (NH, 1, Lk),         # per head and key (ALiBi-like, one row)
    lambda B, NH, Lq, Lk: (B, 1, 1, Lk),       # per batch and key (padding as a bias)
    lambda B, NH, Lq, Lk: (Lq, Lk),            # one for every problem
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", range(len(BIAS_SHAPES)))
@pytest.mark.parametrize("Lq,Lk", [(5, 7), (70, 130), (1, 33)])
def test_bias_matches_reference(isa, rng, dtype, shape, Lq, Lk):
    B, NH = 2, 4
    q, k, v = inputs(rng, B, NH, NH, Lq, Lk, 16, dtype)
    bias = rng.standard_normal(BIAS_SHAPES[shape](B, NH, Lq, Lk)).astype(dtype)
    compare(rng, dtype, q, k, v, bias=bias)
    compare(rng, dtype, q, k, v, bias=bias, causal="bottom_right", mask=rng.random((Lq, Lk)) < 0.8)


def test_bias_is_read_in_place_through_broadcast_views(rng):
    q, k, v = inputs(rng, 2, 3, 3, 9, 11, 8, np.float32)
    row = rng.standard_normal(11).astype(np.float32)
    view = np.broadcast_to(row, (2, 3, 9, 11))
    a, _ = seqkern.attention_forward(q, k, v, bias=view)
    b, _ = seqkern.attention_forward(q, k, v, bias=np.ascontiguousarray(view))
    np.testing.assert_array_equal(a, b)
    # The gradient of a broadcast view has the view's shape; of the row itself, the row's.
    _, cache = seqkern.attention_forward(q, k, v, bias=row)
    g = seqkern.attention_backward(cache, np.ones_like(a), dbias=True)
    assert g.dbias.shape == (11,)


def test_minus_infinity_in_the_bias_masks(rng):
    q, k, v = inputs(rng, 1, 2, 2, 4, 6, 8, np.float64)
    bias = np.zeros((4, 6))
    bias[:, 2] = -np.inf
    bias[3] = -np.inf  # query 3 sees no key: zeros, as with the bool mask
    keep = np.isfinite(bias)
    a, ca = seqkern.attention_forward(q, k, v, bias=bias)
    b, cb = seqkern.attention_forward(q, k, v, mask=keep)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    assert np.all(a[..., 3, :] == 0)
    ga = seqkern.attention_backward(ca, np.ones_like(a), dbias=True)
    gb = seqkern.attention_backward(cb, np.ones_like(b))
    for x, y in zip(ga[:3], gb):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-14)
    assert np.all(ga.dbias[:, 2] == 0) and np.all(ga.dbias[3] == 0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("NH,NKV", [(4, 2), (6, 1), (4, 4)])
@pytest.mark.parametrize("Lq,Lk", [(5, 9), (65, 70)])
def test_grouped_heads_match_reference(isa, rng, dtype, NH, NKV, Lq, Lk):
    q, k, v = inputs(rng, 2, NH, NKV, Lq, Lk, 8, dtype)
    compare(rng, dtype, q, k, v)
    compare(rng, dtype, q, k, v, causal="bottom_right", kv_lengths=np.array([Lk, Lk // 2]))


def test_grouped_heads_equal_repeated_heads(rng):
    # Grouped heads compute exactly what repeating k and v per query head computes.
    q, k, v = inputs(rng, 2, 6, 2, 17, 23, 8, np.float32)
    a, ca = seqkern.attention_forward(q, k, v)
    kr, vr = np.repeat(k, 3, axis=1), np.repeat(v, 3, axis=1)
    b, cb = seqkern.attention_forward(q, kr, vr)
    np.testing.assert_array_equal(a, b)
    dout = rng.standard_normal(a.shape).astype(np.float32)
    ga, gb = seqkern.attention_backward(ca, dout), seqkern.attention_backward(cb, dout)
    np.testing.assert_array_equal(ga.dq, gb.dq)
    assert ga.dk.shape == k.shape and ga.dv.shape == v.shape
    np.testing.assert_array_equal(ga.dk, gb.dk.reshape(2, 2, 3, 23, 8).sum(axis=2))
    np.testing.assert_array_equal(ga.dv, gb.dv.reshape(2, 2, 3, 23, 11).sum(axis=2))


@pytest.mark.parametrize("Lq,Lk", [(1, 40), (3, 130), (9, 9), (12, 5), (70, 66)])
def test_bottom_right_causal(isa, rng, Lq, Lk):
    q, k, v = inputs(rng, 2, 2, 2, Lq, Lk, 8, np.float64)
    out, _ = compare(rng, np.float64, q, k, v, causal="bottom_right")
    if Lq > Lk:  # the first Lq - Lk rows see no key
        assert np.all(out[..., : Lq - Lk, :] == 0)
    if Lq == Lk:
        np.testing.assert_array_equal(out, seqkern.attention_forward(q, k, v, causal=True).out)
    # A one-query decoding step against the whole cache sees every key.
    if Lq == 1:
        np.testing.assert_allclose(out, seqkern.attention_forward(q, k, v).out, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("Lq,Lk", [(7, 9), (70, 140)])
def test_softcap_matches_reference(isa, rng, dtype, Lq, Lk):
    q, k, v = inputs(rng, 2, 4, 2, Lq, Lk, 16, dtype)
    q *= 3  # scores large enough for the cap to matter
    compare(rng, dtype, q, k, v, softcap=2.5)
    bias = rng.standard_normal((4, Lq, Lk)).astype(dtype)
    compare(rng, dtype, q, k, v, softcap=4.0, bias=bias, causal=True)


@pytest.mark.parametrize("window", [(2, 0), (1, 2), (1, None), (None, 3), (70, 5)])
@pytest.mark.parametrize("Lq,Lk,causal", [(9, 9, True), (6, 11, "bottom_right"), (150, 150, False), (2, 300, "bottom_right")])
def test_sliding_window_matches_reference(isa, rng, window, Lq, Lk, causal):
    q, k, v = inputs(rng, 2, 2, 2, Lq, Lk, 8, np.float64)
    compare(rng, np.float64, q, k, v, causal=causal, window=window)
    q, k, v = (a.astype(np.float32) for a in (q, k, v))
    compare(rng, np.float32, q, k, v, causal=causal, window=window, kv_lengths=np.array([Lk, Lk // 3]))


@pytest.mark.parametrize("Lq", [1, 3, 70])
def test_bottom_right_follows_each_problems_key_count(isa, rng, Lq):
    # With kv_lengths, bottom-right alignment ends at each problem's own last key.
    Lk = 80
    q, k, v = inputs(rng, 3, 2, 2, Lq, Lk, 8, np.float64)
    lengths = np.array([Lk, 40, 2])
    out, _ = compare(rng, np.float64, q, k, v, causal="bottom_right", kv_lengths=lengths)
    for b, n in enumerate(lengths):
        alone, _ = seqkern.attention_forward(q[b:b + 1], k[b:b + 1, :, :n], v[b:b + 1, :, :n], causal="bottom_right")
        np.testing.assert_allclose(out[b:b + 1], alone, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("group", [1, 2])
def test_reference_gradients(rng, group):
    q, k, v = inputs(rng, 1, 2, 2 // group, 4, 5, 3, np.float64)
    bias = rng.standard_normal((2, 1, 5))
    kw = dict(causal="bottom_right", mask=rng.random((4, 5)) < 0.9, softcap=1.5)
    out, cache = ref.attention_forward(q, k, v, bias=bias, **kw)
    g = rng.standard_normal(out.shape)
    dq, dk, dv, db = ref.attention_backward(cache, g, dbias=True)

    def f(q, k, v, bias):
        return ref.attention_forward(q, k, v, bias=bias, **kw)[0]

    check_grad(f, dict(q=q, k=k, v=v, bias=bias), {"__g__": (g,), "q": dq, "k": dk, "v": dv, "bias": db}, rng=rng,
               name="attention")


def test_thread_counts_agree_bitwise(rng):
    q, k, v = inputs(rng, 2, 4, 2, 130, 150, 16, np.float32)
    bias = rng.standard_normal((4, 130, 150)).astype(np.float32)
    dout = rng.standard_normal((2, 4, 130, 19)).astype(np.float32)
    runs = []
    before = seqkern.get_num_threads()
    try:
        for n in (1, 2):
            seqkern.set_num_threads(n)
            out, cache = seqkern.attention_forward(q, k, v, bias=bias, causal="bottom_right")
            runs.append((out, *seqkern.attention_backward(cache, dout, dbias=True)))
    finally:
        seqkern.set_num_threads(before)
    for a, b in zip(*runs):
        np.testing.assert_array_equal(a, b)


def test_matches_torch_sdpa(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    q, k, v = inputs(rng, 2, 4, 2, 6, 9, 8, np.float64)
    v = v[..., :8].copy()
    bias = rng.standard_normal((4, 6, 9))
    out, cache = seqkern.attention_forward(q, k, v, bias=bias)
    tq, tk, tv, tb = (torch.tensor(a, requires_grad=True) for a in (q, k, v, bias))
    want = F.scaled_dot_product_attention(tq, tk, tv, attn_mask=tb, enable_gqa=True)
    np.testing.assert_allclose(out, want.detach().numpy(), rtol=1e-10, atol=1e-12)
    dout = rng.standard_normal(out.shape)
    want.backward(torch.from_numpy(dout))
    g = seqkern.attention_backward(cache, dout, dbias=True)
    for a, t in zip(g, (tq, tk, tv, tb)):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-9, atol=1e-11)


def test_errors(rng):
    q, k, v = inputs(rng, 2, 4, 4, 5, 6, 8, np.float32)
    f = seqkern.attention_forward
    with pytest.raises(TypeError, match="bias must be float32, like q, got float64"):
        f(q, k, v, bias=np.zeros((5, 6)))
    with pytest.raises(ValueError, match="bias"):
        f(q, k, v, bias=np.zeros((5, 7), np.float32))
    with pytest.raises(ValueError, match="causal must be False, True, 'top_left' or 'bottom_right'"):
        f(q, k, v, causal="diagonal")
    with pytest.raises(ValueError, match="k must have shape .* heads may divide"):
        f(q, k[:, :3], v[:, :3])
    with pytest.raises(ValueError, match="v must have shape"):
        f(q, k[:, :2], v)
    with pytest.raises(ValueError, match="window must be a pair"):
        f(q, k, v, window=3)
    with pytest.raises(ValueError, match="window's left size must be an integer >= 0"):
        f(q, k, v, window=(-2, 1))
    with pytest.raises(ValueError, match="softcap must be a finite number > 0"):
        f(q, k, v, softcap=0.0)
    with pytest.raises(TypeError, match="softcap must be a real number"):
        f(q, k, v, softcap="1")
    out, cache = f(q, k, v)
    with pytest.raises(ValueError, match="dbias=True needs a forward with a bias"):
        seqkern.attention_backward(cache, out, dbias=True)


# ----------------------------------------------------------------------------------------------
# Decoding with a KV cache


def test_kv_cache_appends_in_place_and_grows(rng):
    cache = seqkern.KVCache((2, 3), 8, 5, capacity=4)
    assert (cache.length, cache.capacity) == (0, 4)
    ks, vs = [], []
    for n in (1, 3, 2, 7):  # the third append outgrows 4, the fourth 8
        k, v = rng.standard_normal((2, 3, n, 8)), rng.standard_normal((2, 3, n, 5))
        cache.append(k.astype(np.float32), v.astype(np.float32))
        ks.append(k.astype(np.float32))
        vs.append(v.astype(np.float32))
        np.testing.assert_array_equal(cache.k, np.concatenate(ks, axis=2))
        np.testing.assert_array_equal(cache.v, np.concatenate(vs, axis=2))
    assert cache.length == 13 and cache.capacity == 16
    assert not cache.k.flags.writeable and not cache.k.flags.c_contiguous
    before = cache.k
    cache.clear()
    assert len(cache) == 0 and cache.capacity == 16
    np.testing.assert_array_equal(before, np.concatenate(ks, axis=2))
    with pytest.raises(TypeError, match="k must be float32"):
        cache.append(np.zeros((2, 3, 1, 8)), np.zeros((2, 3, 1, 5)))
    with pytest.raises(ValueError, match="v must have shape"):
        cache.append(np.zeros((2, 3, 1, 8), np.float32), np.zeros((2, 3, 1, 4), np.float32))
    with pytest.raises(ValueError, match="same number of steps"):
        cache.append(np.zeros((2, 3, 1, 8), np.float32), np.zeros((2, 3, 2, 5), np.float32))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_decoding_loop_matches_full_causal_attention(isa, rng, dtype):
    # Step by step against a growing cache (read in place) gives the full causal attention's rows.
    B, NH, NKV, T, D = 2, 4, 2, 37, 16
    q, k, v = inputs(rng, B, NH, NKV, T, T, D, dtype)
    full, _ = seqkern.attention_forward(q, k, v, causal=True)
    cache = seqkern.KVCache((B, NKV), D, D + 3, capacity=8, dtype=dtype)
    tol = 1e-12 if dtype == np.float64 else 2e-6
    for t in range(T):
        cache.append(k[:, :, t : t + 1], v[:, :, t : t + 1])
        step, c = seqkern.attention_forward(q[:, :, t : t + 1], cache.k, cache.v, causal="bottom_right")
        np.testing.assert_allclose(step[:, :, 0], full[:, :, t], rtol=tol, atol=tol)
    # The cache's views give bitwise what contiguous copies give, forward and backward.
    qt = q[:, :, -3:]
    a, ca = seqkern.attention_forward(qt, cache.k, cache.v, causal="bottom_right")
    b, cb = seqkern.attention_forward(qt, np.ascontiguousarray(cache.k), np.ascontiguousarray(cache.v),
                                      causal="bottom_right")
    np.testing.assert_array_equal(a, b)
    dout = rng.standard_normal(a.shape).astype(dtype)
    for x, y in zip(seqkern.attention_backward(ca, dout), seqkern.attention_backward(cb, dout)):
        np.testing.assert_array_equal(x, y)


def test_keys_in_other_layouts_are_copied_once(rng):
    q, k, v = inputs(rng, 2, 2, 2, 3, 10, 8, np.float32)
    strided = np.asfortranarray(k)  # rows not contiguous: copied, same result
    a, _ = seqkern.attention_forward(q, strided, v)
    b, _ = seqkern.attention_forward(q, k, v)
    np.testing.assert_array_equal(a, b)


def _bfloat16():
    for mod in ("ml_dtypes",):
        try:
            return np.dtype(__import__(mod).bfloat16)
        except ImportError:
            pass
    return None


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_half_precision_inputs_compute_in_float32(rng, half):
    dtype = np.dtype(np.float16) if half == "float16" else _bfloat16()
    if dtype is None:
        pytest.skip("no bfloat16 dtype (ml_dtypes) installed")
    q, k, v = inputs(rng, 2, 4, 2, 9, 13, 16, np.float32)
    bias = rng.standard_normal((4, 9, 13)).astype(np.float32)
    qh, kh, vh, bh = (a.astype(dtype) for a in (q, k, v, bias))
    out, cache = seqkern.attention_forward(qh, kh, vh, bias=bh, causal="bottom_right")
    assert out.dtype == dtype
    # Against float64 on the rounded inputs: one rounding of the output to the half format.
    want, c64 = ref.attention_forward(*(a.astype(np.float64) for a in (qh, kh, vh)), bias=bh.astype(np.float64),
                                      causal="bottom_right")
    eps = 2.0 ** -10 if half == "float16" else 2.0 ** -7
    np.testing.assert_allclose(out.astype(np.float64), want, rtol=eps, atol=eps * np.abs(want).max())
    dout = rng.standard_normal(out.shape).astype(dtype)
    got = seqkern.attention_backward(cache, dout, dbias=True)
    exp = ref.attention_backward(c64, dout.astype(np.float64), dbias=True)
    for a, b in zip(got, exp):
        assert a.dtype == dtype
        np.testing.assert_allclose(a.astype(np.float64), b, rtol=4 * eps, atol=4 * eps * np.abs(b).max())
    with pytest.raises(TypeError, match=f"k must be {dtype}, like q"):
        seqkern.attention_forward(qh, k, vh)
    with pytest.raises(TypeError, match="dout must be"):
        seqkern.attention_backward(cache, dout.astype(np.float32))


# ----------------------------------------------------------------------------------------------
# The score matrix


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("Lq,Lk", [(3, 11), (70, 150)])
@pytest.mark.parametrize("kw", [
    {},
    {"causal": True, "softcap": 3.0},
    {"causal": "bottom_right", "window": (4, None), "kv_lengths": "mixed"},
    {"mask": "random", "bias": "random"},
], ids=["plain", "causal-softcap", "window-lengths", "mask-bias"])
def test_scores_match_reference(isa, rng, dtype, Lq, Lk, kw):
    q, k, v = inputs(rng, 2, 4, 2, Lq, Lk, 16, dtype)
    kw = dict(kw)
    if isinstance(kw.get("kv_lengths"), str):
        kw["kv_lengths"] = np.array([Lk, Lk // 3])
    if kw.get("mask") == "random":
        kw["mask"] = rng.random((Lq, Lk)) < 0.7
        kw["bias"] = rng.standard_normal((4, Lq, Lk)).astype(dtype)
    kw64 = {n: (a.astype(np.float64) if n == "bias" else a) for n, a in kw.items()}
    _, cache = seqkern.attention_forward(q, k, v, **kw)
    _, c64 = ref.attention_forward(*(a.astype(np.float64) for a in (q, k, v)), **kw64)
    _, c32 = ref.attention_forward(q, k, v, **kw)
    for stage in ("scores", "biased", "probs"):
        got = seqkern.attention_scores(cache, stage)
        e64, e32 = ref.attention_scores(c64, stage), ref.attention_scores(c32, stage)
        assert got.shape == (2, 4, Lq, Lk) and got.dtype == dtype
        assert_close(got, e64, e32, name=stage)
    probs = seqkern.attention_scores(cache, "probs")
    sums = probs.sum(axis=-1)
    seen = np.isfinite(seqkern.attention_scores(cache, "biased")).any(axis=-1)
    np.testing.assert_allclose(sums[seen], 1.0, rtol=1e-5)
    assert np.all(sums[~seen] == 0)
    with pytest.raises(ValueError, match="stage must be one of"):
        seqkern.attention_scores(cache, "logits")
    with pytest.raises(TypeError, match="cache must be the AttentionCache"):
        seqkern.attention_scores(c64)
