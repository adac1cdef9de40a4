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
DIRECT_AT_LEAST = 40


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
    if Q.dtype not in (np.float32, np.float64):
        return None, f"{Q.dtype} inputs"
    if len(nd.output) > 3 and nd.output[3]:
        return None, "the scores as an output"
    if "past_key" in given:
        return None, "a KV cache (past_key, past_value)"
    if attrs.get("left_window_size", -1) >= 0 or attrs.get("right_window_size", -1) >= 0:
        return None, "a sliding window"
    if Q.ndim == 3:  # (B, L, heads*D): the same data as (B, heads, L, D)
        nq, nkv = attrs["q_num_heads"], attrs["kv_num_heads"]

        def heads(a, n):
            return a.reshape(a.shape[0], a.shape[1], n, -1).transpose(0, 2, 1, 3)

        Q, K, V = heads(Q, nq), heads(K, nkv), heads(V, nkv)
    kw = {}
    if attrs.get("softcap", 0.0):
        kw["softcap"] = attrs["softcap"]
    if "scale" in attrs:
        kw["scale"] = attrs["scale"]
    mask = given.get("attn_mask")
    if mask is not None:
        if mask.shape[-1] not in (1, K.shape[-2]):
            return None, "a mask shorter than the keys (padded)"
        kw["mask" if mask.dtype == np.bool_ else "bias"] = mask
    lengths = given.get("nonpad_kv_seqlen")
    if attrs.get("is_causal", 0):
        # ONNX aligns causal masking to the end of each batch row's keys when nonpad_kv_seqlen
        # says how many there are; without a cache or lengths, the offset is 0 (top-left).
        kw["causal"] = "bottom_right" if lengths is not None else True
    if lengths is not None:
        kw["kv_lengths"] = lengths
    return (Q, K, V, kw), None


PLANS = {c.name: plan(c) for c in CASES}
DIRECT = [c for c in CASES if PLANS[c.name][0] is not None]


def test_case_count():
    reasons = collections.Counter(r for call, r in PLANS.values() if call is None)
    assert len(CASES) >= 90, f"expected ONNX's Attention cases, found {len(CASES)}"
    assert len(DIRECT) >= DIRECT_AT_LEAST, (len(DIRECT), dict(reasons))


@pytest.mark.parametrize("case", DIRECT, ids=lambda c: c.name)
def test_direct_case(case):
    (Q, K, V, kw), _ = PLANS[case.name]
    out, _ = seqkern.attention_forward(Q, K, V, **kw)
    _, expected = case.data_sets[0]
    want = expected[0]
    if want.ndim == 3:  # back to ONNX's (B, L, heads*Dv)
        out = out.transpose(0, 2, 1, 3).reshape(want.shape)
    np.testing.assert_allclose(out, want, rtol=max(case.rtol, 1e-5), atol=max(case.atol, 1e-6))
