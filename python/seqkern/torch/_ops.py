"""The seqkern kernels as PyTorch operators (``torch.ops.seqkern.*``).

Each forward op runs one kernel and returns, besides its results, what the backward needs
(gates, states, log-sum-exps) as extra outputs; ``setup_context`` saves them and the inputs as
tensors, so PyTorch's version counter raises at ``backward()`` when any of them was changed in
place since the forward. Each backward is an op of its own, so ``torch.compile`` traces forward
and backward alike. Tensors reach the kernels as NumPy views (``Tensor.numpy()``) and the
kernels' arrays come back as tensors (``torch.from_numpy``): no copies, except one C-order copy
of a non-contiguous input.

``lstm_inference``, ``gru_inference`` and ``rnn_inference`` are the forwards without what the
backward needs (no autograd formula): the modules call them when no gradient is wanted, and in
eager mode on plain tensors call their implementations (``INFERENCE_IMPLS``) directly, which saves
the dispatcher's per-call cost (about 15 microseconds).

Inputs must be CPU tensors of float32 or float64, all of one dtype; ``lengths`` int64 on the CPU.
Wrong dtypes raise ``TypeError``; a wrong device, rank or shape ``ValueError``, naming the op and
the argument. The checks read only metadata, so the fake (meta) implementations share them; the
recurrent ops run them only when the kernel's binding refuses an argument (see ``_checked``).
"""

from typing import Optional

import numpy as np
import torch
from torch import Tensor

from seqkern import _core
from seqkern._attention import key_grads, sum_to

from ._weights import as_numpy, gru_weights, lstm_weights, rnn_weights

__all__ = [
    "lstm", "lstm_backward", "gru", "gru_backward", "rnn", "rnn_backward",
    "lstm_inference", "gru_inference", "rnn_inference",
    "attention", "attention_backward", "additive_attention", "additive_attention_backward",
    "attention_pool", "attention_pool_backward",
]

_FLOATS = (torch.float32, torch.float64)


# --- checks (metadata only) ----------------------------------------------------------------------------------------

def _cpu(fn: str, name: str, t: Tensor) -> None:
    if t.device.type != "cpu":
        raise ValueError(f"{fn}: {name} must be on the CPU, got device {t.device}")


def _float(fn: str, name: str, t: Tensor, like: Optional[Tensor] = None, like_name: str = "") -> None:
    _cpu(fn, name, t)
    if like is None:
        if t.dtype not in _FLOATS:
            raise TypeError(f"{fn}: {name} must be float32 or float64, got {t.dtype}")
    elif t.dtype != like.dtype:
        raise TypeError(f"{fn}: {name} must be {like.dtype}, like {like_name}, got {t.dtype}")


def _shape(fn: str, name: str, t: Tensor, shape: tuple, desc: str) -> None:
    if tuple(t.shape) != tuple(shape):
        raise ValueError(f"{fn}: {name} must have shape {desc} = {tuple(shape)}, got {tuple(t.shape)}")


def _ndim(fn: str, name: str, t: Tensor, n: int, desc: str) -> None:
    if t.dim() != n:
        raise ValueError(f"{fn}: {name} must be {n}-D {desc}, got shape {tuple(t.shape)}")


def _lengths(fn: str, lengths: Optional[Tensor], B: int) -> None:
    if lengths is None:
        return
    _cpu(fn, "lengths", lengths)
    if lengths.dtype != torch.int64:
        raise TypeError(f"{fn}: lengths must be int64, got {lengths.dtype}")
    _shape(fn, "lengths", lengths, (B,), "(B,)")


def _recurrent(fn: str, gates: int, x, w_ih, w_hh, b_ih, b_hh, states, lengths) -> tuple:
    """Checks of a recurrent op's arguments; returns (T, B, D, H)."""
    g = "H" if gates == 1 else f"{gates}*H"
    _float(fn, "x", x)
    _ndim(fn, "x", x, 3, "(T, B, D)")
    T, B, D = x.shape
    _float(fn, "w_hh", w_hh, x, "x")
    _ndim(fn, "w_hh", w_hh, 2, f"({g}, H)")
    H = w_hh.shape[1]
    _shape(fn, "w_hh", w_hh, (gates * H, H), f"({g}, H)")
    _float(fn, "w_ih", w_ih, x, "x")
    _shape(fn, "w_ih", w_ih, (gates * H, D), f"({g}, D)")
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            _float(fn, name, b, x, "x")
            _shape(fn, name, b, (gates * H,), f"({g},)")
    for name, s in states:
        if s is not None:
            _float(fn, name, s, x, "x")
            _shape(fn, name, s, (B, H), "(B, H)")
    _lengths(fn, lengths, B)
    return T, B, D, H


def _checked(check, run, lengths=None):
    """``run()``, the kernel call, whose binding validates every array; when it raises TypeError or
    ValueError, ``check()`` runs first so that the error names the op and its argument. On small
    shapes the metadata checks cost more than the kernel, hence only on failure."""
    if lengths is not None and lengths.dtype != torch.int64:
        check()
    try:
        return run()
    except (TypeError, ValueError):
        check()
        raise


def _arrays(*tensors):
    return tuple(as_numpy(t) for t in tensors)


def _tensors(*arrays):
    return tuple(torch.from_numpy(a) for a in arrays)


def _zeros_like_if_none(g: Optional[Tensor], like: Tensor) -> Tensor:
    return torch.zeros_like(like) if g is None else g


# --- LSTM ----------------------------------------------------------------------------------------------------------

def _check_lstm(fn, x, w_ih, w_hh, b_ih, b_hh, peephole, h0, c0, lengths):
    T, B, D, H = _recurrent(fn, 4, x, w_ih, w_hh, b_ih, b_hh, (("h0", h0), ("c0", c0)), lengths)
    if peephole is not None:
        _float(fn, "peephole", peephole, x, "x")
        _shape(fn, "peephole", peephole, (3, H), "(3, H)")
    return T, B, D, H


@torch.library.custom_op("seqkern::lstm", mutates_args=())
def lstm(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
         peephole: Optional[Tensor], h0: Optional[Tensor], c0: Optional[Tensor],
         lengths: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One LSTM layer over time-major x (T, B, D): ``(y, h_n, c_n, gates, h, c)``.

    w_ih (4H, D), w_hh (4H, H), b_ih and b_hh (4H,) or None, gate rows i, f, g, o (PyTorch's
    ``nn.LSTM`` layout); peephole (3, H) or None; h0, c0 (B, H) or None (zeros); lengths int64 (B,)
    or None (all T). y (T, B, H) is 0 at ``t >= lengths[b]``; h_n, c_n (B, H) the state after each
    row's last step. gates (T, B, 4H), h and c (T+1, B, H) are what ``lstm_backward`` needs.
    """
    def run():
        w = lstm_weights(w_ih, w_hh, b_ih, b_hh, peephole)
        return _core.lstm_forward_arrays(as_numpy(x), w, *_arrays(h0, c0, lengths))

    return _tensors(*_checked(
        lambda: _check_lstm("seqkern::lstm", x, w_ih, w_hh, b_ih, b_hh, peephole, h0, c0, lengths), run, lengths))


@lstm.register_fake
def _(x, w_ih, w_hh, b_ih, b_hh, peephole, h0, c0, lengths):
    T, B, D, H = _check_lstm("seqkern::lstm", x, w_ih, w_hh, b_ih, b_hh, peephole, h0, c0, lengths)
    return (x.new_empty((T, B, H)), x.new_empty((B, H)), x.new_empty((B, H)), x.new_empty((T, B, 4 * H)),
            x.new_empty((T + 1, B, H)), x.new_empty((T + 1, B, H)))


@torch.library.custom_op("seqkern::lstm_backward", mutates_args=())
def lstm_backward(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                  peephole: Optional[Tensor], lengths: Optional[Tensor], gates: Tensor, h: Tensor, c: Tensor,
                  dy: Tensor, dh_n: Tensor, dc_n: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of :func:`lstm` from its saved outputs: ``(dx, dw_ih, dw_hh, dbias, dh0, dc0, dpeephole)``.

    dbias (4H,) is the gradient of the summed bias, hence of each of b_ih and b_hh; dpeephole
    (3, H) is zeros when the forward had no peepholes.
    """
    w = lstm_weights(w_ih, w_hh, b_ih, b_hh, peephole)
    dx, dwi, dwh, db, dh0, dc0, dp = _core.lstm_backward_arrays(
        as_numpy(x), w, as_numpy(lengths), *_arrays(gates, h, c, dy, dh_n, dc_n))
    dp = torch.zeros((3, w_hh.shape[1]), dtype=x.dtype) if dp is None else torch.from_numpy(dp)
    return (*_tensors(dx, dwi, dwh, db, dh0, dc0), dp)


@lstm_backward.register_fake
def _(x, w_ih, w_hh, b_ih, b_hh, peephole, lengths, gates, h, c, dy, dh_n, dc_n):
    H = w_hh.shape[1]
    B = x.shape[1]
    return (x.new_empty(x.shape), w_ih.new_empty(w_ih.shape), w_hh.new_empty(w_hh.shape), x.new_empty((4 * H,)),
            x.new_empty((B, H)), x.new_empty((B, H)), x.new_empty((3, H)))


def _lstm_setup(ctx, inputs, output):
    x, w_ih, w_hh, b_ih, b_hh, peephole, h0, c0, lengths = inputs
    _y, _h_n, _c_n, gates, h, c = output
    ctx.save_for_backward(x, w_ih, w_hh, b_ih, b_hh, peephole, lengths, gates, h, c)
    ctx.mark_non_differentiable(gates, h, c)
    ctx.set_materialize_grads(False)
    ctx.state_given = (h0 is not None, c0 is not None)


def _lstm_grad(ctx, dy, dh_n, dc_n, _dgates, _dh, _dc):
    x, w_ih, w_hh, b_ih, b_hh, peephole, lengths, gates, h, c = ctx.saved_tensors
    dy = _zeros_like_if_none(dy, h[1:])
    dh_n = _zeros_like_if_none(dh_n, h[0])
    dc_n = _zeros_like_if_none(dc_n, c[0])
    dx, dwi, dwh, db, dh0, dc0, dp = lstm_backward(x, w_ih, w_hh, b_ih, b_hh, peephole, lengths, gates, h, c,
                                                   dy, dh_n, dc_n)
    h0_given, c0_given = ctx.state_given
    # Two tensors, not one twice: AccumulateGrad may adopt a gradient as the parameter's .grad.
    db_hh = db.clone() if b_ih is not None and b_hh is not None else db
    return (dx, dwi, dwh, db if b_ih is not None else None, db_hh if b_hh is not None else None,
            dp if peephole is not None else None, dh0 if h0_given else None, dc0 if c0_given else None, None)


lstm.register_autograd(_lstm_grad, setup_context=_lstm_setup)


def _lstm_inference(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                   peephole: Optional[Tensor], h0: Optional[Tensor], c0: Optional[Tensor],
                   lengths: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`lstm` without the saved gates and states: ``(y, h_n, c_n)``, not differentiable."""
    def run():
        w = lstm_weights(w_ih, w_hh, b_ih, b_hh, peephole)
        return _core.lstm_forward(as_numpy(x), w, *_arrays(h0, c0, lengths), False)[:3]

    return _tensors(*_checked(
        lambda: _check_lstm("seqkern::lstm_inference", x, w_ih, w_hh, b_ih, b_hh, peephole, h0, c0, lengths), run,
        lengths))


lstm_inference = torch.library.custom_op("seqkern::lstm_inference", _lstm_inference, mutates_args=())


@lstm_inference.register_fake
def _(x, w_ih, w_hh, b_ih, b_hh, peephole, h0, c0, lengths):
    T, B, D, H = _check_lstm("seqkern::lstm_inference", x, w_ih, w_hh, b_ih, b_hh, peephole, h0, c0, lengths)
    return x.new_empty((T, B, H)), x.new_empty((B, H)), x.new_empty((B, H))


# --- GRU -----------------------------------------------------------------------------------------------------------

@torch.library.custom_op("seqkern::gru", mutates_args=())
def gru(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
        h0: Optional[Tensor], lengths: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One GRU layer (PyTorch's ``nn.GRU`` math) over x (T, B, D): ``(y, h_n, gates, h)``.

    w_ih (3H, D), w_hh (3H, H), b_ih, b_hh (3H,) or None, gate rows r, z, n; h0 (B, H) or None;
    lengths int64 (B,) or None. gates (T, B, 4H) and h (T+1, B, H) are what ``gru_backward`` needs.
    """
    def run():
        w = gru_weights(w_ih, w_hh, b_ih, b_hh)
        return _core.gru_forward(as_numpy(x), w._arrays, *_arrays(h0, lengths), True)[:4]

    return _tensors(*_checked(
        lambda: _recurrent("seqkern::gru", 3, x, w_ih, w_hh, b_ih, b_hh, (("h0", h0),), lengths), run, lengths))


@gru.register_fake
def _(x, w_ih, w_hh, b_ih, b_hh, h0, lengths):
    T, B, D, H = _recurrent("seqkern::gru", 3, x, w_ih, w_hh, b_ih, b_hh, (("h0", h0),), lengths)
    return x.new_empty((T, B, H)), x.new_empty((B, H)), x.new_empty((T, B, 4 * H)), x.new_empty((T + 1, B, H))


@torch.library.custom_op("seqkern::gru_backward", mutates_args=())
def gru_backward(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                 lengths: Optional[Tensor], gates: Tensor, h: Tensor, dy: Tensor,
                 dh_n: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of :func:`gru`: ``(dx, dw_ih, dw_hh, db_ih, db_hh, dh0)`` in PyTorch's layout."""
    w = gru_weights(w_ih, w_hh, b_ih, b_hh)
    dx, dwi, dwh, db, dh0 = _core.gru_backward(as_numpy(x), w._arrays, as_numpy(lengths),
                                               *_arrays(gates, h, dy, dh_n))
    # From the kernels' four gate columns r, z, n_x, n_h back to PyTorch's three.
    H = w_hh.shape[1]
    dwi, dwh, db = _tensors(dwi, dwh, db)
    return (torch.from_numpy(dx), dwi[: 3 * H].clone(), torch.cat([dwh[: 2 * H], dwh[3 * H:]]), db[: 3 * H].clone(),
            torch.cat([db[: 2 * H], db[3 * H:]]), torch.from_numpy(dh0))


@gru_backward.register_fake
def _(x, w_ih, w_hh, b_ih, b_hh, lengths, gates, h, dy, dh_n):
    H = w_hh.shape[1]
    return (x.new_empty(x.shape), w_ih.new_empty(w_ih.shape), w_hh.new_empty(w_hh.shape), x.new_empty((3 * H,)),
            x.new_empty((3 * H,)), x.new_empty((x.shape[1], H)))


def _h_state_setup(ctx, inputs, output):
    x, w_ih, w_hh, b_ih, b_hh, h0, lengths = inputs[:7]
    _y, _h_n, gates, h = output
    ctx.save_for_backward(x, w_ih, w_hh, b_ih, b_hh, lengths, gates, h)
    ctx.mark_non_differentiable(gates, h)
    ctx.set_materialize_grads(False)
    ctx.h0_given = h0 is not None
    ctx.extra = inputs[7:]


def _h_state_grads(ctx, dy, dh_n, backward):
    x, w_ih, w_hh, b_ih, b_hh, lengths, gates, h = ctx.saved_tensors
    dy = _zeros_like_if_none(dy, h[1:])
    dh_n = _zeros_like_if_none(dh_n, h[0])
    dx, dwi, dwh, dbi, dbh, dh0 = backward(x, w_ih, w_hh, b_ih, b_hh, lengths, gates, h, dy, dh_n, *ctx.extra)
    return (dx, dwi, dwh, dbi if b_ih is not None else None, dbh if b_hh is not None else None,
            dh0 if ctx.h0_given else None, None, *(None for _ in ctx.extra))


def _gru_grad(ctx, dy, dh_n, _dgates, _dh):
    return _h_state_grads(ctx, dy, dh_n, gru_backward)


gru.register_autograd(_gru_grad, setup_context=_h_state_setup)


def _gru_inference(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                  h0: Optional[Tensor], lengths: Optional[Tensor]) -> tuple[Tensor, Tensor]:
    """:func:`gru` without the saved gates and states: ``(y, h_n)``, not differentiable."""
    def run():
        w = gru_weights(w_ih, w_hh, b_ih, b_hh)
        return _core.gru_forward(as_numpy(x), w._arrays, *_arrays(h0, lengths), False)[:2]

    return _tensors(*_checked(
        lambda: _recurrent("seqkern::gru_inference", 3, x, w_ih, w_hh, b_ih, b_hh, (("h0", h0),), lengths), run,
        lengths))


gru_inference = torch.library.custom_op("seqkern::gru_inference", _gru_inference, mutates_args=())


@gru_inference.register_fake
def _(x, w_ih, w_hh, b_ih, b_hh, h0, lengths):
    T, B, D, H = _recurrent("seqkern::gru_inference", 3, x, w_ih, w_hh, b_ih, b_hh, (("h0", h0),), lengths)
    return x.new_empty((T, B, H)), x.new_empty((B, H))


# --- plain RNN -----------------------------------------------------------------------------------------------------

def _nonlinearity(relu: bool) -> str:
    return "relu" if relu else "tanh"


@torch.library.custom_op("seqkern::rnn", mutates_args=())
def rnn(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
        h0: Optional[Tensor], lengths: Optional[Tensor], relu: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """One plain RNN layer (PyTorch's ``nn.RNN``; tanh, or relu when ``relu``) over x (T, B, D):
    ``(y, h_n, gates, h)``; w_ih (H, D), w_hh (H, H), b_ih, b_hh (H,) or None."""
    def run():
        w = rnn_weights(w_ih, w_hh, b_ih, b_hh, _nonlinearity(relu))
        return _core.rnn_forward(as_numpy(x), w._arrays, *_arrays(h0, lengths), True, bool(relu))[:4]

    return _tensors(*_checked(
        lambda: _recurrent("seqkern::rnn", 1, x, w_ih, w_hh, b_ih, b_hh, (("h0", h0),), lengths), run, lengths))


@rnn.register_fake
def _(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, relu):
    T, B, D, H = _recurrent("seqkern::rnn", 1, x, w_ih, w_hh, b_ih, b_hh, (("h0", h0),), lengths)
    return x.new_empty((T, B, H)), x.new_empty((B, H)), x.new_empty((T, B, H)), x.new_empty((T + 1, B, H))


@torch.library.custom_op("seqkern::rnn_backward", mutates_args=())
def rnn_backward(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                 lengths: Optional[Tensor], gates: Tensor, h: Tensor, dy: Tensor, dh_n: Tensor,
                 relu: bool) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients of :func:`rnn`: ``(dx, dw_ih, dw_hh, db_ih, db_hh, dh0)`` (the two bias gradients are equal)."""
    w = rnn_weights(w_ih, w_hh, b_ih, b_hh, _nonlinearity(relu))
    dx, dwi, dwh, db, dh0 = _core.rnn_backward(as_numpy(x), w._arrays, as_numpy(lengths),
                                               *_arrays(gates, h, dy, dh_n), bool(relu))
    db = torch.from_numpy(db)
    return (*_tensors(dx, dwi, dwh), db, db.clone(), torch.from_numpy(dh0))


@rnn_backward.register_fake
def _(x, w_ih, w_hh, b_ih, b_hh, lengths, gates, h, dy, dh_n, relu):
    H = w_hh.shape[1]
    return (x.new_empty(x.shape), w_ih.new_empty(w_ih.shape), w_hh.new_empty(w_hh.shape), x.new_empty((H,)),
            x.new_empty((H,)), x.new_empty((x.shape[1], H)))


def _rnn_grad(ctx, dy, dh_n, _dgates, _dh):
    return _h_state_grads(ctx, dy, dh_n, rnn_backward)


rnn.register_autograd(_rnn_grad, setup_context=_h_state_setup)


def _rnn_inference(x: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Optional[Tensor], b_hh: Optional[Tensor],
                  h0: Optional[Tensor], lengths: Optional[Tensor], relu: bool) -> tuple[Tensor, Tensor]:
    """:func:`rnn` without the saved states: ``(y, h_n)``, not differentiable."""
    def run():
        w = rnn_weights(w_ih, w_hh, b_ih, b_hh, _nonlinearity(relu))
        return _core.rnn_forward(as_numpy(x), w._arrays, *_arrays(h0, lengths), False, bool(relu))[:2]

    return _tensors(*_checked(
        lambda: _recurrent("seqkern::rnn_inference", 1, x, w_ih, w_hh, b_ih, b_hh, (("h0", h0),), lengths), run,
        lengths))


rnn_inference = torch.library.custom_op("seqkern::rnn_inference", _rnn_inference, mutates_args=())


@rnn_inference.register_fake
def _(x, w_ih, w_hh, b_ih, b_hh, h0, lengths, relu):
    T, B, D, H = _recurrent("seqkern::rnn_inference", 1, x, w_ih, w_hh, b_ih, b_hh, (("h0", h0),), lengths)
    return x.new_empty((T, B, H)), x.new_empty((B, H))


INFERENCE_IMPLS = {"lstm": _lstm_inference, "gru": _gru_inference, "rnn": _rnn_inference}


# --- scaled dot-product attention ----------------------------------------------------------------------------------

def _check_attention(fn, q, k, v, mask, bias=None):
    _float(fn, "q", q)
    if q.dim() < 2:
        raise ValueError(f"{fn}: q must be (..., Lq, Dh), got shape {tuple(q.shape)}")
    _float(fn, "k", k, q, "q")
    _float(fn, "v", v, q, "q")
    # k's and v's leading dims are q's, except that the heads (the last leading dim, with two or
    # more) may divide q's: grouped-query attention.
    lead = tuple(q.shape[:-2])
    kv_lead = tuple(k.shape[:-2])
    grouped = (len(lead) >= 2 and len(kv_lead) == len(lead) and kv_lead[:-1] == lead[:-1] and kv_lead[-1] > 0
               and lead[-1] % kv_lead[-1] == 0)
    if k.dim() != q.dim() or (kv_lead != lead and not grouped) or k.shape[-1] != q.shape[-1]:
        raise ValueError(f"{fn}: k must have shape (..., Lk, Dh) = {(*lead, 'Lk', q.shape[-1])} (or fewer heads that "
                         f"divide q's), got {tuple(k.shape)}")
    if v.dim() != q.dim() or tuple(v.shape[:-2]) != kv_lead or v.shape[-2] != k.shape[-2]:
        raise ValueError(f"{fn}: v must have shape (..., Lk, Dv) = {(*kv_lead, k.shape[-2], 'Dv')}, got {tuple(v.shape)}")
    if mask is not None:
        _cpu(fn, "mask", mask)
        if mask.dtype != torch.bool:
            raise TypeError(f"{fn}: mask must be bool (True = attend), got {mask.dtype}")
    if bias is not None:
        _float(fn, "bias", bias, q, "q")


def _mask_array(mask):
    # A broadcast (expanded) mask is read in place by the kernel, never made contiguous.
    return None if mask is None else mask.detach().numpy()


@torch.library.custom_op("seqkern::attention", mutates_args=())
def attention(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], causal: bool,
              scale: float) -> tuple[Tensor, Tensor]:
    """Fused ``softmax(scale * q kᵀ, masked) v``: ``(out, lse)``.

    q (..., Lq, Dh), k (..., Lk, Dh), v (..., Lk, Dv) with the same leading dims; mask bool,
    broadcastable to (..., Lq, Lk), True = attend; ``causal``: query i sees keys j <= i. lse
    (..., Lq) is the base-2 log-sum-exp of each row's scores, what ``attention_backward`` needs.
    A row that sees no key gets zeros.
    """
    _check_attention("seqkern::attention", q, k, v, mask)
    # (mask, causal, bottom_right, kv_lengths, scale, bias, softcap, window left, right)
    out, lse = _core.attention_forward(*_arrays(q, k, v), _mask_array(mask), bool(causal), False, None, float(scale),
                                       None, 0.0, -1, -1)
    return _tensors(out, lse)


@attention.register_fake
def _(q, k, v, mask, causal, scale):
    _check_attention("seqkern::attention", q, k, v, mask)
    return q.new_empty((*q.shape[:-1], v.shape[-1])), q.new_empty(tuple(q.shape[:-1]))


@torch.library.custom_op("seqkern::attention_backward", mutates_args=())
def attention_backward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                       mask: Optional[Tensor], causal: bool, scale: float) -> tuple[Tensor, Tensor, Tensor]:
    """Gradients ``(dq, dk, dv)`` of :func:`attention`."""
    dq, dk, dv, _ = _core.attention_backward(*_arrays(q, k, v, out, lse, dout), _mask_array(mask), bool(causal), False,
                                             None, float(scale), None, 0.0, -1, -1, False)
    return _tensors(dq, *key_grads(dk, dv, tuple(k.shape)))


@attention_backward.register_fake
def _(q, k, v, out, lse, dout, mask, causal, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape)


def _attention_setup(ctx, inputs, output):
    q, k, v, mask, causal, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, mask)
    ctx.mark_non_differentiable(lse)
    ctx.set_materialize_grads(False)
    ctx.causal, ctx.scale = causal, scale


def _attention_grad(ctx, dout, _dlse):
    q, k, v, out, lse, mask = ctx.saved_tensors
    dq, dk, dv = attention_backward(q, k, v, out, lse, _zeros_like_if_none(dout, out), mask, ctx.causal, ctx.scale)
    return dq, dk, dv, None, None, None


attention.register_autograd(_attention_grad, setup_context=_attention_setup)


@torch.library.custom_op("seqkern::attention_bias", mutates_args=())
def attention_bias(q: Tensor, k: Tensor, v: Tensor, mask: Optional[Tensor], bias: Tensor, causal: bool,
                   scale: float) -> tuple[Tensor, Tensor]:
    """:func:`attention` with an additive bias: ``softmax(scale * q kᵀ + bias, masked) v``, ``(out, lse)``.

    bias: q's dtype, broadcastable to (..., Lq, Lk) (read in place along broadcast dims; -inf
    masks a key). Differentiable in q, k, v and bias (dbias in bias's own shape).
    """
    _check_attention("seqkern::attention_bias", q, k, v, mask, bias)
    out, lse = _core.attention_forward(*_arrays(q, k, v), _mask_array(mask), bool(causal), False, None, float(scale),
                                       bias.detach().numpy(), 0.0, -1, -1)
    return _tensors(out, lse)


@attention_bias.register_fake
def _(q, k, v, mask, bias, causal, scale):
    _check_attention("seqkern::attention_bias", q, k, v, mask, bias)
    return q.new_empty((*q.shape[:-1], v.shape[-1])), q.new_empty(tuple(q.shape[:-1]))


@torch.library.custom_op("seqkern::attention_bias_backward", mutates_args=())
def attention_bias_backward(q: Tensor, k: Tensor, v: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                            mask: Optional[Tensor], bias: Tensor, causal: bool,
                            scale: float) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients ``(dq, dk, dv, dbias)`` of :func:`attention_bias`."""
    dq, dk, dv, full = _core.attention_backward(*_arrays(q, k, v, out, lse, dout), _mask_array(mask), bool(causal),
                                                False, None, float(scale), bias.detach().numpy(), 0.0, -1, -1, True)
    return _tensors(dq, *key_grads(dk, dv, tuple(k.shape)), np.ascontiguousarray(sum_to(full, tuple(bias.shape))))


@attention_bias_backward.register_fake
def _(q, k, v, out, lse, dout, mask, bias, causal, scale):
    return q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape), bias.new_empty(bias.shape)


def _attention_bias_setup(ctx, inputs, output):
    q, k, v, mask, bias, causal, scale = inputs
    out, lse = output
    ctx.save_for_backward(q, k, v, out, lse, mask, bias)
    ctx.mark_non_differentiable(lse)
    ctx.set_materialize_grads(False)
    ctx.causal, ctx.scale = causal, scale


def _attention_bias_grad(ctx, dout, _dlse):
    q, k, v, out, lse, mask, bias = ctx.saved_tensors
    dq, dk, dv, db = attention_bias_backward(q, k, v, out, lse, _zeros_like_if_none(dout, out), mask, bias,
                                             ctx.causal, ctx.scale)
    return dq, dk, dv, None, db, None, None


attention_bias.register_autograd(_attention_bias_grad, setup_context=_attention_bias_setup)


# --- additive attention --------------------------------------------------------------------------------------------

def _check_additive(fn, q, k, v, w_q, w_k, w_v, mask):
    _float(fn, "q", q)
    _ndim(fn, "q", q, 3, "(B, Lq, Dq)")
    B, Lq, Dq = q.shape
    for name, t in (("k", k), ("v", v)):
        _float(fn, name, t, q, "q")
        _ndim(fn, name, t, 3, f"(B, Lk, D{name})")
    if k.shape[0] != B or v.shape[0] != B or v.shape[1] != k.shape[1]:
        raise ValueError(f"{fn}: k (B, Lk, Dk) and v (B, Lk, Dv) must agree with q's B = {B}, "
                         f"got {tuple(k.shape)} and {tuple(v.shape)}")
    for name, t in (("w_q", w_q), ("w_k", w_k), ("w_v", w_v)):
        _float(fn, name, t, q, "q")
    _ndim(fn, "w_q", w_q, 2, "(A, Dq)")
    A = w_q.shape[0]
    _shape(fn, "w_q", w_q, (A, Dq), "(A, Dq)")
    _shape(fn, "w_k", w_k, (A, k.shape[2]), "(A, Dk)")
    _shape(fn, "w_v", w_v, (A,), "(A,)")
    if mask is not None:
        _cpu(fn, "mask", mask)
        if mask.dtype != torch.bool:
            raise TypeError(f"{fn}: mask must be bool (True = attend), got {mask.dtype}")
    return B, Lq, k.shape[1], A


@torch.library.custom_op("seqkern::additive_attention", mutates_args=())
def additive_attention(q: Tensor, k: Tensor, v: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor,
                       mask: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Additive (Bahdanau) attention ``score_ij = w_v · tanh(w_q q_i + w_k k_j)``: ``(out, qp, kp, lse)``.

    q (B, Lq, Dq), k (B, Lk, Dk), v (B, Lk, Dv), w_q (A, Dq), w_k (A, Dk), w_v (A,); mask bool
    broadcastable to (B, Lq, Lk). qp (B, Lq, A), kp (B, Lk, A) and lse (B, Lq) are saved for backward.
    """
    _check_additive("seqkern::additive_attention", q, k, v, w_q, w_k, w_v, mask)
    out = _core.additive_attention_forward(*_arrays(q, k, v, w_q, w_k, w_v), _mask_array(mask), None)
    return _tensors(*out)


@additive_attention.register_fake
def _(q, k, v, w_q, w_k, w_v, mask):
    B, Lq, Lk, A = _check_additive("seqkern::additive_attention", q, k, v, w_q, w_k, w_v, mask)
    return q.new_empty((B, Lq, v.shape[2])), q.new_empty((B, Lq, A)), q.new_empty((B, Lk, A)), q.new_empty((B, Lq))


@torch.library.custom_op("seqkern::additive_attention_backward", mutates_args=())
def additive_attention_backward(q: Tensor, k: Tensor, v: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor, qp: Tensor,
                                kp: Tensor, out: Tensor, lse: Tensor, dout: Tensor,
                                mask: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Gradients ``(dq, dk, dv, dw_q, dw_k, dw_v)`` of :func:`additive_attention`."""
    grads = _core.additive_attention_backward(*_arrays(q, k, v, w_q, w_k, w_v, qp, kp, out, lse, dout),
                                              _mask_array(mask), None)
    return _tensors(*grads)


@additive_attention_backward.register_fake
def _(q, k, v, w_q, w_k, w_v, qp, kp, out, lse, dout, mask):
    return tuple(t.new_empty(t.shape) for t in (q, k, v, w_q, w_k, w_v))


def _additive_setup(ctx, inputs, output):
    out, qp, kp, lse = output
    ctx.save_for_backward(*inputs[:6], qp, kp, out, lse, inputs[6])
    ctx.mark_non_differentiable(qp, kp, lse)
    ctx.set_materialize_grads(False)


def _additive_grad(ctx, dout, _dqp, _dkp, _dlse):
    q, k, v, w_q, w_k, w_v, qp, kp, out, lse, mask = ctx.saved_tensors
    grads = additive_attention_backward(q, k, v, w_q, w_k, w_v, qp, kp, out, lse, _zeros_like_if_none(dout, out), mask)
    return (*grads, None)


additive_attention.register_autograd(_additive_grad, setup_context=_additive_setup)


# --- attention pooling ---------------------------------------------------------------------------------------------

def _check_pool(fn, h, w, b, w_s, lengths):
    _float(fn, "h", h)
    _ndim(fn, "h", h, 3, "(T, B, H)")
    T, B, H = h.shape
    for name, t in (("w", w), ("b", b), ("w_s", w_s)):
        _float(fn, name, t, h, "h")
    _ndim(fn, "w", w, 2, "(A, H)")
    A = w.shape[0]
    _shape(fn, "w", w, (A, H), "(A, H)")
    _shape(fn, "b", b, (A,), "(A,)")
    _shape(fn, "w_s", w_s, (A,), "(A,)")
    _lengths(fn, lengths, B)
    return T, B, H, A


@torch.library.custom_op("seqkern::attention_pool", mutates_args=())
def attention_pool(h: Tensor, w: Tensor, b: Tensor, w_s: Tensor,
                   lengths: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor]:
    """Attention pooling over time-major h (T, B, H): ``(context (B, H), alpha (T, B), u (T, B, A))``.

    ``u_t = tanh(h_t wᵀ + b)``, ``alpha = softmax_t(u_t · w_s)`` over t < lengths[b],
    ``context = Σ_t alpha_t h_t``; w (A, H), b and w_s (A,). alpha is differentiable, u is saved.
    """
    _check_pool("seqkern::attention_pool", h, w, b, w_s, lengths)
    return _tensors(*_core.attention_pool_forward(*_arrays(h, w, b, w_s, lengths)))


@attention_pool.register_fake
def _(h, w, b, w_s, lengths):
    T, B, H, A = _check_pool("seqkern::attention_pool", h, w, b, w_s, lengths)
    return h.new_empty((B, H)), h.new_empty((T, B)), h.new_empty((T, B, A))


@torch.library.custom_op("seqkern::attention_pool_backward", mutates_args=())
def attention_pool_backward(h: Tensor, w: Tensor, w_s: Tensor, u: Tensor, alpha: Tensor, dcontext: Tensor,
                            lengths: Optional[Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Gradients ``(dh, dw, db, dw_s)`` of :func:`attention_pool` with respect to its context."""
    return _tensors(*_core.attention_pool_backward(*_arrays(h, w, w_s, u, alpha, dcontext, lengths)))


@attention_pool_backward.register_fake
def _(h, w, w_s, u, alpha, dcontext, lengths):
    return h.new_empty(h.shape), w.new_empty(w.shape), w.new_empty((w.shape[0],)), w_s.new_empty(w_s.shape)


def _pool_setup(ctx, inputs, output):
    h, w, b, w_s, lengths = inputs
    context, alpha, u = output
    ctx.save_for_backward(h, w, b, w_s, u, alpha, lengths)
    ctx.mark_non_differentiable(u)
    ctx.set_materialize_grads(False)


def _pool_grad(ctx, dcontext, dalpha, _du):
    h, w, b, w_s, u, alpha, lengths = ctx.saved_tensors
    dcontext = _zeros_like_if_none(dcontext, h[0])
    if dalpha is not None:
        # The kernel's backward takes dcontext only; a gradient on alpha goes through the softmax
        # and the projection with torch ops on the saved tensors.
        # alpha is 0 past each row's length, so is s_grad: no mask needed.
        s_grad = alpha * (dalpha - (alpha * dalpha).sum(0, keepdim=True))  # dL/dscore (T, B)
        du = s_grad[..., None] * w_s  # (T, B, A)
        da = du * (1 - u * u)
        dh_a = da @ w
        dw_a = torch.einsum("tba,tbh->ah", da, h)
        db_a = da.sum((0, 1))
        dws_a = torch.einsum("tb,tba->a", s_grad, u)
    dh, dw, db, dws = attention_pool_backward(h, w, w_s, u, alpha, dcontext, lengths)
    if dalpha is not None:
        dh, dw, db, dws = dh + dh_a, dw + dw_a, db + db_a, dws + dws_a
    return dh, dw, db, dws, None


attention_pool.register_autograd(_pool_grad, setup_context=_pool_setup)
