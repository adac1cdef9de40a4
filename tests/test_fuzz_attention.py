"""Property tests of the attention API: random, often invalid, arguments.

Valid, finite input must match the reference; invalid input must raise TypeError/ValueError
naming the function and an argument. A scale of NaN or inf raises ValueError; 0 and negative
scales are valid. NaN/inf in q or k (h, w, b, w_s for pooling) propagate: the outputs the
float64 reference makes non-finite are non-finite, all others still match (a masked-out key's NaN
never reaches an output). NaN/inf in v is checked without masks only: the reference multiplies a
masked key's zero weight by v (0 * NaN), the kernels skip masked keys.
"""

from __future__ import annotations

import numpy as np
from checks import assert_close
from hypothesis import given
from hypothesis import strategies as st

import seqkern
from seqkern import reference as ref
from fuzz_support import (
    CASES, finite_pattern_matches, floats_ok, fuzz_settings, isa_levels, layouts, lengths_arg, lengths_ok,
    names_an_argument, operand,
)


def _magnitude(*arrays):
    """Bound on the rounding residue of an exactly-zero output built from these inputs: each
    output is a sum of products of up to three input factors over at most a few dozen terms."""
    top = max((float(np.max(np.abs(a), initial=0.0)) for a in arrays if a.size), default=0.0)
    return 64 * max(1.0, top) ** 3


def _compare(name, actual, e64, e32, mag=1.0):
    assert actual.shape == e64.shape, (name, actual.shape, e64.shape)
    if not np.all(np.isfinite(e64)):
        assert finite_pattern_matches(actual, e64), f"{name}: non-finite values in other places"
        keep = np.isfinite(e64)
        actual, e64 = np.where(keep, actual, 0), np.where(keep, e64, 0)
        e32 = None if e32 is None else np.where(keep, e32, 0)
    top = float(np.max(np.abs(e64), initial=0.0))
    if top == 0.0:  # an exact zero (e.g. one visible key): only rounding residue allowed
        residue = float(np.max(np.abs(actual), initial=0.0))
        assert residue <= np.finfo(actual.dtype).eps * mag, f"{name}: {residue:.3e} where 0 is exact"
        return
    # factor 8, not the default 4: fuzzed inputs reach magnitudes of 1e4, where scores of 1e8
    # make the float32 reference's own error a noisy yardstick.
    assert_close(actual, e64, e32, factor=8.0, floor=1e-6 * max(1.0, 1.0 / top) if top > 0 else 1e-6, name=name)


def _refs(fn, args64, args, dtype, **kw):
    with np.errstate(all="ignore"):
        r64 = fn(*args64, **kw)
        r32 = fn(*args, **kw) if dtype == np.float32 else None
    return r64, r32


def _fuzz_backward(draw, isa, name, grad_arg, backward, ref_backward, cache, caches, out, dtype, inputs, grad_names,
                   skip):
    """The backward half of a forward property test. Draws the upstream gradient `grad_arg`
    (sometimes of a wrong dtype or shape): a bad one must be rejected naming it, a good one
    accepted; then, unless `skip`, every gradient is compared with the reference's, whose float64
    and float32 caches are `caches` (the second None when there is no float32 reference)."""
    CASES[name] += 1
    g = operand(draw, out.shape, dtype, wrong=12)
    gvalid = g.dtype == dtype and g.shape == out.shape
    try:
        with seqkern.use_isa(isa):
            grads = backward(cache, g)
    except (TypeError, ValueError) as e:
        assert not gvalid, f"valid {grad_arg} rejected: {e}"
        assert names_an_argument(e, name, [grad_arg]), e
        return
    assert gvalid, f"invalid {grad_arg} accepted"
    if skip:
        return
    c64, c32 = caches
    with np.errstate(all="ignore"):
        g64 = ref_backward(c64, g.astype(np.float64))
        g32 = ref_backward(c32, g) if c32 is not None else None
    for i, gname in enumerate(grad_names):
        _compare(gname, grads[i], g64[i], None if g32 is None else g32[i], _magnitude(*inputs, g))


def _mask(draw, target):
    """A bool mask broadcastable to `target` (sometimes not, or not bool), in a random layout."""
    nd = draw(st.integers(0, len(target)))
    shape = tuple(1 if draw(st.integers(0, 2)) == 0 else d for d in target[len(target) - nd :])
    kind = draw(st.integers(0, 9))
    if kind == 0:
        shape = shape + (2,) if shape else (len(target) + 3,)
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    m = rng.random(shape) < 0.7
    if kind == 1:
        m = m.astype(draw(st.sampled_from([np.float32, np.int8])))
    if kind == 2 and m.ndim:
        return np.broadcast_to(m[..., :1], shape)  # a zero-stride view
    return draw(layouts(m))


def _mask_ok(m, target):
    if m.dtype != np.bool_ or m.ndim > len(target):
        return False
    return all(a in (1, b) for a, b in zip(m.shape[::-1], target[::-1]))


@st.composite
def sdpa_case(draw):
    lead = tuple(draw(st.lists(st.integers(0, 3), min_size=0, max_size=2)))
    lq, lk, dh, dv = (draw(st.integers(0, n)) for n in (5, 6, 4, 3))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    special = draw(st.integers(0, 5)) == 0
    q = operand(draw, lead + (lq, dh), dtype, special=special)
    k = operand(draw, lead + (lk, dh), dtype, special=special)
    kw = {}
    if draw(st.booleans()):
        kw["mask"] = _mask(draw, lead + (lq, lk))
    if draw(st.integers(0, 2)) == 0:
        kw["causal"] = True
    if lead and draw(st.integers(0, 2)) == 0:
        kw["kv_lengths"] = lengths_arg(draw, lead[0], lk)
    if draw(st.integers(0, 3)) == 0:
        kw["scale"] = draw(st.sampled_from([0.0, -0.5, 2.0, np.nan, np.inf, -np.inf, np.float32(0.3), 3]))
    v_special = special and "mask" not in kw and not kw.get("causal") and "kv_lengths" not in kw
    v = operand(draw, lead + (lk, dv), dtype, special=v_special)
    return q, k, v, kw, draw(isa_levels()), special


def _heads_ok(q, k):
    """k's leading dims q's, or (with two or more, grouped heads) the last dividing q's."""
    lead, kl = q.shape[:-2], k.shape[:-2]
    if kl == lead:
        return True
    return len(lead) >= 2 and kl[:-1] == lead[:-1] and kl[-1] > 0 and lead[-1] % kl[-1] == 0


def _sdpa_valid(q, k, v, kw):
    half = len({a.dtype for a in (q, k, v)}) == 1 and q.dtype == np.float16  # computed in float32
    if not (floats_ok(q, k, v) or half) or q.ndim < 2 or k.ndim != q.ndim or v.ndim != q.ndim:
        return False
    lead = q.shape[:-2]
    if not _heads_ok(q, k) or v.shape[:-2] != k.shape[:-2] or k.shape[-1] != q.shape[-1] or v.shape[-2] != k.shape[-2]:
        return False
    lq, lk = q.shape[-2], k.shape[-2]
    if "mask" in kw and not _mask_ok(kw["mask"], lead + (lq, lk)):
        return False
    if "kv_lengths" in kw and not (lead and lengths_ok(kw["kv_lengths"], lead[0], lk)):
        return False
    return "scale" not in kw or np.isfinite(kw["scale"])


@fuzz_settings(400)
@given(sdpa_case(), st.data())
def test_attention_fuzz(case, data):
    q, k, v, kw, isa, special = case
    CASES["attention_forward"] += 1
    valid = _sdpa_valid(q, k, v, kw)
    try:
        with seqkern.use_isa(isa):
            out, cache = seqkern.attention_forward(q, k, v, **kw)
    except (TypeError, ValueError) as e:
        assert not valid, f"valid input rejected: {e}"
        assert names_an_argument(e, "attention_forward", ["q", "k", "v", "mask", "kv_lengths", "scale"]), e
        return
    assert valid, "invalid input accepted"
    if q.dtype == np.float16:  # float16 in, float16 out (tests/test_attention_features.py checks the values)
        assert out.dtype == np.float16 and out.shape == q.shape[:-1] + v.shape[-1:]
        return
    kw64 = dict(kw)
    r64, r32 = _refs(ref.attention_forward, [a.astype(np.float64) for a in (q, k, v)], [q, k, v], q.dtype, **kw64)
    _compare("out", out, r64[0], None if r32 is None else r32[0])

    # Non-finite forward: only "no crash" is asked of backward.
    _fuzz_backward(data.draw, isa, "attention_backward", "dout", seqkern.attention_backward, ref.attention_backward,
                   cache, (r64[1], None if r32 is None else r32[1]), out, q.dtype, (q, k, v), ("dq", "dk", "dv"),
                   skip=special or not np.all(np.isfinite(out)))


@st.composite
def additive_case(draw):
    B, lq, lk, dq, dk, dv, A = (draw(st.integers(0, n)) for n in (3, 4, 5, 3, 3, 3, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    special = draw(st.integers(0, 5)) == 0
    # Moderate magnitudes: scores of 1e3 and more leave float32 results a noisy yardstick (the
    # large-magnitude cases run through attention_forward and the LSTM).
    args = [operand(draw, s, dtype, special=special and i in (0, 1), wrong=30, scales=(1.0, 3.0)) for i, s in
            enumerate([(B, lq, dq), (B, lk, dk), (B, lk, dv), (A, dq), (A, dk), (A,)])]
    kw = {}
    if draw(st.booleans()):
        kw["mask"] = _mask(draw, (B, lq, lk))
    if draw(st.integers(0, 2)) == 0:
        kw["kv_lengths"] = lengths_arg(draw, B, lk)
    return args, kw, draw(isa_levels()), special


def _additive_valid(args, kw):
    q, k, v, wq, wk, wv = args
    if not floats_ok(*args) or q.ndim != 3 or k.ndim != 3 or v.ndim != 3:
        return False
    B, lq, dq = q.shape
    _, lk, dk = k.shape
    A = wq.shape[0] if wq.ndim == 2 else -1
    if k.shape[0] != B or v.shape[:2] != (B, lk) or wq.shape != (A, dq) or wk.shape != (A, dk) or wv.shape != (A,):
        return False
    if "mask" in kw and not _mask_ok(kw["mask"], (B, lq, lk)):
        return False
    return "kv_lengths" not in kw or lengths_ok(kw["kv_lengths"], B, lk)


@fuzz_settings(600)
@given(additive_case(), st.data())
def test_additive_attention_fuzz(case, data):
    args, kw, isa, special = case
    CASES["additive_attention_forward"] += 1
    valid = _additive_valid(args, kw)
    names = ["q", "k", "v", "w_q", "w_k", "w_v", "mask", "kv_lengths"]
    try:
        with seqkern.use_isa(isa):
            out, cache = seqkern.additive_attention_forward(*args, **kw)
    except (TypeError, ValueError) as e:
        assert not valid, f"valid input rejected: {e}"
        assert names_an_argument(e, "additive_attention_forward", names), e
        return
    assert valid, "invalid input accepted"
    dtype = args[0].dtype
    r64, r32 = _refs(ref.additive_attention_forward, [a.astype(np.float64) for a in args], args, dtype, **kw)
    _compare("out", out, r64[0], None if r32 is None else r32[0])

    _fuzz_backward(data.draw, isa, "additive_attention_backward", "dout", seqkern.additive_attention_backward,
                   ref.additive_attention_backward, cache, (r64[1], None if r32 is None else r32[1]), out, dtype,
                   args, ("dq", "dk", "dv", "dw_q", "dw_k", "dw_v"), skip=special)


@fuzz_settings(600)
@given(st.data())
def test_attention_pool_fuzz(data):
    draw = data.draw
    CASES["attention_pool_forward"] += 1
    T, B, H, A = (draw(st.integers(0, n)) for n in (5, 3, 4, 4))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    special = draw(st.integers(0, 5)) == 0
    kw = {"lengths": lengths_arg(draw, B, T)} if draw(st.booleans()) else {}
    # h is also the pooled value: NaN in h at steps past a row's length only without lengths.
    args = [operand(draw, s, dtype, special=special and (i > 0 or not kw), wrong=30, scales=(1.0, 3.0))
            for i, s in enumerate([(T, B, H), (A, H), (A,), (A,)])]
    h, w, b, ws = args
    valid = (floats_ok(*args) and h.ndim == 3 and w.ndim == 2 and w.shape[1:] == h.shape[2:]
             and b.shape == ws.shape == w.shape[:1]
             and ("lengths" not in kw or lengths_ok(kw["lengths"], h.shape[1], h.shape[0])))
    isa = draw(isa_levels())
    try:
        with seqkern.use_isa(isa):
            ctx, alpha, cache = seqkern.attention_pool_forward(*args, **kw)
    except (TypeError, ValueError) as e:
        assert not valid, f"valid input rejected: {e}"
        assert names_an_argument(e, "attention_pool_forward", ["h", "w", "b", "w_s", "lengths"]), e
        return
    assert valid, "invalid input accepted"
    r64, r32 = _refs(ref.attention_pool_forward, [a.astype(np.float64) for a in args], args, dtype, **kw)
    _compare("context", ctx, r64[0], None if r32 is None else r32[0])
    _compare("alpha", alpha, r64[1], None if r32 is None else r32[1])

    _fuzz_backward(draw, isa, "attention_pool_backward", "dcontext", seqkern.attention_pool_backward,
                   ref.attention_pool_backward, cache, (r64[2], None if r32 is None else r32[2]), ctx, dtype,
                   args, ("dh", "dw", "db", "dw_s"), skip=special)


def test_nan_scores_give_nan_rows_not_zeros(isa):
    # The vector max ignores NaN: a row whose visible scores are all NaN used to look like a
    # row that sees no key and came out as zeros. It must be NaN, and so must its gradients.
    rng = np.random.default_rng(5)
    for dtype in (np.float32, np.float64):
        q, k, v = (rng.standard_normal((2, 3, 200, 8)).astype(dtype) for _ in range(3))
        k[0, 1, 150, 2] = np.nan  # key 150 of one problem: a NaN score in every row's 2nd tile
        k[1, 2, :, 0] = np.nan  # every key of another problem
        out, cache = seqkern.attention_forward(q, k, v, causal=True)
        rows_nan = np.isnan(out).any(axis=-1)
        expected = np.zeros((2, 3, 200), bool)
        expected[0, 1, 150:] = True  # causal: rows from 150 on see key 150
        expected[1, 2, :] = True
        assert np.array_equal(rows_nan, expected)
        assert np.array_equal(np.isnan(cache.lse), expected)
        dq, dk, dv = seqkern.attention_backward(cache, np.ones_like(out))
        assert np.isnan(dq[1, 2]).all() and np.isfinite(dq[0, 0]).all()
