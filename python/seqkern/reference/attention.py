"""Attention: scaled dot-product attention (bool mask, causal, per-problem key lengths, scale) and
additive attention, each forward and backward, and ``attention_keep``, the mask both share.

The references build the full score matrix; the compiled kernels never do. Every forward
returns ``(outputs..., cache)`` with ``cache`` a dict of what its backward needs.
"""

from __future__ import annotations

import numpy as np

from .softmax import softmax, softmax_backward

__all__ = [
    "attention_keep",
    "attention_forward",
    "attention_backward",
    "attention_scores",
    "additive_attention_forward",
    "additive_attention_backward",
]


def attention_keep(lead, lq, lk, mask=None, causal=False, kv_lengths=None, window=None):
    """Bool array ``lead + (lq, lk)``: True where query i may attend to key j.

    The bool ``mask`` (broadcast), ``causal`` (True or "top_left": j <= i; "bottom_right":
    j <= i + lk - lq, or with kv_lengths j <= i + kv_lengths[b] - lq) and ``kv_lengths``
    (j < kv_lengths[b] for every problem under index b of the first leading dim) and ``window``
    (left, right): i + o - left <= j <= i + o + right with o causal's offset (0 unless
    "bottom_right"), None for an unbounded side, all combine.
    """
    shape = tuple(lead) + (lq, lk)
    keep = np.ones(shape, dtype=bool)
    if mask is not None:
        keep = keep & np.broadcast_to(np.asarray(mask, dtype=bool), shape)
    lengths = None
    if kv_lengths is not None:
        lengths = np.asarray(kv_lengths).reshape((-1,) + (1,) * (len(shape) - 1))
    i, j = np.arange(lq)[:, None], np.arange(lk)[None, :]
    offset = 0
    if causal == "bottom_right":
        offset = lk - lq if lengths is None else lengths - lq
    if causal is not False and causal is not None:
        keep = keep & (j <= i + offset)
    if window is not None:
        left, right = window
        if left is not None and left >= 0:
            keep = keep & (j >= i + offset - left)
        if right is not None and right >= 0:
            keep = keep & (j <= i + offset + right)
    if lengths is not None:
        keep = keep & (np.arange(lk) < lengths)
    return keep


def attention_forward(q, k, v, *, mask=None, causal=False, kv_lengths=None, scale=None, bias=None, softcap=None,
                      window=None):
    """out = softmax(cap(scale * q k^T) + bias, masked) v over the last two axes, cap(s) =
    softcap * tanh(s / softcap) with a softcap (else s); returns ``(out, cache)``.

    q (..., NH, Lq, Dh), k (..., NH_kv, Lk, Dh), v (..., NH_kv, Lk, Dv) with NH_kv dividing NH
    (grouped-query attention: query head h uses key head h // (NH // NH_kv)); scale defaults to
    1/sqrt(Dh); bias broadcastable to (..., Lq, Lk). A key whose score is -inf (from the bias) is
    not seen, and a query row that sees no key gets an output of zeros.
    """
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    group = 1
    if q.ndim >= 4 and k.shape[-3] not in (0, q.shape[-3]):
        group = q.shape[-3] // k.shape[-3]
    kx, vx = (np.repeat(k, group, axis=-3), np.repeat(v, group, axis=-3)) if group > 1 else (k, v)
    if scale is None:
        scale = 1.0 / np.sqrt(q.shape[-1]) if q.shape[-1] > 0 else 1.0
    keep = attention_keep(q.shape[:-2], q.shape[-2], k.shape[-2], mask, causal, kv_lengths, window)
    scores = (q @ np.swapaxes(kx, -1, -2)) * q.dtype.type(scale)
    slope = None
    if softcap:
        u = np.tanh(scores / q.dtype.type(softcap))
        scores, slope = u * q.dtype.type(softcap), 1 - u * u
    raw = scores
    if bias is not None:
        scores = scores + np.asarray(bias)
        keep = keep & ~np.isneginf(scores)
    # softmax over zero keys is all-zero (every row sees no key).
    p = softmax(scores, axis=-1, mask=keep) if scores.shape[-1] > 0 else scores
    out = p @ vx
    cache = {"q": q, "k": kx, "v": vx, "p": p, "scale": scale, "group": group, "slope": slope, "raw": raw,
             "biased": np.where(keep, scores, -np.inf).astype(scores.dtype),
             "bias_shape": None if bias is None else np.shape(bias)}
    return out, cache


def attention_backward(cache, dout, *, dbias=False):
    """Gradients ``(dq, dk, dv)`` of attention_forward given dL/dout, and ``dbias`` fourth when
    asked (the score gradient ds summed over the dims the bias was broadcast along).

    dv = p^T dout, dp = dout v^T, ds = p * (dp - rowsum(p * dp)),
    dq = scale ds k, dk = scale ds^T q (summed over each group's query heads; with a softcap,
    ds times the cap's slope 1 - tanh^2).
    """
    q, k, v, p = cache["q"], cache["k"], cache["v"], cache["p"]
    scale = q.dtype.type(cache["scale"])
    dv = np.swapaxes(p, -1, -2) @ dout
    dp = dout @ np.swapaxes(v, -1, -2)
    ds = softmax_backward(p, dp, axis=-1)  # the gradient of the (capped) scores plus bias
    d_raw = ds if cache.get("slope") is None else ds * cache["slope"]
    dq = scale * (d_raw @ k)
    dk = scale * (np.swapaxes(d_raw, -1, -2) @ q)
    group = cache["group"]
    if group > 1:
        lead, heads = dk.shape[:-3], dk.shape[-3] // group
        dk = dk.reshape(*lead, heads, group, *dk.shape[-2:]).sum(axis=-3)
        dv = dv.reshape(*lead, heads, group, *dv.shape[-2:]).sum(axis=-3)
    if not dbias:
        return dq, dk, dv
    shape = cache["bias_shape"]
    extra = ds.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(extra + i for i, n in enumerate(shape) if n == 1 and ds.shape[extra + i] != 1)
    return dq, dk, dv, ds.sum(axis=axes, keepdims=True).reshape(shape)


def attention_scores(cache, stage="probs"):
    """The score matrix of attention_forward's call: "scores" scale * q k^T (soft-capped with a
    softcap), "biased" that plus the bias with -inf where masked, "probs" the softmax weights."""
    return {"scores": cache["raw"], "biased": cache["biased"], "probs": cache["p"]}[stage]


def additive_attention_forward(q, k, v, w_q, w_k, w_v, *, mask=None, kv_lengths=None):
    """Additive attention: score_ij = w_v . tanh(w_q q_i + w_k k_j), softmax over j,
    out_i = sum_j a_ij v_j.

    q (B, Lq, Dq), k (B, Lk, Dk), v (B, Lk, Dv), w_q (A, Dq), w_k (A, Dk), w_v (A,); returns
    ``(out, cache)``.
    """
    q, k, v = np.asarray(q), np.asarray(k), np.asarray(v)
    keep = attention_keep(q.shape[:1], q.shape[1], k.shape[1], mask, False, kv_lengths)
    qp = q @ w_q.T  # (B, Lq, A)
    kp = k @ w_k.T  # (B, Lk, A)
    t = np.tanh(qp[:, :, None, :] + kp[:, None, :, :])  # (B, Lq, Lk, A)
    scores = t @ w_v
    a = softmax(scores, axis=-1, mask=keep)
    out = a @ v
    cache = {"q": q, "k": k, "v": v, "w_q": w_q, "w_k": w_k, "w_v": w_v, "t": t, "a": a}
    return out, cache


def additive_attention_backward(cache, dout):
    """Gradients ``(dq, dk, dv, dw_q, dw_k, dw_v)`` of additive_attention_forward."""
    q, k, v, t, a = cache["q"], cache["k"], cache["v"], cache["t"], cache["a"]
    w_q, w_k, w_v = cache["w_q"], cache["w_k"], cache["w_v"]
    dv = np.swapaxes(a, -1, -2) @ dout
    da = dout @ np.swapaxes(v, -1, -2)
    ds = softmax_backward(a, da, axis=-1)  # (B, Lq, Lk)
    dw_v = np.einsum("bij,bija->a", ds, t)
    dz = ds[..., None] * w_v * (1 - t * t)  # (B, Lq, Lk, A)
    dqp = dz.sum(axis=2)
    dkp = dz.sum(axis=1)
    dq = dqp @ w_q
    dk = dkp @ w_k
    dw_q = np.einsum("bia,bid->ad", dqp, q)
    dw_k = np.einsum("bja,bjd->ad", dkp, k)
    return dq, dk, dv, dw_q, dw_k, dw_v
