"""Whole recurrent layers, stacked and bidirectional, composed from the single-layer references.

``lstm_layers_forward(x, layers, ...)`` is ``torch.nn.LSTM(num_layers=len(layers),
bidirectional=len(layers[0]) == 2)``: layer k reads layer k-1's output (the two directions'
outputs side by side, forward first), times its dropout mask; ``recurrent_masks`` (layers*dirs,
B, H) holds each layer and direction's recurrent dropout mask; the reverse direction of a layer
runs the same cell on every row reversed within its own length and its output is reversed back.
h_n (layers*dirs, B, H) holds layer k, direction j at row k*dirs + j. ``layers`` holds one entry a
layer: a weights object (anything the single-layer reference accepts as ``w_ih``) or a pair
(forward, reverse). ``gru_layers_*`` and ``rnn_layers_*`` are the same with the other cells.

The caches are dicts; ``schedule`` is accepted for the signature's sake (the reference runs one
direction after the other; the result is the same).
"""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_backward, rnn_forward

LayersOutput = namedtuple("LayersOutput", ["y", "h_n", "c_n", "cache"])
LayersGrads = namedtuple("LayersGrads", ["dx", "layers", "dh0", "dc0"])


def reversed_within_lengths(a, lengths):
    """a (T, B, F) with each row's first lengths[b] steps reversed, its padding left in place."""
    T, B = a.shape[:2]
    lens = np.full(B, T) if lengths is None else np.asarray(lengths)
    out = a.copy()
    for b in range(B):
        n = lens[b]
        out[:n, b] = a[:n, b][::-1]
    return out


def dropout_masks_from_seed(seed, dropout, num_layers, shape, dtype):
    """Masks for the inputs of layers 1..num_layers-1: from one default_rng(seed), in turn,
    (rng.random(shape) < 1 - dropout) / (1 - dropout)."""
    rng = np.random.default_rng(seed)
    keep = 1.0 - dropout
    return [((rng.random(shape) < keep) / keep).astype(dtype) for _ in range(num_layers - 1)]


def _as_pairs(layers):
    return [tuple(entry) if isinstance(entry, (list, tuple)) else (entry,) for entry in layers]


def _layers_forward(run, states, x, layers, lengths, init, dropout, seed, dropout_masks, recurrent_masks=None):
    layers = _as_pairs(layers)
    L, dirs = len(layers), len(layers[0])
    T, B, _ = x.shape
    H = layers[0][0].w_hh.shape[1]
    masks = dropout_masks
    if masks is None:
        masks = dropout_masks_from_seed(seed, dropout, L, (T, B, dirs * H), x.dtype) if dropout else [None] * (L - 1)
    caches, finals = [], [[] for _ in range(states)]
    inp = x
    for k in range(L):
        if k > 0 and masks[k - 1] is not None:
            inp = inp * masks[k - 1]
        outs, layer_caches = [], []
        for j in range(dirs):
            start = [None if s is None else s[k * dirs + j] for s in init]
            xs = inp if j == 0 else reversed_within_lengths(inp, lengths)
            m = None if recurrent_masks is None else recurrent_masks[k * dirs + j]
            out = run(xs, layers[k][j], start, lengths, m)
            y = out[0] if j == 0 else reversed_within_lengths(out[0], lengths)
            outs.append(y)
            for s in range(states):
                finals[s].append(out[1 + s])
            layer_caches.append(out[-1])
        caches.append(layer_caches)
        inp = np.concatenate(outs, axis=2)
    cache = {"caches": caches, "masks": masks, "lengths": lengths, "dirs": dirs, "H": H}
    h_n = np.stack(finals[0])
    c_n = np.stack(finals[1]) if states == 2 else None
    return LayersOutput(inp, h_n, c_n, cache)


def _layers_backward(back, states, cache, dy, d_finals):
    caches, masks, lengths = cache["caches"], cache["masks"], cache["lengths"]
    dirs, H = cache["dirs"], cache["H"]
    L = len(caches)
    grad = dy
    per_layer = [None] * L
    d_init = [[None] * (L * dirs) for _ in range(states)]
    for k in reversed(range(L)):
        dx, grads = 0, []
        for j in range(dirs):
            d = None if grad is None else grad[..., j * H : (j + 1) * H]
            if d is not None and j == 1:
                d = reversed_within_lengths(d, lengths)
            ends = [None if f is None else f[k * dirs + j] for f in d_finals]
            g = back(caches[k][j], d, ends)
            grads.append(g)
            dx = dx + (g.dx if j == 0 else reversed_within_lengths(g.dx, lengths))
            d_init[0][k * dirs + j] = g.dh0
            if states == 2:
                d_init[1][k * dirs + j] = g.dc0
        per_layer[k] = tuple(grads)
        if k > 0 and masks[k - 1] is not None:
            dx = dx * masks[k - 1]
        grad = dx
    return LayersGrads(grad, per_layer, np.stack(d_init[0]), np.stack(d_init[1]) if states == 2 else None)


def lstm_layers_forward(x, layers, *, lengths=None, h0=None, c0=None, dropout=0.0, seed=None, dropout_masks=None,
                        need_cache=True, schedule="auto", recurrent_masks=None):
    """Stacked, optionally bidirectional LSTM; returns ``(y, h_n, c_n, cache)``."""
    def run(xs, w, start, lens, m):
        return lstm_forward(xs, w, h0=start[0], c0=start[1], lengths=lens, recurrent_mask=m)
    out = _layers_forward(run, 2, x, layers, lengths, (h0, c0), dropout, seed, dropout_masks, recurrent_masks)
    return out if need_cache else out._replace(cache=None)


def lstm_layers_backward(cache, dy=None, dh_n=None, dc_n=None):
    """Gradients ``(dx, layers, dh0, dc0)``: ``layers[k][j]`` the single-layer LSTMGrads."""
    return _layers_backward(lambda k, d, ends: lstm_backward(k, d, ends[0], ends[1]), 2, cache, dy, (dh_n, dc_n))


def gru_layers_forward(x, layers, *, lengths=None, h0=None, dropout=0.0, seed=None, dropout_masks=None,
                       need_cache=True, schedule="auto", recurrent_masks=None):
    """Stacked, optionally bidirectional GRU; returns ``(y, h_n, None, cache)``."""
    def run(xs, w, start, lens, m):
        return gru_forward(xs, w, h0=start[0], lengths=lens, recurrent_mask=m)
    out = _layers_forward(run, 1, x, layers, lengths, (h0,), dropout, seed, dropout_masks, recurrent_masks)
    return out if need_cache else out._replace(cache=None)


def gru_layers_backward(cache, dy=None, dh_n=None):
    """Gradients ``(dx, layers, dh0, None)``: ``layers[k][j]`` the single-layer GRUGrads."""
    return _layers_backward(lambda k, d, ends: gru_backward(k, d, ends[0]), 1, cache, dy, (dh_n,))


def rnn_layers_forward(x, layers, *, lengths=None, h0=None, dropout=0.0, seed=None, dropout_masks=None,
                       need_cache=True, schedule="auto", recurrent_masks=None):
    """Stacked, optionally bidirectional plain RNN (each weights object's nonlinearity); returns
    ``(y, h_n, None, cache)``."""
    def run(xs, w, start, lens, m):
        return rnn_forward(xs, w, h0=start[0], lengths=lens, recurrent_mask=m)
    out = _layers_forward(run, 1, x, layers, lengths, (h0,), dropout, seed, dropout_masks, recurrent_masks)
    return out if need_cache else out._replace(cache=None)


def rnn_layers_backward(cache, dy=None, dh_n=None):
    """Gradients ``(dx, layers, dh0, None)``: ``layers[k][j]`` the single-layer RNNGrads."""
    return _layers_backward(lambda k, d, ends: rnn_backward(k, d, ends[0]), 1, cache, dy, (dh_n,))
