"""Drop-in modules: :class:`LSTM`, :class:`GRU` and :class:`RNN` with ``torch.nn``'s constructor
arguments, parameter names and state-dict keys; :func:`scaled_dot_product_attention`,
:func:`additive_attention` and :class:`AttentionPool`.

Layers and directions are composed here from the single-layer ops: the reverse direction runs
every sequence reversed within its own length (an index per row), as ``torch.nn`` does.
"""

from __future__ import annotations

import math
import numbers

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import _ops  # registers torch.ops.seqkern.*

__all__ = ["LSTM", "GRU", "RNN", "AttentionPool", "scaled_dot_product_attention", "additive_attention"]

_seqkern = torch.ops.seqkern


def _direct(x: Tensor) -> bool:
    """Whether an inference op's implementation may be called without the dispatcher: eager mode,
    a plain tensor, no dispatch mode or functorch transform active. The op has no autograd formula,
    so skipping the dispatcher changes nothing but the per-call cost."""
    return (type(x) is Tensor and not torch.compiler.is_compiling() and _dispatch_stack_len() == 0
            and not _functorch_wrapped(x))


# Private PyTorch helpers behind _direct; without them (another PyTorch version) the dispatcher is used.
_dispatch_stack_len = getattr(torch._C, "_len_torch_dispatch_stack", lambda: 1)
_functorch_wrapped = getattr(getattr(torch._C, "_functorch", None), "is_functorch_wrapped_tensor", lambda x: True)


def _op(name: str, grad: bool, x: Tensor):
    if grad:
        return getattr(_seqkern, name)
    return _ops.INFERENCE_IMPLS[name] if _direct(x) else getattr(_seqkern, name + "_inference")


def _reverse_index(T: int, lengths: Tensor) -> Tensor:
    """(T, B) time index that reverses each column's first lengths[b] steps and leaves the
    padding in place; it is its own inverse."""
    t = torch.arange(T)[:, None]
    L = lengths[None, :]
    return torch.where(t < L, L - 1 - t, t)


def _reverse(x: Tensor, index: Tensor | None) -> Tensor:
    if index is None:
        return x.flip(0)
    return x.gather(0, index[:, :, None].expand(x.shape))


class _RecurrentBase(torch.nn.Module):
    """What LSTM, GRU and RNN share: parameters under ``torch.nn``'s names, PackedSequence,
    batch_first and unbatched input, layers, directions and the dropout between layers. A
    subclass sets ``_gates`` and ``_states`` and implements ``_run`` (one layer and direction, with
    the op that keeps what the backward needs when ``grad``, else the inference op)."""

    _gates = 1
    _states = 1  # 2 for the LSTM: (h, c)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        super().__init__()
        name = type(self).__name__
        for arg, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v <= 0:
                raise ValueError(f"{name}: {arg} must be a positive int, got {v!r}")
        if isinstance(dropout, bool) or not isinstance(dropout, numbers.Number) or not 0 <= dropout <= 1:
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"{name}: the seqkern kernels run on the CPU only, got device {device}")
        if dtype is not None and dtype not in (torch.float32, torch.float64):
            raise TypeError(f"{name}: dtype must be torch.float32 or torch.float64, got {dtype}")
        self.input_size, self.hidden_size, self.num_layers = int(input_size), int(hidden_size), int(num_layers)
        self.bias, self.batch_first, self.bidirectional = bool(bias), bool(batch_first), bool(bidirectional)
        self.dropout = float(dropout)
        self._sfx = ("", "_reverse") if self.bidirectional else ("",)
        kw = {"device": device, "dtype": dtype}
        G, H = self._gates, self.hidden_size
        for k in range(self.num_layers):
            d_in = self.input_size if k == 0 else H * len(self._sfx)
            for s in self._sfx:
                sfx = f"_l{k}{s}"
                self.register_parameter("weight_ih" + sfx, torch.nn.Parameter(torch.empty(G * H, d_in, **kw)))
                self.register_parameter("weight_hh" + sfx, torch.nn.Parameter(torch.empty(G * H, H, **kw)))
                if self.bias:
                    self.register_parameter("bias_ih" + sfx, torch.nn.Parameter(torch.empty(G * H, **kw)))
                    self.register_parameter("bias_hh" + sfx, torch.nn.Parameter(torch.empty(G * H, **kw)))
                self._extra_parameters(sfx, kw)
        self.reset_parameters()

    def _extra_parameters(self, sfx: str, kw: dict) -> None:
        pass

    def reset_parameters(self) -> None:
        """``torch.nn``'s init: every parameter uniform in ±1/√hidden_size."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        with torch.no_grad():
            for p in self.parameters():
                p.uniform_(-bound, bound)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False), ("dropout", 0.0),
                              ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        return s

    def _weights(self, sfx: str, names=("weight_ih", "weight_hh", "bias_ih", "bias_hh")) -> list:
        """The parameters of one layer and direction, None where absent (read from ``_parameters``
        directly: ``Module.__getattr__`` would cost more than a small kernel call)."""
        p = self._parameters
        return [p.get(n + sfx) for n in names]

    def _check_input(self, x: Tensor, dims: tuple) -> None:
        name = type(self).__name__
        if not isinstance(x, Tensor):
            raise TypeError(f"{name}: input must be a Tensor or PackedSequence, got {type(x).__name__}")
        w = self._parameters["weight_ih_l0"]
        if not x.is_cpu:
            raise ValueError(f"{name}: input must be on the CPU, got device {x.device}")
        if x.dtype != w.dtype:
            raise TypeError(f"{name}: input must be {w.dtype}, like the parameters, got {x.dtype}")
        if x.dim() not in dims or x.shape[-1] != self.input_size:
            want = " or ".join(f"{d}-D" for d in dims)
            raise ValueError(f"{name}: input must be {want} with last dim input_size = {self.input_size}, "
                             f"got shape {tuple(x.shape)}")

    def _initial(self, hx, B: int, unbatched: bool, permute: Tensor | None):
        """The initial states as a tuple of ``_states`` tensors (L*dirs, B, H), or Nones."""
        if hx is None:
            return (None,) * self._states
        hs = tuple(hx) if self._states > 1 else (hx,)
        name = type(self).__name__
        want = (self.num_layers * len(self._sfx), B, self.hidden_size)
        out = []
        for i, h in enumerate(hs):
            if unbatched:
                h = h.unsqueeze(1)
            if tuple(h.shape) != want:
                which = ("h_0", "c_0")[i] if self._states > 1 else "hx"
                raise ValueError(f"{name}: {which} must have shape {want}, got {tuple(h.shape)}")
            out.append(h if permute is None else h.index_select(1, permute))
        return tuple(out)

    def forward(self, input, hx=None):
        """Run every layer and direction; returns ``(output, h_n)`` (``(output, (h_n, c_n))`` for the LSTM)
        with ``torch.nn``'s shapes, a PackedSequence output for a PackedSequence input."""
        packed = isinstance(input, PackedSequence)
        unbatched = False
        sorted_idx = unsorted_idx = None
        if packed:
            data, batch_sizes, sorted_idx, unsorted_idx = input
            self._check_input(data, (2,))
            x, lengths = pad_packed_sequence(PackedSequence(data, batch_sizes))
        else:
            self._check_input(input, (2, 3))
            x, lengths = input, None
            unbatched = x.dim() == 2
            if unbatched:
                x = x.unsqueeze(1)
            elif self.batch_first:
                x = x.transpose(0, 1)
        T, B = x.shape[0], x.shape[1]
        states = self._initial(hx, B, unbatched, sorted_idx)
        # Without gradients the kernels need not keep the gates and states for a backward.
        grad = torch.is_grad_enabled() and (
            x.requires_grad or any(p.requires_grad for p in self._parameters.values())
            or any(s is not None and s.requires_grad for s in states))
        rev = None if lengths is None or not self.bidirectional else _reverse_index(T, lengths)
        finals = [[] for _ in range(self._states)]
        for k in range(self.num_layers):
            if k > 0 and self.dropout > 0 and self.training:
                x = torch.nn.functional.dropout(x, self.dropout, True)
            outs = []
            for j, s in enumerate(self._sfx):
                i = k * len(self._sfx) + j
                xs = x if j == 0 else _reverse(x, rev)
                init = tuple(None if st is None else st[i] for st in states)
                y, *last = self._run(f"_l{k}{s}", xs, init, lengths, grad)
                outs.append(y if j == 0 else _reverse(y, rev))
                for f, v in zip(finals, last):
                    f.append(v)
            x = outs[0] if len(outs) == 1 else torch.cat(outs, 2)
        finals = [f[0].unsqueeze(0) if len(f) == 1 else torch.stack(f) for f in finals]
        if unsorted_idx is not None:
            finals = [f.index_select(1, unsorted_idx) for f in finals]
        if packed:
            out = PackedSequence(pack_padded_sequence(x, lengths).data, batch_sizes, sorted_idx, unsorted_idx)
        elif unbatched:
            out = x.squeeze(1)
            finals = [f.squeeze(1) for f in finals]
        else:
            out = x.transpose(0, 1) if self.batch_first else x
        return out, (tuple(finals) if self._states > 1 else finals[0])


class LSTM(_RecurrentBase):
    """``torch.nn.LSTM`` on the seqkern kernels: the same arguments, parameters, state-dict keys,
    inputs (tensor, batch-first, unbatched or PackedSequence) and outputs ``(output, (h_n, c_n))``.

    Parameters
    ----------
    input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional, device, dtype
        As ``torch.nn.LSTM``; CPU and float32/float64 only. ``proj_size`` is not supported.
    peephole : bool
        Adds diagonal peepholes ``peephole_l{k}[_reverse]`` (3, hidden_size), rows i, f, o:
        ``i = σ(a_i + p_i ⊙ c_{t-1})``, ``f = σ(a_f + p_f ⊙ c_{t-1})``, ``o = σ(a_o + p_o ⊙ c_t)``;
        initialised to zero, so the layer starts as a plain LSTM.

    A state dict saved from ``torch.nn.LSTM`` loads unchanged (``peephole=False``), and this
    module's state dict loads into ``torch.nn.LSTM``. Results do not depend on the thread count.
    """

    _gates = 4
    _states = 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, peephole: bool = False) -> None:
        if proj_size:
            raise NotImplementedError(f"LSTM: proj_size must be 0 (projections are not implemented), got {proj_size}")
        self.peephole = bool(peephole)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)

    def _extra_parameters(self, sfx, kw):
        if self.peephole:
            self.register_parameter("peephole" + sfx, torch.nn.Parameter(torch.empty(3, self.hidden_size, **kw)))

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.peephole:
            with torch.no_grad():
                for name, p in self.named_parameters():
                    if name.startswith("peephole"):
                        p.zero_()

    def extra_repr(self) -> str:
        return super().extra_repr() + (", peephole=True" if self.peephole else "")

    def _run(self, sfx, x, init, lengths, grad):
        op = _op("lstm", grad, x)
        w = self._weights(sfx, ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "peephole"))
        y, h_n, c_n, *_ = op(x, *w, init[0], init[1], lengths)
        return y, h_n, c_n


class GRU(_RecurrentBase):
    """``torch.nn.GRU`` on the seqkern kernels: the same arguments, parameters, state-dict keys,
    inputs and outputs ``(output, h_n)``. CPU and float32/float64 only."""

    _gates = 3

    def _run(self, sfx, x, init, lengths, grad):
        op = _op("gru", grad, x)
        y, h_n, *_ = op(x, *self._weights(sfx), init[0], lengths)
        return y, h_n


class RNN(_RecurrentBase):
    """``torch.nn.RNN`` (Elman, ``nonlinearity`` "tanh" or "relu") on the seqkern kernels: the same
    arguments, parameters, state-dict keys, inputs and outputs ``(output, h_n)``."""

    _gates = 1

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         device, dtype)

    def extra_repr(self) -> str:
        return super().extra_repr() + (", nonlinearity='relu'" if self.nonlinearity == "relu" else "")

    def _run(self, sfx, x, init, lengths, grad):
        op = _op("rnn", grad, x)
        y, h_n, *_ = op(x, *self._weights(sfx), init[0], lengths, self.nonlinearity == "relu")
        return y, h_n


def _broadcastable(attn_mask: Tensor, lead: tuple, Lq: int, Lk: int) -> None:
    try:
        torch.broadcast_shapes(tuple(attn_mask.shape), (*lead, Lq, Lk))
        ok = attn_mask.dim() <= len(lead) + 2
    except RuntimeError:
        ok = False
    if not ok:
        raise ValueError(f"scaled_dot_product_attention: attn_mask of shape {tuple(attn_mask.shape)} does not "
                         f"broadcast to {(*lead, Lq, Lk)}")


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask: Tensor | None = None,
                                 dropout_p: float = 0.0, is_causal: bool = False, scale: float | None = None,
                                 enable_gqa: bool = False) -> Tensor:
    """``torch.nn.functional.scaled_dot_product_attention`` on the fused seqkern kernel.

    query (..., L, E), key (..., S, E), value (..., S, Ev), the same leading dims (with
    ``enable_gqa``, key and value may have fewer heads, dim -3, dividing query's: query head h
    reads key head h // (Hq / Hkv), never repeated in memory); CPU float32/64. ``attn_mask``: bool
    (True = attend) or floating point, added to the scaled scores (-inf masks a key; differentiable,
    its gradient in its own shape), broadcastable to (..., L, S) and read in place.
    ``is_causal``: query i sees keys j <= i (top-left, as PyTorch); it may be combined with
    ``attn_mask``. ``scale`` defaults to 1/√E. Unlike PyTorch, a query that sees no key gets zeros
    (and zero gradients), not NaN.

    Not supported: ``dropout_p`` > 0 (``NotImplementedError``).
    """
    fn = "scaled_dot_product_attention"
    if dropout_p:
        raise NotImplementedError(f"{fn}: dropout_p must be 0 (attention dropout is not implemented), got {dropout_p}")
    if query.dim() < 2:
        raise ValueError(f"{fn}: query must be (..., L, E), got shape {tuple(query.shape)}")
    if not enable_gqa and key.dim() == query.dim() and key.dim() >= 3 and key.shape[-3] != query.shape[-3]:
        raise ValueError(f"{fn}: key has {key.shape[-3]} heads and query {query.shape[-3]}; pass enable_gqa=True "
                         "for grouped-query attention")
    if scale is None:
        scale = 1.0 / math.sqrt(query.shape[-1]) if query.shape[-1] > 0 else 1.0
    lead, Lq, Lk = tuple(query.shape[:-2]), query.shape[-2], key.shape[-2]
    if attn_mask is None:
        return _seqkern.attention(query, key, value, None, bool(is_causal), float(scale))[0]
    _broadcastable(attn_mask, lead, Lq, Lk)
    if attn_mask.dtype == torch.bool:
        return _seqkern.attention(query, key, value, attn_mask.expand(*lead, Lq, Lk), bool(is_causal), float(scale))[0]
    if not attn_mask.is_floating_point():
        raise TypeError(f"{fn}: attn_mask must be bool or floating point, got {attn_mask.dtype}")
    return _seqkern.attention_bias(query, key, value, None, attn_mask, bool(is_causal), float(scale))[0]


def additive_attention(query: Tensor, key: Tensor, value: Tensor, w_q: Tensor, w_k: Tensor, w_v: Tensor,
                       mask: Tensor | None = None) -> Tensor:
    """Additive (Bahdanau) attention: ``score_ij = w_v · tanh(w_q q_i + w_k k_j)``, softmax over j.

    query (B, Lq, Dq), key (B, Lk, Dk), value (B, Lk, Dv), w_q (A, Dq), w_k (A, Dk), w_v (A,);
    ``mask`` bool broadcastable to (B, Lq, Lk), True = attend. Returns (B, Lq, Dv).
    """
    out, *_ = _seqkern.additive_attention(query, key, value, w_q, w_k, w_v, mask)
    return out


class AttentionPool(torch.nn.Module):
    """Attention pooling of a sequence of states into one vector per row:
    ``u_t = tanh(W h_t + b)``, ``alpha = softmax_t(u_t · w_s)`` over each row's valid steps,
    ``context = Σ_t alpha_t h_t``.

    Parameters
    ----------
    hidden_size : int (H), the size of each state
    attention_size : int (A), the size of the projection
    batch_first : bool, input (B, T, H) instead of (T, B, H)

    Parameters ``weight`` (A, H), ``bias`` (A,), ``score`` (A,). ``forward(h, lengths=None)``
    takes a tensor (with optional int64 ``lengths`` (B,)) or a PackedSequence, and returns
    ``(context (B, H), alpha)`` with alpha (T, B), or (B, T) when ``batch_first``.
    """

    def __init__(self, hidden_size: int, attention_size: int, batch_first: bool = False, device=None,
                 dtype=None) -> None:
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.hidden_size, self.attention_size, self.batch_first = int(hidden_size), int(attention_size), bool(batch_first)
        self.weight = torch.nn.Parameter(torch.empty(self.attention_size, self.hidden_size, **kw))
        self.bias = torch.nn.Parameter(torch.empty(self.attention_size, **kw))
        self.score = torch.nn.Parameter(torch.empty(self.attention_size, **kw))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Weight and score uniform in ±1/√fan_in (as ``nn.Linear``), bias zero."""
        with torch.no_grad():
            self.weight.uniform_(-1 / math.sqrt(self.hidden_size), 1 / math.sqrt(self.hidden_size))
            self.score.uniform_(-1 / math.sqrt(self.attention_size), 1 / math.sqrt(self.attention_size))
            self.bias.zero_()

    def extra_repr(self) -> str:
        return f"{self.hidden_size}, {self.attention_size}" + (", batch_first=True" if self.batch_first else "")

    def forward(self, h, lengths: Tensor | None = None):
        if isinstance(h, PackedSequence):
            if lengths is not None:
                raise ValueError("AttentionPool: lengths must be None with a PackedSequence (it has its own)")
            h, lengths = pad_packed_sequence(h)
        elif self.batch_first:
            h = h.transpose(0, 1)
        if lengths is not None:
            lengths = torch.as_tensor(lengths, dtype=torch.int64)
        context, alpha, _ = _seqkern.attention_pool(h, self.weight, self.bias, self.score, lengths)
        return context, (alpha.transpose(0, 1) if self.batch_first else alpha)
