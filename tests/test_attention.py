"""Attention kernels against the NumPy reference, per ISA level, float32 and float64."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from checks import additive_inputs, assert_close

import seqkern
from seqkern import reference as ref

DTYPES = [np.float32, np.float64]


def _sdpa_case(rng, lead, lq, lk, dh, dv, dtype, *, kernel_inputs=None, **kw):
    """Runs kernel and reference forward + backward; compares out, dq, dk, dv."""
    q = rng.standard_normal(lead + (lq, dh))
    k = rng.standard_normal(lead + (lk, dh))
    v = rng.standard_normal(lead + (lk, dv))
    g = rng.standard_normal(lead + (lq, dv))
    out, cache = seqkern.attention_forward(*(x.astype(dtype) for x in (q, k, v)), **kw)
    grads = seqkern.attention_backward(cache, g.astype(dtype))
    assert out.dtype == dtype and all(x.dtype == dtype for x in grads)
    r64, c64 = ref.attention_forward(q, k, v, **kw)
    g64 = ref.attention_backward(c64, g)
    r32 = g32 = None
    if dtype == np.float32:
        r32, c32 = ref.attention_forward(*(x.astype(np.float32) for x in (q, k, v)), **kw)
        g32 = ref.attention_backward(c32, g.astype(np.float32))
    assert_close(out, r64, r32, name="out")
    for name, a, e64, i in zip(("dq", "dk", "dv"), grads, g64, range(3)):
        assert_close(a, e64, None if g32 is None else g32[i], name=name)
    return out, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "lead,lq,lk,dh,dv",
    [
        ((2, 3), 7, 7, 16, 16),
        ((1,), 130, 7, 64, 64),
        ((2,), 1, 130, 80, 80),
        ((1, 2), 130, 130, 1, 1),
        ((3,), 7, 130, 64, 24),
        ((), 66, 65, 17, 33),
        ((4, 4), 70, 130, 16, 8),
    ],
)
def test_sdpa_shapes(isa, rng, dtype, lead, lq, lk, dh, dv):
    _sdpa_case(rng, lead, lq, lk, dh, dv, dtype)


def _masks(rng, kind, lead, lq, lk):
    kw = {}
    if kind in ("causal", "causal+lengths", "all"):
        kw["causal"] = True
    if kind in ("lengths", "causal+lengths", "all"):
        kw["kv_lengths"] = rng.integers(1, lk + 1, size=lead[0])
    if kind in ("bool", "all"):
        kw["mask"] = rng.random(lead + (lq, lk)) < 0.7
    if kind == "bool_keys":  # broadcast over leading dims and query rows
        kw["mask"] = rng.random(lk) < 0.6
    if kind == "bool_heads":  # (B, 1, Lq, Lk): one mask per batch entry, shared by the heads
        kw["mask"] = rng.random((lead[0], 1, lq, lk)) < 0.6
    if kind == "bool_rows":  # (Lq, 1): whole query rows switched off
        kw["mask"] = rng.random((lq, 1)) < 0.7
    if kind == "scale":
        kw["scale"] = 0.37
    return kw


MASK_KINDS = [
    "causal",
    "lengths",
    "bool",
    "bool_keys",
    "bool_heads",
    "bool_rows",
    "causal+lengths",
    "all",
    "scale",
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("lq,lk", [(130, 70), (70, 130)])
def test_sdpa_masks(isa, rng, dtype, kind, lq, lk):
    lead = (2, 2)
    _sdpa_case(rng, lead, lq, lk, 16, 8, dtype, **_masks(rng, kind, lead, lq, lk))


@pytest.mark.parametrize("dtype", DTYPES)
def test_sdpa_fully_masked_rows(isa, rng, dtype):
    lead, lq, lk = (3, 2), 70, 9
    mask = rng.random((lq, lk)) < 0.5
    mask[5] = False  # row 5 sees nothing
    lengths = np.array([0, 4, 9])  # batch 0 sees nothing at all
    out, (dq, dk, dv) = _sdpa_case(rng, lead, lq, lk, 16, 16, dtype, mask=mask, kv_lengths=lengths)
    for a in (out, dq, dk, dv):
        assert np.all(np.isfinite(a))
    assert np.all(out[0] == 0) and np.all(out[:, :, 5] == 0)
    assert np.all(dq[0] == 0) and np.all(dk[0] == 0) and np.all(dv[0] == 0)
    assert np.all(dq[:, :, 5] == 0)


def test_sdpa_causal_more_keys_than_queries(isa, rng):
    # Top-left alignment: query i sees keys 0..i even when Lk > Lq.
    _sdpa_case(rng, (1,), 3, 200, 8, 8, np.float64, causal=True)


def test_sdpa_noncontiguous_inputs(isa, rng):
    q = rng.standard_normal((2, 20, 16)).astype(np.float32)[:, ::2]
    k = np.asfortranarray(rng.standard_normal((2, 9, 16)).astype(np.float32))
    v = rng.standard_normal((2, 9, 24)).astype(np.float32)[:, :, ::3]
    mask = (rng.random((2, 10, 18)) < 0.8)[:, :, ::2]
    out, cache = seqkern.attention_forward(q, k, v, mask=mask)
    qc, kc, vc, mc = (np.ascontiguousarray(x) for x in (q, k, v, mask))
    expected, _ = seqkern.attention_forward(qc, kc, vc, mask=mc)
    np.testing.assert_array_equal(out, expected)
    g = rng.standard_normal((2, 10, 8)).astype(np.float32)
    got = seqkern.attention_backward(cache, np.asfortranarray(g))
    want = seqkern.attention_backward(cache, g)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_sdpa_threads_bitwise(rng):
    lead, lq, lk = (1, 1), 200, 190
    q, k, v = (rng.standard_normal(lead + (n, 64)).astype(np.float32) for n in (lq, lk, lk))
    g = rng.standard_normal(lead + (lq, 64)).astype(np.float32)
    previous = seqkern.get_num_threads()
    results = []
    try:
        for n in (1, 2):
            seqkern.set_num_threads(n)
            for causal in (False, True):
                out, cache = seqkern.attention_forward(q, k, v, causal=causal)
                results.append((n, causal, out, *seqkern.attention_backward(cache, g)))
    finally:
        seqkern.set_num_threads(previous)
    for a, b in zip(results[:2], results[2:]):
        for x, y in zip(a[2:], b[2:]):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("causal", [False, True])
def test_sdpa_many_problems_bitwise_like_one(rng, causal):
    # Many problems take the one-pass backward, a single one the two-pass: same bits.
    lead, lq, lk = (17,), 100, 150
    q, k, v = (rng.standard_normal(lead + (n, 16)).astype(np.float32) for n in (lq, lk, lk))
    g = rng.standard_normal(lead + (lq, 16)).astype(np.float32)
    lengths = rng.integers(0, lk + 1, size=17)
    out, cache = seqkern.attention_forward(q, k, v, causal=causal, kv_lengths=lengths)
    grads = seqkern.attention_backward(cache, g)
    for b in (0, 5, 16):
        one = slice(b, b + 1)
        o1, c1 = seqkern.attention_forward(
            q[one], k[one], v[one], causal=causal, kv_lengths=lengths[one]
        )
        np.testing.assert_array_equal(o1[0], out[b])
        for x, y in zip(seqkern.attention_backward(c1, g[one]), grads):
            np.testing.assert_array_equal(x[0], y[b])


def test_sdpa_cache_reusable(rng):
    q, k, v = (rng.standard_normal((2, 9, 8)) for _ in range(3))
    out, cache = seqkern.attention_forward(q, k, v, causal=True)
    snapshot = [np.array(x, copy=True) if isinstance(x, np.ndarray) else x for x in cache]
    g = rng.standard_normal(out.shape)
    first = seqkern.attention_backward(cache, g)
    second = seqkern.attention_backward(cache, g)
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    for before, after in zip(snapshot, cache):
        if isinstance(before, np.ndarray):
            np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("lq,lk,dh", [(0, 5, 4), (5, 0, 4), (5, 5, 0)])
def test_sdpa_empty(rng, lq, lk, dh):
    q = rng.standard_normal((2, lq, dh))
    k = rng.standard_normal((2, lk, dh))
    v = rng.standard_normal((2, lk, 3))
    out, cache = seqkern.attention_forward(q, k, v)
    expected, _ = ref.attention_forward(q, k, v)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    dq, dk, dv = seqkern.attention_backward(cache, np.ones_like(out))
    assert dq.shape == q.shape and dk.shape == k.shape and dv.shape == v.shape
    assert np.all(np.isfinite(dq)) and np.all(np.isfinite(dk)) and np.all(np.isfinite(dv))


def test_sdpa_errors(rng):
    q = rng.standard_normal((2, 5, 8)).astype(np.float32)
    k = rng.standard_normal((2, 6, 8)).astype(np.float32)
    v = rng.standard_normal((2, 6, 4)).astype(np.float32)
    with pytest.raises(TypeError, match="k must be float32"):
        seqkern.attention_forward(q, k.astype(np.float64), v)
    with pytest.raises(TypeError, match="q must be float32 or float64"):
        seqkern.attention_forward(q.astype(np.int32), k, v)
    with pytest.raises(ValueError, match="k must have shape"):
        seqkern.attention_forward(q, k[:, :, :4], v)
    with pytest.raises(ValueError, match="v must have shape"):
        seqkern.attention_forward(q, k, v[:, :5])
    with pytest.raises(ValueError, match="k must have shape"):
        seqkern.attention_forward(q, k[:1], v[:1])
    with pytest.raises(ValueError, match="mask must be broadcastable"):
        seqkern.attention_forward(q, k, v, mask=np.ones((5, 5), dtype=bool))
    with pytest.raises(TypeError, match="mask must be bool"):
        seqkern.attention_forward(q, k, v, mask=np.ones((5, 6)))
    with pytest.raises(ValueError, match="kv_lengths must lie in"):
        seqkern.attention_forward(q, k, v, kv_lengths=np.array([3, 7]))
    with pytest.raises(ValueError, match="kv_lengths must have shape"):
        seqkern.attention_forward(q, k, v, kv_lengths=np.array([3, 4, 5]))
    with pytest.raises(TypeError, match="kv_lengths must be an integer"):
        seqkern.attention_forward(q, k, v, kv_lengths=np.array([3.0, 4.0]))
    with pytest.raises(ValueError, match="q must have shape"):
        seqkern.attention_forward(q[0, 0], k, v)
    out, cache = seqkern.attention_forward(q, k, v)
    with pytest.raises(ValueError, match="dout must have the shape"):
        seqkern.attention_backward(cache, out[:, :4])
    with pytest.raises(TypeError, match="dout must be float32"):
        seqkern.attention_backward(cache, out.astype(np.float64))


# ---------------------------------------------------------------------------------------------
# additive attention


def _additive_case(rng, b, lq, lk, dq, dk, dv, a, dtype, **kw):
    arrays = additive_inputs(rng, b, lq, lk, dq, dk, dv, a)
    g = rng.standard_normal((b, lq, dv))
    out, cache = seqkern.additive_attention_forward(*(x.astype(dtype) for x in arrays), **kw)
    grads = seqkern.additive_attention_backward(cache, g.astype(dtype))
    r64, c64 = ref.additive_attention_forward(*arrays, **kw)
    g64 = ref.additive_attention_backward(c64, g)
    r32 = g32 = None
    if dtype == np.float32:
        r32, c32 = ref.additive_attention_forward(*(x.astype(np.float32) for x in arrays), **kw)
        g32 = ref.additive_attention_backward(c32, g.astype(np.float32))
    assert_close(out, r64, r32, name="out")
    names = ("dq", "dk", "dv", "dw_q", "dw_k", "dw_v")
    for i, name in enumerate(names):
        assert_close(grads[i], g64[i], None if g32 is None else g32[i], name=name)
    return out, grads


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "b,lq,lk,dq,dk,dv,a",
    [
        (2, 7, 130, 5, 3, 4, 16),
        (1, 1, 7, 16, 16, 8, 17),
        (3, 130, 1, 4, 6, 2, 8),
        (2, 7, 7, 64, 80, 16, 33),
    ],
)
def test_additive_shapes(isa, rng, dtype, b, lq, lk, dq, dk, dv, a):
    _additive_case(rng, b, lq, lk, dq, dk, dv, a, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["lengths", "bool", "bool_keys", "both"])
def test_additive_masks(isa, rng, dtype, kind):
    b, lq, lk = 3, 9, 20
    kw = {}
    if kind in ("lengths", "both"):
        kw["kv_lengths"] = np.array([20, 0, 7])
    if kind in ("bool", "both"):
        kw["mask"] = rng.random((b, lq, lk)) < 0.6
    if kind == "bool_keys":
        kw["mask"] = rng.random(lk) < 0.5
    out, grads = _additive_case(rng, b, lq, lk, 6, 5, 4, 12, dtype, **kw)
    assert all(np.all(np.isfinite(x)) for x in (out, *grads))
    if "kv_lengths" in kw:
        assert np.all(out[1] == 0) and np.all(grads[0][1] == 0)


def test_additive_errors(rng):
    q = rng.standard_normal((2, 3, 4))
    k = rng.standard_normal((2, 5, 6))
    v = rng.standard_normal((2, 5, 7))
    w_q, w_k, w_v = rng.standard_normal((8, 4)), rng.standard_normal((8, 6)), rng.standard_normal(8)
    with pytest.raises(ValueError, match="w_k must have shape"):
        seqkern.additive_attention_forward(q, k, v, w_q, w_k[:, :5], w_v)
    with pytest.raises(ValueError, match="w_v must have shape"):
        seqkern.additive_attention_forward(q, k, v, w_q, w_k, w_v[:7])
    with pytest.raises(TypeError, match="v must be float64"):
        seqkern.additive_attention_forward(q, k, v.astype(np.float32), w_q, w_k, w_v)
    out, cache = seqkern.additive_attention_forward(q, k, v, w_q, w_k, w_v)
    with pytest.raises(ValueError, match="dout must have the shape"):
        seqkern.additive_attention_backward(cache, out[:, :2])


# ---------------------------------------------------------------------------------------------
# attention pooling


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "t,b,h,a,with_lengths", [(1, 1, 16, 8, False), (7, 4, 17, 33, True), (130, 2, 64, 16, True)]
)
def test_pool(isa, rng, dtype, t, b, h, a, with_lengths):
    hs = rng.standard_normal((t, b, h))
    w = rng.standard_normal((a, h)) * 0.3
    bias = rng.standard_normal(a)
    w_s = rng.standard_normal(a)
    g = rng.standard_normal((b, h))
    lengths = None
    if with_lengths:
        lengths = rng.integers(0, t + 1, size=b)
        lengths[0] = 0
        lengths[-1] = t
    kw = {"lengths": lengths}
    ctx, alpha, cache = seqkern.attention_pool_forward(
        *(x.astype(dtype) for x in (hs, w, bias, w_s)), **kw
    )
    grads = seqkern.attention_pool_backward(cache, g.astype(dtype))
    c64, a64, k64 = ref.attention_pool_forward(hs, w, bias, w_s, **kw)
    g64 = ref.attention_pool_backward(k64, g)
    c32 = a32 = g32 = None
    if dtype == np.float32:
        inputs32 = (x.astype(np.float32) for x in (hs, w, bias, w_s))
        c32, a32, k32 = ref.attention_pool_forward(*inputs32, **kw)
        g32 = ref.attention_pool_backward(k32, g.astype(np.float32))
    assert_close(ctx, c64, c32, name="context")
    assert_close(alpha, a64, a32, name="alpha")
    for i, name in enumerate(("dh", "dw", "db", "dw_s")):
        assert_close(grads[i], g64[i], None if g32 is None else g32[i], name=name)
    if with_lengths:
        assert np.all(ctx[0] == 0) and np.all(alpha[:, 0] == 0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_pool_all_scores_minus_inf_give_zero_row(isa, dtype):
    # As the reference's softmax: a row whose valid scores are all -inf pools to 0 (not NaN),
    # while a +inf score makes its row NaN. w_s = inf turns u = +-1 into scores +-inf.
    h = np.array([[[4.5], [-3.2]]], dtype=dtype)  # (T=1, B=2, H=1)
    w, bias, w_s = (np.array(v, dtype=dtype) for v in ([[2.0]], [1.0], [np.inf]))
    for kw in ({}, {"lengths": np.array([1, 1])}):
        with np.errstate(all="ignore"):
            ctx, alpha, _ = seqkern.attention_pool_forward(h, w, bias, w_s, **kw)
            c64, a64, _ = ref.attention_pool_forward(h.astype(np.float64), w, bias, w_s, **kw)
        assert np.isnan(c64[0, 0]) and c64[1, 0] == 0 and a64[0, 1] == 0
        assert np.isnan(ctx[0, 0]) and np.isnan(alpha[0, 0])
        assert ctx[1, 0] == 0 and alpha[0, 1] == 0
    # Scores +inf and -inf in one row: the sum is NaN, so every valid alpha is NaN (not 0);
    # a step past the row's length stays exactly 0 even then.
    h2 = np.array([[[2.0]], [[-2.5]], [[1.0]]], dtype=dtype)  # (T=3, B=1, H=1)
    w2, b2 = np.array([[0.125]], dtype=dtype), np.array([0.125], dtype=dtype)
    with np.errstate(all="ignore"):
        _, alpha, _ = seqkern.attention_pool_forward(h2, w2, b2, w_s, lengths=np.array([2]))
        _, a64, _ = ref.attention_pool_forward(h2.astype(np.float64), w2, b2, w_s, lengths=np.array([2]))
    assert np.all(np.isnan(alpha[:2, 0])) and alpha[2, 0] == 0
    assert np.all(np.isnan(a64[:2, 0])) and a64[2, 0] == 0


def test_pool_errors(rng):
    h = rng.standard_normal((5, 2, 4))
    w, bias, w_s = rng.standard_normal((3, 4)), rng.standard_normal(3), rng.standard_normal(3)
    with pytest.raises(ValueError, match="w must have shape"):
        seqkern.attention_pool_forward(h, w[:, :3], bias, w_s)
    with pytest.raises(ValueError, match="lengths must lie in"):
        seqkern.attention_pool_forward(h, w, bias, w_s, lengths=np.array([6, 1]))
    with pytest.raises(ValueError, match="h must be 3-D"):
        seqkern.attention_pool_forward(h[0], w, bias, w_s)
    ctx, _, cache = seqkern.attention_pool_forward(h, w, bias, w_s)
    with pytest.raises(ValueError, match="dcontext must have the shape"):
        seqkern.attention_pool_backward(cache, ctx[:1])


# ---------------------------------------------------------------------------------------------
# memory

_MEMORY_SCRIPT = textwrap.dedent(
    """
    import numpy as np
    import seqkern

    def peak_kib():
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])

    L, DH = 8192, 64
    rng = np.random.default_rng(0)
    q, k, v, g = (rng.standard_normal((1, 1, L, DH)).astype(np.float32) for _ in range(4))
    small = [x[:, :, :64] for x in (q, k, v, g)]
    out, cache = seqkern.attention_forward(*small[:3], causal=True)
    seqkern.attention_backward(cache, small[3])
    before = peak_kib()
    out, cache = seqkern.attention_forward(q, k, v)
    dq, dk, dv = seqkern.attention_backward(cache, g)
    assert np.all(np.isfinite(dq)) and np.all(np.isfinite(out))
    print(peak_kib() - before)
    """
)


@pytest.mark.skipif(
    not os.path.exists("/proc/self/status"), reason="needs /proc/self/status (Linux)"
)
def test_memory_long_sequence():
    """Lq = Lk = 8192, one head: forward + backward grow the peak RSS far below one L x L float32
    matrix (256 MiB)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    res = subprocess.run(
        [sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, env=env, check=True
    )
    growth_mib = int(res.stdout.strip().splitlines()[-1]) / 1024
    assert growth_mib < 48, f"peak memory grew by {growth_mib:.1f} MiB"
