"""Packed weights for the torch ops, kept in a small cache keyed by the parameters' identity and version.

Packing (copying the weights into the kernels' panels) costs about as much as a short forward,
so the ops pack once per distinct set of weight tensors and reuse the result. The key of a
tensor is ``(data_ptr, _version, shape, stride, dtype)``: ``optimizer.step()``, ``load_state_dict``
and every other in-place write through autograd bump ``_version``, and ``.to(dtype)`` or
``.double()`` make new tensors, so a cached entry never stands for weights that changed.

Each entry also holds a detached alias of its tensors, which keeps their memory alive: no other
tensor can be allocated at the same address while the entry exists, so an address can never
name two different tensors. The cache holds at most :data:`CACHE_SIZE` entries (least recently
used first out); :func:`clear_weight_cache` empties it.

The one caveat: writes through ``.data`` (``p.data.copy_(...)``, ``p.data[0] = 1``) bypass the
version counter. After such a write call :func:`clear_weight_cache`, or write under
``torch.no_grad()`` on the parameter itself (``p.copy_(...)``), which does bump it.
"""

from __future__ import annotations

import collections
import threading

import numpy as np
import seqkern

__all__ = ["CACHE_SIZE", "clear_weight_cache", "weight_cache_info", "lstm_weights", "gru_weights", "rnn_weights"]

CACHE_SIZE = 16

_cache: "collections.OrderedDict[tuple, tuple]" = collections.OrderedDict()
_lock = threading.Lock()
_stats = {"hits": 0, "misses": 0}


def clear_weight_cache() -> None:
    """Forget every packed weight set (needed only after writes through ``.data``)."""
    with _lock:
        _cache.clear()


def weight_cache_info() -> dict:
    """``{"entries", "hits", "misses", "max_entries"}`` of the packed-weights cache."""
    with _lock:
        return {"entries": len(_cache), **_stats, "max_entries": CACHE_SIZE}


def _key(t):
    if t is None:
        return None
    return (t.data_ptr(), t._version, t.shape, t.stride(), t.dtype)


def as_numpy(t) -> np.ndarray | None:
    """A NumPy view of a CPU tensor (a C-contiguous copy first only when it is not contiguous)."""
    if t is None:
        return None
    t = t.detach()
    if not t.is_contiguous():
        t = t.contiguous()
    return t.numpy()


def _packed(kind: str, tensors: tuple, extra, build):
    key = (kind, extra, *(_key(t) for t in tensors))
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            _stats["hits"] += 1
            return hit[0]
    packed = build(*(as_numpy(t) for t in tensors))
    with _lock:
        _stats["misses"] += 1
        _cache[key] = (packed, tuple(None if t is None else t.detach() for t in tensors))
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
    return packed


def _summed(w_hh, b_ih, b_hh):
    if b_ih is None and b_hh is None:
        return None
    out = np.zeros(w_hh.shape[0], w_hh.dtype)
    for b in (b_ih, b_hh):
        if b is not None:
            out += b
    return out


def lstm_weights(w_ih, w_hh, b_ih, b_hh, peephole) -> seqkern.LSTMWeights:
    """The packed ``LSTMWeights`` of these tensors; the two biases are summed."""
    return _packed("lstm", (w_ih, w_hh, b_ih, b_hh, peephole), None,
                   lambda wi, wh, bi, bh, p: seqkern.LSTMWeights(wi, wh, _summed(wh, bi, bh), p))


def gru_weights(w_ih, w_hh, b_ih, b_hh) -> seqkern.GRUWeights:
    """The packed ``GRUWeights`` of these tensors."""
    return _packed("gru", (w_ih, w_hh, b_ih, b_hh), None, lambda wi, wh, bi, bh: seqkern.GRUWeights(wi, wh, bi, bh))


def rnn_weights(w_ih, w_hh, b_ih, b_hh, nonlinearity: str) -> seqkern.RNNWeights:
    """The packed ``RNNWeights`` of these tensors; the two biases are summed."""
    return _packed("rnn", (w_ih, w_hh, b_ih, b_hh), nonlinearity,
                   lambda wi, wh, bi, bh: seqkern.RNNWeights(wi, wh, _summed(wh, bi, bh), nonlinearity=nonlinearity))
