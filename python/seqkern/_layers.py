"""Whole recurrent layers in one call: stacked and bidirectional LSTM, GRU and RNN.

``lstm_layers_forward(x, layers, ...)`` runs every layer and direction of a PyTorch-style
``nn.LSTM(num_layers=L, bidirectional=...)``, with the dropout between layers, and keeps what
``lstm_layers_backward`` needs; ``gru_layers_*`` and ``rnn_layers_*`` are the same for the other
cells. The reverse direction runs the cell's kernel on every row reversed within its own length.

The two directions of a layer are independent: with two or more threads they can run side by
side, each on its share of the threads (``schedule``). Every kernel gives the same bits at any
thread count, so the schedule never changes a result.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np

from . import _core
from ._gru import GRUWeights, gru_backward, gru_forward
from ._lstm import LSTMWeights, lstm_backward, lstm_forward
from ._rnn import RNNWeights, rnn_backward, rnn_forward

__all__ = [
    "LayersOutput", "LayersGrads", "LayersCache",
    "lstm_layers_forward", "lstm_layers_backward",
    "gru_layers_forward", "gru_layers_backward",
    "rnn_layers_forward", "rnn_layers_backward",
    "reverse_index", "reverse_within_lengths", "layers_schedule",
]

SCHEDULES = ("auto", "side_by_side", "sequential")


class LayersOutput(NamedTuple):
    """``*_layers_forward``'s result: y (T, B, dirs*H) of the last layer (0 past each row's
    length), h_n (and c_n for the LSTM, else None) (layers*dirs, B, H) in PyTorch's order
    (layer k, direction j at k*dirs + j), and the cache (None without ``need_cache``)."""

    y: np.ndarray
    h_n: np.ndarray
    c_n: np.ndarray | None
    cache: "LayersCache | None"


class LayersGrads(NamedTuple):
    """``*_layers_backward``'s result: dx (T, B, D); ``layers[k][j]`` the cell's own gradient
    tuple (``LSTMGrads``, ``GRUGrads`` or ``RNNGrads``) of layer k, direction j, whose weight
    fields are that layer's weight gradients; dh0 (and dc0 for the LSTM, else None)
    (layers*dirs, B, H)."""

    dx: np.ndarray
    layers: list
    dh0: np.ndarray
    dc0: np.ndarray | None


class _Cell(NamedTuple):
    name: str
    weights: type
    states: int  # 2 for the LSTM (h, c), 1 for the others
    forward: object  # (x, w, h0, c0, lengths, need_cache, recurrent_mask) -> (y, h_n, c_n, cache)
    backward: object  # (cache, dy, dh_n, dc_n) -> grads with dx, dh0[, dc0]


def _lstm_fwd(x, w, h0, c0, lengths, need_cache, mask):
    return lstm_forward(x, w, h0=h0, c0=c0, lengths=lengths, need_cache=need_cache, recurrent_mask=mask)


def _gru_fwd(x, w, h0, c0, lengths, need_cache, mask):
    y, h_n, cache = gru_forward(x, w, h0=h0, lengths=lengths, need_cache=need_cache, recurrent_mask=mask)
    return y, h_n, None, cache


def _rnn_fwd(x, w, h0, c0, lengths, need_cache, mask):
    y, h_n, cache = rnn_forward(x, w, h0=h0, lengths=lengths, need_cache=need_cache, recurrent_mask=mask)
    return y, h_n, None, cache


_LSTM = _Cell("lstm", LSTMWeights, 2, _lstm_fwd, lambda k, dy, dh, dc: lstm_backward(k, dy, dh, dc))
_GRU = _Cell("gru", GRUWeights, 1, _gru_fwd, lambda k, dy, dh, dc: gru_backward(k, dy, dh))
_RNN = _Cell("rnn", RNNWeights, 1, _rnn_fwd, lambda k, dy, dh, dc: rnn_backward(k, dy, dh))


class LayersCache:
    """What ``*_layers_backward`` needs from one ``*_layers_forward`` call: the per-layer,
    per-direction caches of the cell (``caches[k][j]``), the dropout masks of the inputs of layers
    1.. (``masks``, None where there was no dropout), the lengths and the reverse index. Only the
    forward makes one; nothing in it can be replaced."""

    __slots__ = ("_cell", "_caches", "_masks", "_lengths", "_rev", "_shape", "_schedule")

    def __init__(self, *args) -> None:
        raise TypeError("LayersCache: only the *_layers_forward functions make one")

    @classmethod
    def _make(cls, cell, caches, masks, lengths, rev, shape, schedule):
        self = object.__new__(cls)
        for name, value in zip(cls.__slots__, (cell, caches, masks, lengths, rev, shape, schedule)):
            object.__setattr__(self, name, value)
        return self

    def __setattr__(self, name, value) -> None:
        raise AttributeError("LayersCache is read-only")

    @property
    def caches(self) -> tuple:
        return tuple(tuple(c) for c in self._caches)

    @property
    def masks(self) -> tuple:
        return tuple(self._masks)

    @property
    def schedule(self) -> str:
        """The schedule the forward ran: "side_by_side" or "sequential" (the backward uses it too)."""
        return self._schedule

    def __repr__(self) -> str:
        T, B, L, dirs, H = self._shape
        return f"LayersCache({self._cell.name}, T={T}, B={B}, layers={L}, dirs={dirs}, H={H}, {self._schedule})"


# ----------------------------------------------------------------------------------------------
# The reverse direction


def reverse_index(T: int, lengths, B: int):
    """Index into a (T, B, F) array viewed as (T*B, F) that reverses each row's first
    ``lengths[b]`` steps and leaves its padding in place; None (no lengths) reverses all T. The
    permutation is its own inverse, so the same index maps back."""
    if lengths is None:
        return None
    t = np.arange(T)[:, None]
    L = np.asarray(lengths, dtype=np.int64)[None, :]
    return (np.where(t < L, L - 1 - t, t) * B + np.arange(B)[None, :]).reshape(-1)


def reverse_within_lengths(a: np.ndarray, index) -> np.ndarray:
    """``a`` (T, B, F), each row reversed within its length (``index`` from :func:`reverse_index`),
    as a new C-contiguous array."""
    if index is None:
        return np.ascontiguousarray(a[::-1])
    T, B, F = a.shape
    return np.take(a.reshape(T * B, F), index, axis=0).reshape(T, B, F)


# ----------------------------------------------------------------------------------------------
# Running the two directions


class _Side:
    """One worker thread that runs the second direction while the caller runs the first; made
    again after a fork (a child has no copy of the parent's threads)."""

    pool = None
    pid = None

    @classmethod
    def submit(cls, fn, isa: str, threads: int):
        if cls.pool is None or cls.pid != os.getpid():
            cls.pool, cls.pid = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqkern-side"), os.getpid()

        def task():
            _core._set_thread_isa(isa)
            _core.set_num_threads(threads)
            return fn()

        return cls.pool.submit(task)


def _side_by_side(jobs):
    """Runs the jobs (two callables) at once, each on half the threads; returns their results."""
    total = _core.get_num_threads()
    first = (total + 1) // 2
    future = _Side.submit(jobs[1], _core.get_isa(), total - first)
    try:
        _core.set_num_threads(first)
        try:
            r0 = jobs[0]()
        finally:
            _core.set_num_threads(total)
    except BaseException:
        future.exception()  # the other direction ends before this one's error propagates
        raise
    return [r0, future.result()]


def layers_schedule(dirs: int, T: int, B: int, H: int, D: int, itemsize: int, threads: int | None = None) -> str:
    """The schedule "auto" picks for a layer of ``dirs`` directions over T steps, batch B, H units
    and input width D at ``threads`` threads (None: the current limit).

    Side by side needs two directions and two threads. Measured on a 2-core Intel Xeon (AVX-512,
    2 MiB L2 per core), LSTM forward at 2 threads, side by side against one direction after the
    other: 0.94x at T=64 B=32 D=100 H=100, 0.95x at T=256 B=8 D=128 H=256, but 1.04x at T=128 B=1
    D=128 H=128 (at B = 1 a direction's own two threads share its steps better than one thread
    runs them) and 1.10x at T=64 B=64 D=256 H=512 (weights of 6 MiB a direction: two directions
    at once stream twice the weights through the shared cache). Handing a direction to the other
    thread and back costs tens of microseconds, so a direction must also be worth 10 MFLOP
    (T=3 B=16 D=4 H=8 took 2.7x as long side by side). So: two directions, two threads, B >= 4,
    at least 10 MFLOP a direction (LSTM-sized gates) and one direction's weights within one
    core's L2.
    """
    threads = _core.get_num_threads() if threads is None else threads
    w_bytes = 4 * H * (D + H) * itemsize
    flops = 2 * T * B * 4 * H * (D + H)
    if dirs == 2 and threads >= 2 and B >= 4 and flops >= 10_000_000 and w_bytes <= _core.cache_sizes()["l2"]:
        return "side_by_side"
    return "sequential"


def _run(jobs, schedule: str):
    if schedule == "side_by_side" and len(jobs) == 2 and _core.get_num_threads() >= 2:
        return _side_by_side(jobs)
    return [job() for job in jobs]


# ----------------------------------------------------------------------------------------------
# Checks


def _directions(fn: str, cell: _Cell, layers):
    """``layers`` as a list of tuples of weights objects, one tuple of 1 or 2 a layer."""
    if isinstance(layers, cell.weights) or not isinstance(layers, (list, tuple)) or len(layers) == 0:
        raise TypeError(f"{fn}: layers must be a non-empty list with one entry a layer (a {cell.weights.__name__}, "
                        f"or a pair of them (forward, reverse) for a bidirectional layer), got {type(layers).__name__}")
    out = []
    for k, entry in enumerate(layers):
        dirs = tuple(entry) if isinstance(entry, (list, tuple)) else (entry,)
        if len(dirs) not in (1, 2):
            raise ValueError(f"{fn}: layers[{k}] must hold 1 or 2 directions, got {len(dirs)}")
        for j, w in enumerate(dirs):
            if not isinstance(w, cell.weights):
                where = f"layers[{k}]" if len(dirs) == 1 and not isinstance(entry, (list, tuple)) else f"layers[{k}][{j}]"
                raise TypeError(f"{fn}: {where} must be a {cell.weights.__name__}, got {type(w).__name__}")
        if out and len(dirs) != len(out[0]):
            raise ValueError(f"{fn}: every layer must have the same number of directions; layers[0] has "
                             f"{len(out[0])}, layers[{k}] has {len(dirs)}")
        out.append(dirs)
    first = out[0][0]
    H, dtype = first.hidden_size, first.dtype
    for k, dirs in enumerate(out):
        for j, w in enumerate(dirs):
            if w.hidden_size != H or w.dtype != dtype:
                raise ValueError(f"{fn}: layers[{k}][{j}] has hidden_size {w.hidden_size} and dtype {w.dtype}; "
                                 f"layers[0][0] has {H} and {dtype}: all must agree")
            want = first.input_size if k == 0 else len(dirs) * H
            if k > 0 and w.input_size != want:
                raise ValueError(f"{fn}: layers[{k}][{j}] takes inputs of width {w.input_size}, but layer {k - 1}'s "
                                 f"output is {len(dirs)}*H = {want} wide")
    return out


def _operand(fn: str, name: str, a, shape, dtype, like: str, layout: str = ""):
    """``a`` (None stays None) as an array of ``dtype`` (TypeError naming ``like`` otherwise) and
    ``shape`` (ValueError; ``layout`` spells it in symbols)."""
    if a is None:
        return None
    a = np.asarray(a)
    if a.dtype != dtype:
        raise TypeError(f"{fn}: {name} must be {dtype}, like {like}, got {a.dtype}")
    if a.shape != shape:
        raise ValueError(f"{fn}: {name} must have shape {layout}{shape}, got {a.shape}")
    return a


def _state(fn: str, name: str, a, shape, dtype):
    a = _operand(fn, name, a, shape, dtype, "the weights", "(layers*dirs, B, H) = ")
    return None if a is None else np.ascontiguousarray(a)


def _masks(fn: str, dropout, seed, dropout_masks, L: int, shape, dtype):
    """The dropout masks of the inputs of layers 1..L-1 (scaled by 1/keep), or Nones."""
    if dropout_masks is not None:
        if dropout:
            raise ValueError(f"{fn}: give dropout (with seed) or dropout_masks, not both")
        masks = list(dropout_masks)
        if len(masks) != L - 1:
            raise ValueError(f"{fn}: dropout_masks must hold one mask for each layer after the first ({L - 1}), "
                             f"got {len(masks)}")
        out = []
        for k, m in enumerate(masks):
            m = np.asarray(m)
            if m.shape != shape:
                raise ValueError(f"{fn}: dropout_masks[{k}] must have shape (T, B, dirs*H) = {shape}, got {m.shape}")
            if m.dtype != dtype:
                raise TypeError(f"{fn}: dropout_masks[{k}] must be {dtype}, like the weights, got {m.dtype}")
            out.append(m)
        return out
    dropout = float(dropout)
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"{fn}: dropout must be in [0, 1), got {dropout}")
    if dropout == 0.0 or L == 1:
        return [None] * (L - 1)
    return dropout_masks_from_seed(seed, dropout, L, shape, dtype)


def recurrent_dropout_mask(rate: float, shape, *, seed=None, dtype=np.float32) -> np.ndarray:
    """A variational recurrent dropout mask of ``shape`` ((B, H), or (layers*dirs, B, H) for the
    whole-layer functions): ``(rng.random(shape) < 1 - rate) / (1 - rate)`` in ``dtype`` from
    ``numpy.random.default_rng(seed)``; all ones for rate 0."""
    rate = float(rate)
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"recurrent_dropout_mask: rate must be in [0, 1), got {rate}")
    keep = 1.0 - rate
    rng = np.random.default_rng(seed)
    return ((rng.random(shape) < keep) / keep).astype(dtype)


def dropout_masks_from_seed(seed, dropout: float, L: int, shape, dtype) -> list:
    """The masks ``dropout`` with ``seed`` draws: for layers 1..L-1 in turn, from one
    ``numpy.random.default_rng(seed)``, ``(rng.random(shape) < 1 - dropout) / (1 - dropout)`` in
    ``dtype``."""
    rng = np.random.default_rng(seed)
    keep = 1.0 - dropout
    return [((rng.random(shape) < keep) / keep).astype(dtype) for _ in range(L - 1)]


# ----------------------------------------------------------------------------------------------
# Forward and backward


def _forward(fn, cell: _Cell, x, layers, lengths, h0, c0, dropout, seed, dropout_masks, need_cache, schedule,
             recurrent_masks=None):
    dirs_of = _directions(fn, cell, layers)
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{fn}: x must have shape (T, B, D), got {x.shape}")
    if schedule not in SCHEDULES:
        raise ValueError(f"{fn}: schedule must be one of {SCHEDULES}, got {schedule!r}")
    first = dirs_of[0][0]
    T, B, D = x.shape
    L, dirs, H, dtype = len(dirs_of), len(dirs_of[0]), first.hidden_size, first.dtype
    if D != first.input_size:
        raise ValueError(f"{fn}: x must have shape (T, B, D) with D = {first.input_size} (layers[0]'s input size), "
                         f"got {x.shape}")
    h0 = _state(fn, "h0", h0, (L * dirs, B, H), dtype)
    c0 = _state(fn, "c0", c0, (L * dirs, B, H), dtype) if cell.states == 2 else None
    rmasks = _state(fn, "recurrent_masks", recurrent_masks, (L * dirs, B, H), dtype)
    if lengths is not None:
        lengths = np.asarray(lengths)
        if lengths.shape != (B,) or not np.issubdtype(lengths.dtype, np.integer):
            raise ValueError(f"{fn}: lengths must be integers of shape (B,) = ({B},), got {lengths.dtype} {lengths.shape}")
        lengths = np.ascontiguousarray(lengths, dtype=np.int64)  # the kernels check the range
    masks = _masks(fn, dropout, seed, dropout_masks, L, (T, B, dirs * H), dtype)
    if schedule == "auto":
        schedule = layers_schedule(dirs, T, B, H, D, dtype.itemsize)
    rev = reverse_index(T, lengths, B) if dirs == 2 else None

    def job(k, j, inp):
        w, i = dirs_of[k][j], k * dirs + j
        s0 = None if h0 is None else h0[i]
        s1 = None if c0 is None else c0[i]
        m = None if rmasks is None else rmasks[i]
        if j == 0:
            return cell.forward(inp, w, s0, s1, lengths, need_cache, m)
        y, h_n, c_n, cache = cell.forward(reverse_within_lengths(inp, rev), w, s0, s1, lengths, need_cache, m)
        return reverse_within_lengths(y, rev), h_n, c_n, cache

    caches, h_n, c_n = [], [], []
    inp = x
    for k in range(L):
        if k > 0 and masks[k - 1] is not None:
            inp = inp * masks[k - 1]
        outs = _run([lambda k=k, j=j, inp=inp: job(k, j, inp) for j in range(dirs)], schedule)
        caches.append([o[3] for o in outs])
        h_n += [o[1] for o in outs]
        c_n += [o[2] for o in outs]
        inp = outs[0][0] if dirs == 1 else np.concatenate([outs[0][0], outs[1][0]], axis=2)
    cache = None
    if need_cache:
        cache = LayersCache._make(cell, caches, masks, lengths, rev, (T, B, L, dirs, H), schedule)
    return LayersOutput(inp, np.stack(h_n), np.stack(c_n) if cell.states == 2 else None, cache)


def _backward(fn, cell: _Cell, cache, dy, dh_n, dc_n):
    if not isinstance(cache, LayersCache) or cache._cell is not cell:
        raise TypeError(f"{fn}: cache must be the LayersCache of a {cell.name}_layers_forward call, "
                        f"got {type(cache).__name__}")
    T, B, L, dirs, H = cache._shape
    dtype = cache._caches[0][0].weights.dtype

    grad = _operand(fn, "dy", dy, (T, B, dirs * H), dtype, "the forward")
    dh_n = _operand(fn, "dh_n", dh_n, (L * dirs, B, H), dtype, "the forward")
    dc_n = _operand(fn, "dc_n", dc_n, (L * dirs, B, H), dtype, "the forward") if cell.states == 2 else None
    rev = cache._rev

    def job(k, j, g):
        i = k * dirs + j
        d = None if g is None else np.ascontiguousarray(g[..., j * H : (j + 1) * H])
        if d is not None and j == 1:
            d = reverse_within_lengths(d, rev)
        dh = None if dh_n is None else np.ascontiguousarray(dh_n[i])
        dc = None if dc_n is None else np.ascontiguousarray(dc_n[i])
        grads = cell.backward(cache._caches[k][j], d, dh, dc)
        return grads, (grads.dx if j == 0 else reverse_within_lengths(grads.dx, rev))

    per_layer = [None] * L
    dh0, dc0 = [None] * (L * dirs), [None] * (L * dirs)
    for k in reversed(range(L)):
        outs = _run([lambda k=k, j=j, g=grad: job(k, j, g) for j in range(dirs)], cache._schedule)
        per_layer[k] = tuple(o[0] for o in outs)
        for j, (g, _) in enumerate(outs):
            dh0[k * dirs + j] = g.dh0
            if cell.states == 2:
                dc0[k * dirs + j] = g.dc0
        grad = outs[0][1] if dirs == 1 else outs[0][1] + outs[1][1]
        if k > 0 and cache._masks[k - 1] is not None:
            grad = grad * cache._masks[k - 1]
    return LayersGrads(grad, per_layer, np.stack(dh0), np.stack(dc0) if cell.states == 2 else None)


_FORWARD_DOC = """{Cell} layers over a time-major sequence in one call: ``torch.nn.{Torch}(num_layers=len(layers),
    bidirectional=...)``'s forward{extra}.

    Parameters
    ----------
    x : ndarray (T, B, D)
    layers : list
        One entry a layer: a ``{W}`` (one direction), or a pair ``({W} forward, {W} reverse)``
        for a bidirectional layer; every layer has the same number of directions ``dirs``, layer 0
        takes D inputs, the others dirs*H. ``seqkern.convert.from_torch_{cell}_layers`` builds the
        list from a PyTorch state dict.
    lengths : integer ndarray (B,), optional
        Valid steps per row; the reverse direction runs each row reversed within its length.
    {states} : ndarray (layers*dirs, B, H), optional
        Initial states, PyTorch's order (layer k, direction j at k*dirs + j); zeros when None.
    dropout : float in [0, 1)
        Dropout on the inputs of layers 1.., masks drawn from ``seed`` (see
        ``dropout_masks_from_seed``); 0 for inference.
    seed : int, optional
    dropout_masks : list of L-1 ndarrays (T, B, dirs*H), optional
        The caller's own masks (already scaled), instead of ``dropout``.
    recurrent_masks : ndarray (layers*dirs, B, H), optional
        Variational recurrent dropout: layer k, direction j's h_{{t-1}} is multiplied by
        ``recurrent_masks[k*dirs + j]`` where it enters its recurrent product, the same mask at
        every step (see ``{cell}_forward``'s ``recurrent_mask``; ``recurrent_dropout_mask``
        draws one).
    need_cache : bool
        Keep what ``{cell}_layers_backward`` needs (default).
    schedule : "auto", "side_by_side" or "sequential"
        How the two directions of a layer run: side by side, each on half the threads, or one
        after the other; "auto" chooses by shape (``layers_schedule``). Results are bitwise the
        same whichever runs.

    Returns
    -------
    LayersOutput
        ``(y, h_n, c_n, cache)``: y (T, B, dirs*H); h_n{cn} (layers*dirs, B, H).
    """


def lstm_layers_forward(x, layers, *, lengths=None, h0=None, c0=None, dropout=0.0, seed=None, dropout_masks=None,
                        need_cache=True, schedule="auto", recurrent_masks=None) -> LayersOutput:
    return _forward("lstm_layers_forward", _LSTM, x, layers, lengths, h0, c0, dropout, seed, dropout_masks,
                    need_cache, schedule, recurrent_masks)


def gru_layers_forward(x, layers, *, lengths=None, h0=None, dropout=0.0, seed=None, dropout_masks=None,
                       need_cache=True, schedule="auto", recurrent_masks=None) -> LayersOutput:
    return _forward("gru_layers_forward", _GRU, x, layers, lengths, h0, None, dropout, seed, dropout_masks,
                    need_cache, schedule, recurrent_masks)


def rnn_layers_forward(x, layers, *, lengths=None, h0=None, dropout=0.0, seed=None, dropout_masks=None,
                       need_cache=True, schedule="auto", recurrent_masks=None) -> LayersOutput:
    return _forward("rnn_layers_forward", _RNN, x, layers, lengths, h0, None, dropout, seed, dropout_masks,
                    need_cache, schedule, recurrent_masks)


lstm_layers_forward.__doc__ = _FORWARD_DOC.format(
    Cell="LSTM", Torch="LSTM", W="LSTMWeights", cell="lstm", states="h0, c0", cn=", c_n",
    extra=" (with peepholes when the weights have them)")
gru_layers_forward.__doc__ = _FORWARD_DOC.format(
    Cell="GRU", Torch="GRU", W="GRUWeights", cell="gru", states="h0", cn="", extra="; c_n is None")
rnn_layers_forward.__doc__ = _FORWARD_DOC.format(
    Cell="Plain RNN", Torch="RNN", W="RNNWeights", cell="rnn", states="h0", cn="",
    extra=" (each RNNWeights' own nonlinearity); c_n is None")


def lstm_layers_backward(cache: LayersCache, dy=None, dh_n=None, dc_n=None) -> LayersGrads:
    """Gradients of an ``lstm_layers_forward`` call: dy (T, B, dirs*H), dh_n and dc_n
    (layers*dirs, B, H), each None for zeros. Returns :class:`LayersGrads`."""
    return _backward("lstm_layers_backward", _LSTM, cache, dy, dh_n, dc_n)


def gru_layers_backward(cache: LayersCache, dy=None, dh_n=None) -> LayersGrads:
    """Gradients of a ``gru_layers_forward`` call: dy (T, B, dirs*H), dh_n (layers*dirs, B, H),
    each None for zeros. Returns :class:`LayersGrads` (dc0 None)."""
    return _backward("gru_layers_backward", _GRU, cache, dy, dh_n, None)


def rnn_layers_backward(cache: LayersCache, dy=None, dh_n=None) -> LayersGrads:
    """Gradients of an ``rnn_layers_forward`` call: dy (T, B, dirs*H), dh_n (layers*dirs, B, H),
    each None for zeros. Returns :class:`LayersGrads` (dc0 None)."""
    return _backward("rnn_layers_backward", _RNN, cache, dy, dh_n, None)
