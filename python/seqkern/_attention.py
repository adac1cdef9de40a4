"""Attention: fused scaled dot-product attention, additive attention, attention pooling."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from . import _core
from ._util import contiguous

__all__ = [
    "KVCache",
    "AttentionCache",
    "AdditiveAttentionCache",
    "AttentionPoolCache",
    "attention_forward",
    "attention_backward",
    "attention_scores",
    "additive_attention_forward",
    "additive_attention_backward",
    "attention_pool_forward",
    "attention_pool_backward",
]


class AttentionCache(NamedTuple):
    """What attention_backward needs: the inputs (C-contiguous), the output, and one float per
    query row, ``lse`` (..., Lq): the log-sum-exp of the row's scaled, masked scores, in base 2
    (the natural one times log2(e); +inf for a row that sees no key). The score matrix itself
    is not kept. Treat it as read-only; it may be passed to attention_backward any number of
    times."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    out: np.ndarray
    lse: np.ndarray
    mask: np.ndarray | None
    causal: bool
    kv_lengths: np.ndarray | None
    scale: float
    bias: np.ndarray | None = None
    bottom_right: bool = False  # with causal: aligned to the end of the keys
    softcap: float = 0.0
    io_dtype: object = None  # float16 or bfloat16 inputs: what the outputs are given back in
    window: tuple = (-1, -1)  # (left, right) key counts; -1 unbounded


class AttentionForward(NamedTuple):
    out: np.ndarray
    cache: AttentionCache


class AttentionGrads(NamedTuple):
    dq: np.ndarray
    dk: np.ndarray
    dv: np.ndarray


class AttentionBiasGrads(NamedTuple):
    """attention_backward(..., dbias=True): AttentionGrads and the bias's gradient."""

    dq: np.ndarray
    dk: np.ndarray
    dv: np.ndarray
    dbias: np.ndarray


_CAUSAL = {False: (False, False), True: (True, False), "top_left": (True, False), "bottom_right": (True, True)}


def _causal(fn, causal):
    """(causal, bottom_right) from False, True, "top_left" or "bottom_right"."""
    key = bool(causal) if isinstance(causal, (bool, np.bool_)) else causal
    if not isinstance(key, (bool, str)) or key not in _CAUSAL:
        raise ValueError(f"{fn}: causal must be False, True, 'top_left' or 'bottom_right', got {causal!r}")
    return _CAUSAL[key]


_HALF = ("float16", "bfloat16")


def _is_half(a) -> bool:
    # itemsize first: dtype.name runs Python code in NumPy, and most calls are float32.
    return isinstance(a, np.ndarray) and a.dtype.itemsize == 2 and a.dtype.name in _HALF


def _widen(a):
    """float16 or bfloat16 -> float32, exactly (bfloat16 is float32's upper 16 bits)."""
    if a is None or not _is_half(a):
        return a
    if a.dtype.name == "float16":
        return a.astype(np.float32)
    return (np.ascontiguousarray(a).view(np.uint16).astype(np.uint32) << 16).view(np.float32)


def _narrow(x: np.ndarray, dtype) -> np.ndarray:
    """float32 -> float16 or bfloat16, rounded to nearest even (NaN stays NaN)."""
    if dtype.name == "float16":
        return x.astype(np.float16)
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    r = ((u + np.uint32(0x7FFF) + ((u >> 16) & np.uint32(1))) >> 16).astype(np.uint16)
    r = np.where(np.isnan(x), np.uint16(0x7FC0), r)
    return r.view(dtype)


def _window(fn, window) -> tuple:
    """(left, right) as ints, -1 for an unbounded side."""
    if window is None:
        return (-1, -1)
    if not isinstance(window, (tuple, list)) or len(window) != 2:
        raise ValueError(f"{fn}: window must be a pair (left, right) of key counts or None, got {window!r}")
    out = []
    for side, w in zip(("left", "right"), window):
        if w is None:
            out.append(-1)
            continue
        if isinstance(w, (bool, np.bool_)) or not isinstance(w, (int, np.integer)) or w < 0:
            raise ValueError(f"{fn}: window's {side} size must be an integer >= 0 or None, got {w!r}")
        out.append(int(w))
    return tuple(out)


def _softcap(fn, softcap) -> float:
    if softcap is None:
        return 0.0
    if isinstance(softcap, (bool, np.bool_)) or not isinstance(softcap, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: softcap must be a real number or None, got {type(softcap).__name__}")
    softcap = float(softcap)
    if not (math.isfinite(softcap) and softcap > 0):
        raise ValueError(f"{fn}: softcap must be a finite number > 0 (or None), got {softcap}")
    return softcap


def _rows_in_place(a: np.ndarray) -> bool:
    """Whether the kernels read ``a`` (..., L, D) where it lies: C-contiguous, or evenly spaced
    problems whose (L, D) rows are contiguous (the filled part of a KVCache's buffer)."""
    if a.flags.c_contiguous:
        return True
    if a.ndim < 3 or a.dtype not in (np.float32, np.float64):
        return False
    isz, (L, D) = a.itemsize, a.shape[-2:]
    if (D > 1 and a.strides[-1] != isz) or (L > 1 and a.strides[-2] != D * isz):
        return False
    if a.strides[-3] % isz or a.strides[-3] < L * D * isz:
        return False
    return all(a.shape[i] <= 1 or a.strides[i] == a.strides[i + 1] * a.shape[i + 1] for i in range(a.ndim - 4, -1, -1))


def _keys(a, fn: str, name: str):
    a = np.asarray(a) if not isinstance(a, np.ndarray) else a
    return a if _rows_in_place(a) else contiguous(a, fn, name)


class KVCache:
    """Keys and values of the steps decoded so far, for attention over a growing sequence.

    ``KVCache(lead, dk, dv=None, *, capacity=256, dtype=np.float32)`` holds two buffers
    ``lead + (capacity, dk)`` and ``lead + (capacity, dv)`` (lead e.g. (B, NH_kv)); ``append(k, v)``
    writes ``lead + (n, dk)`` / ``lead + (n, dv)`` after what is there, in place (float16 and
    bfloat16 caches are widened to float32 by each attention call, a copy). ``k`` and ``v``
    are views of the filled part, which ``attention_forward`` reads where it lies (no copy). When
    an append does not fit, the buffers are replaced by ones of twice the capacity (or enough)
    and the filled part is copied once; views handed out before keep the old buffers, unchanged.
    A decoding step is ``attention_forward(q_t, cache.k, cache.v, causal="bottom_right")`` after
    ``cache.append(k_t, v_t)``.
    """

    def __init__(self, lead, dk: int, dv: int | None = None, *, capacity: int = 256, dtype=np.float32) -> None:
        self._lead = tuple(int(n) for n in lead)
        if any(n < 0 for n in self._lead):
            raise ValueError(f"KVCache: lead must hold sizes >= 0, got {lead}")
        self._dk, self._dv = int(dk), int(dk if dv is None else dv)
        if self._dk < 1 or self._dv < 1:
            raise ValueError(f"KVCache: dk and dv must be >= 1, got {dk} and {dv}")
        if int(capacity) < 0:
            raise ValueError(f"KVCache: capacity must be >= 0, got {capacity}")
        self._dtype = np.dtype(dtype)
        if self._dtype.name not in ("float32", "float64", *_HALF):
            raise TypeError(f"KVCache: dtype must be float32, float64, float16 or bfloat16, got {self._dtype}")
        self._n = 0
        self._alloc(int(capacity))

    def _alloc(self, capacity: int) -> None:
        k = np.empty(self._lead + (capacity, self._dk), self._dtype)
        v = np.empty(self._lead + (capacity, self._dv), self._dtype)
        if self._n:
            k[..., : self._n, :] = self._k[..., : self._n, :]
            v[..., : self._n, :] = self._v[..., : self._n, :]
        self._k, self._v = k, v

    def append(self, k, v) -> None:
        """Writes ``k`` (lead + (n, dk)) and ``v`` (lead + (n, dv)) after the filled part."""
        k, v = np.asarray(k), np.asarray(v)
        for name, a, d in (("k", k, self._dk), ("v", v, self._dv)):
            if a.dtype != self._dtype:
                raise TypeError(f"KVCache.append: {name} must be {self._dtype}, like the cache, got {a.dtype}")
            if a.ndim != len(self._lead) + 2 or a.shape[:-2] != self._lead or a.shape[-1] != d:
                raise ValueError(f"KVCache.append: {name} must have shape {self._lead + ('n', d)}, got {a.shape}")
        n = k.shape[-2]
        if v.shape[-2] != n:
            raise ValueError(f"KVCache.append: k and v must hold the same number of steps, got {n} and {v.shape[-2]}")
        if self._n + n > self.capacity:
            self._alloc(max(2 * self.capacity, self._n + n))
        self._k[..., self._n : self._n + n, :] = k
        self._v[..., self._n : self._n + n, :] = v
        self._n += n

    def clear(self) -> None:
        """Forgets every step (the buffers stay)."""
        self._n = 0

    @property
    def length(self) -> int:
        return self._n

    @property
    def capacity(self) -> int:
        return self._k.shape[-2]

    @property
    def k(self) -> np.ndarray:
        """The filled part, lead + (length, dk), a read-only view of the buffer."""
        view = self._k[..., : self._n, :]
        view.flags.writeable = False
        return view

    @property
    def v(self) -> np.ndarray:
        view = self._v[..., : self._n, :]
        view.flags.writeable = False
        return view

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (f"KVCache(lead={self._lead}, dk={self._dk}, dv={self._dv}, length={self._n}, "
                f"capacity={self.capacity}, dtype={self._dtype})")


def key_grads(dk: np.ndarray, dv: np.ndarray, k_shape: tuple) -> tuple:
    """The kernel's per-query-head dk, dv in k's shape: with grouped heads each key head's gradient
    sums its query heads' (in order)."""
    if dk.shape == tuple(k_shape):
        return dk, dv
    lead, heads = k_shape[:-3], k_shape[-3]
    return (dk.reshape(*lead, heads, -1, *dk.shape[-2:]).sum(axis=-3),
            dv.reshape(*lead, heads, -1, *dv.shape[-2:]).sum(axis=-3))


def sum_to(g: np.ndarray, shape: tuple) -> np.ndarray:
    """g summed over the dims along which an array of ``shape`` was broadcast to g's shape."""
    lead = g.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape) if n == 1 and g.shape[lead + i] != 1)
    return g.sum(axis=axes, keepdims=True).reshape(shape) if axes else g


def _mask(mask):
    # Not copied here: the compiled layer reads a broadcast view (zero strides) in place.
    return None if mask is None else np.asarray(mask)


def _scale(fn, scale, q):
    if scale is None:
        dh = q.shape[-1] if isinstance(q, np.ndarray) and q.ndim >= 1 else 0
        return 1.0 / math.sqrt(dh) if dh > 0 else 1.0
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, float, np.integer, np.floating)):
        raise TypeError(f"{fn}: scale must be a real number or None, got {type(scale).__name__}")
    scale = float(scale)
    if not math.isfinite(scale):
        raise ValueError(f"{fn}: scale must be finite, got {scale}")
    return scale


def attention_forward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    causal: bool | str = False,
    kv_lengths: np.ndarray | None = None,
    scale: float | None = None,
    bias: np.ndarray | None = None,
    softcap: float | None = None,
    window: tuple | None = None,
) -> AttentionForward:
    """Scaled dot-product attention, fused: ``out = softmax(scale * q k^T + bias, masked) v``.

    Parameters
    ----------
    q : ndarray of float32 or float64 (or float16, bfloat16: computed in float32, the output and
        the gradients given back in q's dtype, rounded to nearest even), shape (..., Lq, Dh)
        Queries; any number of leading dims, e.g. (B, NH, Lq, Dh).
    k : ndarray, shape (..., Lk, Dh), q's dtype and leading dims, except that with two or more
        leading dims (..., NH, Lq, Dh) the last (the heads) may divide q's: grouped-query (and multi-query) attention, query head h
        reading key head h // (NH / NH_kv), never repeated in memory
    v : ndarray, shape (..., Lk, Dv), q's dtype and k's leading dims
    mask : ndarray of bool, broadcastable to (..., Lq, Lk), optional
        True = attend. A broadcast mask is read in place, never expanded.
    causal : False, True, "top_left" or "bottom_right"
        True or "top_left": query i sees keys j <= i (PyTorch's ``is_causal``); "bottom_right":
        keys j <= i + Lk - Lq, aligned to the end of the keys (decoding with a cache of past keys);
        with ``kv_lengths``, to the end of each problem's own keys: j <= i + kv_lengths[b] - Lq.
    bias : float ndarray of q's dtype, broadcastable to (..., Lq, Lk), optional
        Added to the scaled scores (a relative-position bias, ALiBi; -inf masks a key), read in
        place with zero strides along broadcast dims, never expanded.
    softcap : float > 0, optional
        Caps the scaled scores before the bias: ``s = softcap * tanh(scale q k^T / softcap)``
        (ONNX's ``softcap``, Gemma's logit soft-capping).
    window : (left, right), optional
        A sliding window: query i sees keys i + o - left <= j <= i + o + right, o the causal
        alignment's offset (0; Lk - Lq or kv_lengths[b] - Lq with ``causal="bottom_right"``);
        either side None for unbounded (``(2, 0)`` with ``causal=True``: each query sees itself
        and the two keys before it).
    kv_lengths : integer ndarray, shape (B,) for the first leading dim B, optional
        Keys j >= kv_lengths[b] are masked for every problem under index b. Values in [0, Lk].
    scale : float, optional
        Defaults to 1/sqrt(Dh). 0 and negative values are allowed; NaN or inf raises
        ``ValueError`` (it would make every score NaN), a non-number ``TypeError``.

    Returns
    -------
    AttentionForward(out, cache)
        ``out`` (..., Lq, Dv). A query row that sees no key gets zeros. ``cache`` is an
        AttentionCache for attention_backward (per-row log-sum-exp, not the scores).

    The (Lq, Lk) score matrix is never built: extra memory is O(rows x Dh) plus small tiles.
    """
    fn = "attention_forward"
    io_dtype = None
    if _is_half(q):  # computed in float32, given back in the inputs' dtype
        io_dtype = q.dtype
        for name, a in (("k", k), ("v", v), ("bias", bias)):
            if a is not None and (not isinstance(a, np.ndarray) or a.dtype != io_dtype):
                got = a.dtype if isinstance(a, np.ndarray) else type(a).__name__
                raise TypeError(f"{fn}: {name} must be {io_dtype}, like q, got {got}")
        q, k, v, bias = _widen(q), _widen(k), _widen(v), _widen(bias)
    q, k, v = contiguous(q, fn, "q"), _keys(k, fn, "k"), _keys(v, fn, "v")
    scale = _scale(fn, scale, q)
    mask = _mask(mask)
    bias = _mask(bias)
    kv_lengths = None if kv_lengths is None else np.asarray(kv_lengths)
    causal, bottom_right = _causal(fn, causal)
    softcap = _softcap(fn, softcap)
    window = _window(fn, window)
    out, lse = _core.attention_forward(q, k, v, mask, causal, bottom_right, kv_lengths, scale, bias, softcap, *window)
    cache = AttentionCache(q, k, v, out, lse, mask, causal, kv_lengths, scale, bias, bottom_right, softcap, io_dtype,
                           window)
    return AttentionForward(out if io_dtype is None else _narrow(out, io_dtype), cache)


def attention_backward(cache: AttentionCache, dout: np.ndarray, *, dbias: bool = False) -> AttentionGrads:
    """Gradients of attention_forward.

    Parameters
    ----------
    cache : AttentionCache
        From attention_forward; not modified, so it can be reused.
    dout : ndarray, the shape and dtype of the forward ``out``
        dL/dout.
    dbias : bool
        Also the gradient of the forward's ``bias`` (the scores' gradient summed over the dims
        the bias was broadcast along; it takes one (..., Lq, Lk) buffer). Needs a bias.

    Returns
    -------
    AttentionGrads(dq, dk, dv), shaped like q, k, v (with grouped heads, dk and dv sum the group's
    query heads); with ``dbias=True`` AttentionBiasGrads(dq, dk, dv, dbias), dbias shaped like the
    bias. Rows that saw no key get zero gradients.
    """
    c = cache
    fn = "attention_backward"
    if dbias and c.bias is None:
        raise ValueError(f"{fn}: dbias=True needs a forward with a bias")
    if c.io_dtype is not None:
        if not isinstance(dout, np.ndarray) or dout.dtype != c.io_dtype:
            got = dout.dtype if isinstance(dout, np.ndarray) else type(dout).__name__
            raise TypeError(f"{fn}: dout must be {c.io_dtype}, like the forward's output, got {got}")
        dout = _widen(dout)
    dq, dk, dv, full = _core.attention_backward(
        c.q, c.k, c.v, c.out, c.lse, contiguous(dout, fn, "dout"), c.mask, c.causal, c.bottom_right,
        c.kv_lengths, c.scale, c.bias, c.softcap, *c.window, bool(dbias)
    )
    dk, dv = key_grads(dk, dv, c.k.shape)
    grads = (dq, dk, dv) if full is None else (dq, dk, dv, sum_to(full, c.bias.shape))
    if c.io_dtype is not None:
        grads = tuple(_narrow(g, c.io_dtype) for g in grads)
    return AttentionGrads(*grads) if full is None else AttentionBiasGrads(*grads)


_STAGES = {"scores": 0, "biased": 1, "probs": 2}


def attention_scores(cache: AttentionCache, stage: str = "probs") -> np.ndarray:
    """The (..., Lq, Lk) score matrix of an attention_forward call, which the fused kernel never
    builds, computed again from its cache as the forward formed it.

    ``stage``: "scores", ``scale * q k^T`` (soft-capped when the forward had a softcap); "biased",
    that plus the bias, with -inf where a key is masked (mask, causal, window, kv_lengths);
    "probs", the softmax weights the forward used (0 where masked and on rows that see no key).
    These are ONNX Attention's qk_matmul_output modes 0/1, 2 and 3. In the forward's input dtype.
    """
    fn = "attention_scores"
    if stage not in _STAGES:
        raise ValueError(f"{fn}: stage must be one of {tuple(_STAGES)}, got {stage!r}")
    if not isinstance(cache, AttentionCache):
        raise TypeError(f"{fn}: cache must be the AttentionCache of an attention_forward call, got {type(cache).__name__}")
    c = cache
    out = _core.attention_scores(c.q, c.k, c.v, c.lse, c.mask, c.causal, c.bottom_right, c.kv_lengths, c.scale, c.bias,
                                 c.softcap, *c.window, _STAGES[stage])
    return out if c.io_dtype is None else _narrow(out, c.io_dtype)


class AdditiveAttentionCache(NamedTuple):
    """What additive_attention_backward needs: the inputs and weights, the projections
    ``qp = q w_q^T`` (B, Lq, A) and ``kp = k w_k^T`` (B, Lk, A), the output and the per-row
    log-sum-exp ``lse`` (B, Lq) (+inf for a row that sees no key). The (B, Lq, Lk, A) tanh
    values are not kept; backward recomputes them. Read-only and reusable."""

    q: np.ndarray
    k: np.ndarray
    v: np.ndarray
    w_q: np.ndarray
    w_k: np.ndarray
    w_v: np.ndarray
    qp: np.ndarray
    kp: np.ndarray
    out: np.ndarray
    lse: np.ndarray
    mask: np.ndarray | None
    kv_lengths: np.ndarray | None


class AdditiveAttentionForward(NamedTuple):
    out: np.ndarray
    cache: AdditiveAttentionCache


class AdditiveAttentionGrads(NamedTuple):
    dq: np.ndarray
    dk: np.ndarray
    dv: np.ndarray
    dw_q: np.ndarray
    dw_k: np.ndarray
    dw_v: np.ndarray


def additive_attention_forward(
    q: np.ndarray,
    k: np.ndarray,
    v: np.ndarray,
    w_q: np.ndarray,
    w_k: np.ndarray,
    w_v: np.ndarray,
    *,
    mask: np.ndarray | None = None,
    kv_lengths: np.ndarray | None = None,
) -> AdditiveAttentionForward:
    """Additive (Bahdanau) attention: ``score_ij = w_v . tanh(w_q q_i + w_k k_j)``, softmax over
    j, ``out_i = sum_j a_ij v_j``.

    Parameters
    ----------
    q : ndarray of float32 or float64, shape (B, Lq, Dq)
    k : ndarray, shape (B, Lk, Dk), q's dtype
    v : ndarray, shape (B, Lk, Dv), q's dtype
    w_q : ndarray, shape (A, Dq);  w_k : ndarray, shape (A, Dk);  w_v : ndarray, shape (A,)
    mask : ndarray of bool, broadcastable to (B, Lq, Lk), optional; True = attend
    kv_lengths : integer ndarray, shape (B,), optional; keys j >= kv_lengths[b] are masked

    Returns
    -------
    AdditiveAttentionForward(out, cache); ``out`` (B, Lq, Dv), zeros for a row that sees no key.

    q and k are projected once (two GEMMs); the (B, Lq, Lk, A) tensor is never built.
    """
    fn = "additive_attention_forward"
    q, k, v = contiguous(q, fn, "q"), contiguous(k, fn, "k"), contiguous(v, fn, "v")
    w_q, w_k, w_v = contiguous(w_q, fn, "w_q"), contiguous(w_k, fn, "w_k"), contiguous(w_v, fn, "w_v")
    mask = _mask(mask)
    kv_lengths = None if kv_lengths is None else np.asarray(kv_lengths)
    out, qp, kp, lse = _core.additive_attention_forward(q, k, v, w_q, w_k, w_v, mask, kv_lengths)
    cache = AdditiveAttentionCache(q, k, v, w_q, w_k, w_v, qp, kp, out, lse, mask, kv_lengths)
    return AdditiveAttentionForward(out, cache)


def additive_attention_backward(
    cache: AdditiveAttentionCache, dout: np.ndarray
) -> AdditiveAttentionGrads:
    """Gradients of additive_attention_forward.

    Parameters
    ----------
    cache : AdditiveAttentionCache
        From additive_attention_forward; not modified.
    dout : ndarray, shape (B, Lq, Dv), the forward output's dtype

    Returns
    -------
    AdditiveAttentionGrads(dq, dk, dv, dw_q, dw_k, dw_v), shaped like the inputs.
    """
    c = cache
    grads = _core.additive_attention_backward(
        c.q, c.k, c.v, c.w_q, c.w_k, c.w_v, c.qp, c.kp, c.out, c.lse, contiguous(dout, "additive_attention_backward", "dout"),
        c.mask, c.kv_lengths,
    )
    return AdditiveAttentionGrads(*grads)


class AttentionPoolCache(NamedTuple):
    """What attention_pool_backward needs: h, w, w_s, the projection ``u = tanh(h w^T + b)``
    (T, B, A), the weights ``alpha`` (T, B) and the lengths. Read-only and reusable."""

    h: np.ndarray
    w: np.ndarray
    w_s: np.ndarray
    u: np.ndarray
    alpha: np.ndarray
    lengths: np.ndarray | None


class AttentionPoolForward(NamedTuple):
    context: np.ndarray
    alpha: np.ndarray
    cache: AttentionPoolCache


class AttentionPoolGrads(NamedTuple):
    dh: np.ndarray
    dw: np.ndarray
    db: np.ndarray
    dw_s: np.ndarray


def attention_pool_forward(
    h: np.ndarray,
    w: np.ndarray,
    b: np.ndarray,
    w_s: np.ndarray,
    *,
    lengths: np.ndarray | None = None,
) -> AttentionPoolForward:
    """Attention pooling over time-major LSTM outputs.

    ``u_t = tanh(h_t w^T + b)``, ``score_t = u_t . w_s``, ``alpha = softmax over t < lengths``,
    ``context = sum_t alpha_t h_t``.

    Parameters
    ----------
    h : ndarray of float32 or float64, shape (T, B, H)
    w : ndarray, shape (A, H);  b : ndarray, shape (A,);  w_s : ndarray, shape (A,)
    lengths : integer ndarray, shape (B,), values in [0, T], optional
        Steps t >= lengths[b] get alpha = 0; a length of 0 gives a zero context.

    Returns
    -------
    AttentionPoolForward(context (B, H), alpha (T, B), cache)
    """
    fn = "attention_pool_forward"
    h, w, b, w_s = contiguous(h, fn, "h"), contiguous(w, fn, "w"), contiguous(b, fn, "b"), contiguous(w_s, fn, "w_s")
    lengths = None if lengths is None else np.asarray(lengths)
    context, alpha, u = _core.attention_pool_forward(h, w, b, w_s, lengths)
    return AttentionPoolForward(context, alpha, AttentionPoolCache(h, w, w_s, u, alpha, lengths))


def attention_pool_backward(cache: AttentionPoolCache, dcontext: np.ndarray) -> AttentionPoolGrads:
    """Gradients ``(dh, dw, db, dw_s)`` of attention_pool_forward given dL/dcontext (B, H).

    The cache is not modified.
    """
    c = cache
    grads = _core.attention_pool_backward(
        c.h, c.w, c.w_s, c.u, c.alpha, contiguous(dcontext, "attention_pool_backward", "dcontext"), c.lengths
    )
    return AttentionPoolGrads(*grads)

