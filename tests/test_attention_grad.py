"""Finite-difference checks of every attention reference backward, for every input, in float64."""

from __future__ import annotations

import numpy as np
import pytest
from checks import check_grad

from seqkern import reference as ref


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"causal": True},
        {"kv_lengths": np.array([3, 7])},
        {"mask": "random", "causal": True, "kv_lengths": np.array([0, 5])},
        {"scale": 0.3, "mask": "keys"},
    ],
    ids=["plain", "causal", "lengths", "all_masks", "scale_bool"],
)
def test_attention_grad(rng, kw):
    lead, lq, lk, dh, dv = (2, 2), 5, 7, 4, 3
    kw = dict(kw)
    if kw.get("mask") == "random":
        kw["mask"] = rng.random(lead + (lq, lk)) < 0.6
    elif kw.get("mask") == "keys":
        kw["mask"] = rng.random(lk) < 0.7
    inputs = {
        "q": rng.standard_normal(lead + (lq, dh)),
        "k": rng.standard_normal(lead + (lk, dh)),
        "v": rng.standard_normal(lead + (lk, dv)),
    }
    g = rng.standard_normal(lead + (lq, dv))
    _, cache = ref.attention_forward(**inputs, **kw)
    dq, dk, dv_ = ref.attention_backward(cache, g)

    def f(q, k, v):
        return ref.attention_forward(q, k, v, **kw)[0]

    check_grad(f, inputs, {"__g__": (g,), "q": dq, "k": dk, "v": dv_}, rng=rng, name="attention")


@pytest.mark.parametrize("masked", [False, True])
def test_additive_attention_grad(rng, masked):
    b, lq, lk, dq, dk, dv, a = 2, 3, 5, 4, 3, 2, 6
    kw = {}
    if masked:
        kw = {"mask": rng.random((b, lq, lk)) < 0.7, "kv_lengths": np.array([4, 0])}
    inputs = {
        "q": rng.standard_normal((b, lq, dq)),
        "k": rng.standard_normal((b, lk, dk)),
        "v": rng.standard_normal((b, lk, dv)),
        "w_q": rng.standard_normal((a, dq)) * 0.5,
        "w_k": rng.standard_normal((a, dk)) * 0.5,
        "w_v": rng.standard_normal(a),
    }
    g = rng.standard_normal((b, lq, dv))
    _, cache = ref.additive_attention_forward(**inputs, **kw)
    grads = ref.additive_attention_backward(cache, g)

    def f(q, k, v, w_q, w_k, w_v):
        return ref.additive_attention_forward(q, k, v, w_q, w_k, w_v, **kw)[0]

    names = ("q", "k", "v", "w_q", "w_k", "w_v")
    analytic = {"__g__": (g,), **dict(zip(names, grads))}
    check_grad(f, inputs, analytic, rng=rng, name="additive_attention")


@pytest.mark.parametrize("lengths", [None, np.array([4, 0, 2])])
def test_attention_pool_grad(rng, lengths):
    t, b, h, a = 4, 3, 5, 6
    inputs = {
        "h": rng.standard_normal((t, b, h)),
        "w": rng.standard_normal((a, h)) * 0.5,
        "b": rng.standard_normal(a),
        "w_s": rng.standard_normal(a),
    }
    g = rng.standard_normal((b, h))
    _, _, cache = ref.attention_pool_forward(**inputs, lengths=lengths)
    grads = ref.attention_pool_backward(cache, g)

    def f(h, w, b, w_s):
        return ref.attention_pool_forward(h, w, b, w_s, lengths=lengths)[0]

    names = ("h", "w", "b", "w_s")
    analytic = {"__g__": (g,), **dict(zip(names, grads))}
    check_grad(f, inputs, analytic, rng=rng, name="attention_pool")
