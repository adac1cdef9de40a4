"""ONNX's backend test cases for the standard ``Attention`` operator (shipped with the ``onnx``
package), run on ``seqkern.attention_forward``: every case the kernel computes directly must give
ONNX's expected output; the others are listed with what they need. Skips when onnx is absent."""

from __future__ import annotations

import collections
import warnings

import numpy as np
import pytest

import seqkern

onnx = pytest.importorskip("onnx")

# The cases the kernel computes directly; raised when a feature lands, never lowered.
DIRECT_AT_LEAST = 87


def _cases():
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the other operators' case generators warn (divide by zero ...)
        return [c for c in node.collect_testcases("Attention") if c.model.graph.node[0].op_type == "Attention"]


CASES = _cases()


def plan(case):
    """``(call, None)``: the arguments of one ``attention_forward`` call that computes the case's
    Y, or ``(None, reason)``: what the kernel lacks for it."""
    nd = case.model.graph.node[0]
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in nd.attribute}
    # The operator's inputs by position (the graph names them as it likes); empty names are
    # absent optional inputs, and the data set holds the present ones in order.
    formal = ("Q", "K", "V", "attn_mask", "past_key", "past_value", "nonpad_kv_seqlen")
    inputs, _ = case.data_sets[0]
    present = [f for f, n in zip(formal, nd.input) if n]
    given = dict(zip(present, inputs))
    Q, K, V = given["Q"], given["K"], given["V"]
    if Q.dtype.name not in ("float32", "float64", "float16", "bfloat16"):
        return None, f"{Q.dtype} inputs"
    # The scores as a fourth output, at ONNX's qk_matmul_output_mode 0 and 1 (the scaled,
    # soft-capped product), 2 (plus the bias and masks) or 3 (the softmax).
    want_scores = len(nd.output) > 3 and bool(nd.output[3])
    stage = ("scores", "scores", "biased", "probs")[attrs.get("qk_matmul_output_mode", 0)]
    if Q.ndim == 3:  # (B, L, heads*D): the same data as (B, heads, L, D)
        nq, nkv = attrs["q_num_heads"], attrs["kv_num_heads"]

        def heads(a, n):
            return a.reshape(a.shape[0], a.shape[1], n, -1).transpose(0, 2, 1, 3)

        Q, K, V = heads(Q, nq), heads(K, nkv), heads(V, nkv)
    kw = {}
    left, right = attrs.get("left_window_size", -1), attrs.get("right_window_size", -1)
    if left >= 0 or right >= 0:
        kw["window"] = (left if left >= 0 else None, right if right >= 0 else None)
    if attrs.get("softcap", 0.0):
        kw["softcap"] = attrs["softcap"]
    if "scale" in attrs:
        kw["scale"] = attrs["scale"]
    mask = given.get("attn_mask")
    lk = K.shape[-2] + (given["past_key"].shape[-2] if "past_key" in given else 0)
    if mask is not None:
        if mask.shape[-1] not in (1, lk):
            return None, "a mask shorter than the keys (padded)"
        kw["mask" if mask.dtype == np.bool_ else "bias"] = mask
    lengths = given.get("nonpad_kv_seqlen")
    if attrs.get("is_causal", 0):
        # ONNX aligns causal masking to the end of each batch row's keys when nonpad_kv_seqlen
        # says how many there are; without a cache or lengths, the offset is 0 (top-left).
        kw["causal"] = "bottom_right" if lengths is not None else True
    if lengths is not None:
        kw["kv_lengths"] = lengths
    def outputs(q, k, v, present):
        out, cache = seqkern.attention_forward(q, k, v, **kw)
        extra = tuple(present) + ((seqkern.attention_scores(cache, stage),) if want_scores else ())
        return (out,) + extra

    if "past_key" not in given:
        present = (K, V) if len(nd.output) > 1 and nd.output[1] else ()  # without a past, the new keys
        return (lambda: outputs(Q, K, V, present)), None
    past_k, past_v = given["past_key"], given["past_value"]
    if kw.get("causal") or "window" in kw:
        # With a cache, ONNX's offset is the past length: bottom-right alignment (Lk - Lq) when
        # as many queries come as new keys.
        if Q.shape[-2] != K.shape[-2]:
            return None, "a causal offset other than Lk - Lq (fewer new keys than queries)"
        kw["causal"] = "bottom_right" if kw.get("causal") else kw.get("causal", False)

    def run():
        # A KVCache holding the past; the new keys appended in place (present_key, present_value).
        cache = seqkern.KVCache(past_k.shape[:2], past_k.shape[-1], past_v.shape[-1], capacity=past_k.shape[2],
                                dtype=past_k.dtype)
        cache.append(past_k, past_v)
        cache.append(K, V)
        return outputs(Q, cache.k, cache.v, (cache.k, cache.v))

    return run, None


PLANS = {c.name: plan(c) for c in CASES}
DIRECT = [c for c in CASES if PLANS[c.name][0] is not None]


def test_case_count():
    reasons = collections.Counter(r for call, r in PLANS.values() if call is None)
    assert len(CASES) >= 90, f"expected ONNX's Attention cases, found {len(CASES)}"
    assert len(DIRECT) >= DIRECT_AT_LEAST, (len(DIRECT), dict(reasons))


@pytest.mark.parametrize("case", DIRECT, ids=lambda c: c.name)
def test_direct_case(case):
    run, _ = PLANS[case.name]
    got = run()
    _, expected = case.data_sets[0]
    want = expected[0]
    out = got[0]
    if want.ndim == 3:  # back to ONNX's (B, L, heads*Dv)
        out = out.transpose(0, 2, 1, 3).reshape(want.shape)
    if want.dtype.itemsize == 2:  # float16 / bfloat16: compare as float32, to the format's precision
        eps = 2.0 ** -10 if want.dtype.name == "float16" else 2.0 ** -7
        w32 = want.astype(np.float32)
        np.testing.assert_allclose(out.astype(np.float32), w32, rtol=4 * eps, atol=4 * eps * float(np.abs(w32).max()))
    else:
        np.testing.assert_allclose(out, want, rtol=max(case.rtol, 1e-5), atol=max(case.atol, 1e-6))
    nd = case.model.graph.node[0]
    named = [n for n in nd.output if n]  # the outputs the case asks for, in order
    rest = dict(zip(named[1:], got[1:]))
    for name, b in zip(named[1:], expected[1:]):
        a = rest[name]
        if len(nd.output) > 3 and name == nd.output[3]:  # the scores
            np.testing.assert_allclose(np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=1e-4, atol=1e-5)
        else:  # present_key, present_value: the cache's contents exactly
            np.testing.assert_array_equal(np.asarray(a, dtype=np.float32), np.asarray(b, dtype=np.float32))
