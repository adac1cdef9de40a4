"""Attention against PyTorch (skipped when torch is not installed)."""

from __future__ import annotations

import numpy as np
import pytest
from checks import additive_inputs

import seqkern

torch = pytest.importorskip("torch")
F = torch.nn.functional


def _torch_sdpa(q, k, v, g, *, attn_mask=None, is_causal=False, scale=None):
    tq, tk, tv = (torch.tensor(x, requires_grad=True) for x in (q, k, v))
    mask = None if attn_mask is None else torch.tensor(attn_mask)
    out = F.scaled_dot_product_attention(
        tq, tk, tv, attn_mask=mask, is_causal=is_causal, scale=scale
    )
    out.backward(torch.tensor(g))
    return [x.detach().numpy() for x in (out, tq.grad, tk.grad, tv.grad)]


def _close(actual, expected, dtype):
    tol = 1e-10 if dtype == np.float64 else 2e-5
    scale = max(float(np.max(np.abs(expected))), 1.0)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=tol * scale)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["plain", "causal", "bool_mask", "padding", "padding+causal"])
@pytest.mark.parametrize("lq,lk", [(70, 70), (33, 130)])
def test_sdpa_matches_torch(rng, dtype, kind, lq, lk):
    b, nh, dh = 2, 3, 16
    q = rng.standard_normal((b, nh, lq, dh)).astype(dtype)
    k = rng.standard_normal((b, nh, lk, dh)).astype(dtype)
    v = rng.standard_normal((b, nh, lk, dh)).astype(dtype)
    g = rng.standard_normal((b, nh, lq, dh)).astype(dtype)
    ours, theirs = {}, {}
    if kind in ("causal", "padding+causal"):
        ours["causal"] = theirs["is_causal"] = True
    if kind == "bool_mask":
        mask = rng.random((b, 1, lq, lk)) < 0.7
        mask[..., 0] = True  # torch gives NaN for a row that sees no key
        ours["mask"] = theirs["attn_mask"] = mask
    if kind.startswith("padding"):
        lengths = np.array([lk, max(lk // 3, 1)])
        ours["kv_lengths"] = lengths
        pad = np.arange(lk)[None, None, None, :] < lengths[:, None, None, None]
        if kind == "padding+causal":  # torch does not combine attn_mask with is_causal: fold it in
            pad = pad & np.tril(np.ones((lq, lk), dtype=bool))
            del theirs["is_causal"]
        theirs["attn_mask"] = pad
    out, cache = seqkern.attention_forward(q, k, v, **ours)
    grads = seqkern.attention_backward(cache, g)
    expected = _torch_sdpa(q, k, v, g, **theirs)
    for a, e in zip((out, *grads), expected):
        _close(a, e, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("masked", [False, True])
def test_additive_matches_torch(rng, dtype, masked):
    b, lq, lk, dq, dk, dv, a = 2, 5, 9, 6, 7, 4, 8
    arrays = additive_inputs(rng, b, lq, lk, dq, dk, dv, a)
    arrays = [x.astype(dtype) for x in arrays]
    g = rng.standard_normal((b, lq, dv)).astype(dtype)
    keep = np.ones((b, lq, lk), dtype=bool)
    kw = {}
    if masked:
        kw = {"mask": rng.random((b, lq, lk)) < 0.7, "kv_lengths": np.array([lk, 5])}
        kw["mask"][..., 0] = True
        keep = kw["mask"] & (np.arange(lk)[None, None, :] < kw["kv_lengths"][:, None, None])
    out, cache = seqkern.additive_attention_forward(*arrays, **kw)
    grads = seqkern.additive_attention_backward(cache, g)

    tq, tk, tv, twq, twk, twv = (torch.tensor(x, requires_grad=True) for x in arrays)
    t = torch.tanh((tq @ twq.T)[:, :, None, :] + (tk @ twk.T)[:, None, :, :])
    scores = (t @ twv).masked_fill(~torch.tensor(keep), float("-inf"))
    tout = torch.softmax(scores, dim=-1) @ tv
    tout.backward(torch.tensor(g))
    expected = [tout] + [x.grad for x in (tq, tk, tv, twq, twk, twv)]
    for got, e in zip((out, *grads), expected):
        _close(got, e.detach().numpy(), dtype)
