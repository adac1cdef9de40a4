"""Recurrent layers: :class:`LSTM`, :class:`GRU` and :class:`SimpleRNN`, stacked and optionally
bidirectional.

All share :class:`_Recurrent`, which runs the layers and directions, the dropout between layers,
the reverse direction (each sequence reversed within its length), ``return_sequences``, the
config and the PyTorch import; a cell class only says how many gate blocks it has, which biases
it keeps, and which kernels it calls.
"""

from __future__ import annotations

import numpy as np

import seqkern

from .layers import Layer, _np, _rng, _size, glorot_uniform, orthogonal

__all__ = ["LSTM", "GRU", "SimpleRNN"]


def _reverse_index(T: int, lengths: np.ndarray | None, B: int):
    """Index into a (T, B, F) array viewed as (T*B, F) that reverses every column's first
    lengths[b] steps and leaves the padding in place (None: no lengths, reverse everything). The
    permutation is its own inverse, so the same index maps back."""
    if lengths is None:
        return None
    t = np.arange(T)[:, None]
    L = np.asarray(lengths)[None, :]
    return (np.where(t < L, L - 1 - t, t) * B + np.arange(B)[None, :]).reshape(-1)


def _reverse(a: np.ndarray, index) -> np.ndarray:
    """``a`` (T, B, F) with each sequence reversed within its length (see _reverse_index)."""
    if index is None:
        return np.ascontiguousarray(a[::-1])
    T, B, F = a.shape
    return np.take(a.reshape(T * B, F), index, axis=0).reshape(T, B, F)


def _summed_torch_bias(state_dict, sfx: str, size: int) -> np.ndarray:
    """``bias_ih{sfx} + bias_hh{sfx}`` of a PyTorch state dict in float64, a missing one counting as
    zeros: the one bias of the LSTM and the plain RNN."""
    b = np.zeros(size)
    for name in (f"bias_ih{sfx}", f"bias_hh{sfx}"):
        if name in state_dict:
            b = b + _np(state_dict[name]).astype(np.float64)
    return b


def _dirs(bidirectional) -> tuple:
    return ("", "_reverse") if bidirectional else ("",)


class _Recurrent(Layer):
    """The stacked, bidirectional machinery shared by the recurrent layers.

    A subclass sets ``gates`` (gate blocks of H rows in ``w_ih``/``w_hh``) and implements the
    per-direction parts, each named by the parameter suffix ``sfx`` = ``_l{k}`` or
    ``_l{k}_reverse``: ``_bias_shapes`` (its parameters besides the two weights), ``_add_biases``
    (their initial values), ``_run`` (the forward kernel: ``(y, h_n, cache)``), ``_run_backward``
    (the backward kernel: ``dx`` and the parameter gradients by name), ``_torch_biases`` (its
    biases from a PyTorch state dict) and ``_cell_config`` (its own config entries).
    """

    gates = 0

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, *, dropout=0.0,
                 return_sequences=False, dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bidirectional = int(num_layers), bool(bidirectional)
        self.dropout = float(dropout)
        self.return_sequences = bool(return_sequences)
        self._gen = _rng(seed)
        H, G = self.hidden_size, self.gates
        self.dirs = _dirs(self.bidirectional)
        for k in range(self.num_layers):
            d_in = self.input_size if k == 0 else H * len(self.dirs)
            for s in self.dirs:
                self._add(f"w_ih_l{k}{s}", glorot_uniform(self._gen, d_in, G * H, (G * H, d_in), self.dtype))
                self._add(f"w_hh_l{k}{s}", orthogonal(self._gen, H, G * H, self.dtype).T)
                self._add_biases(f"_l{k}{s}")

    @property
    def output_size(self) -> int:
        return self.hidden_size * len(self.dirs)

    def _cell_config(self) -> dict:
        return {}

    def get_config(self):
        return {"class": type(self).__name__, "input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bidirectional": self.bidirectional, **self._cell_config(),
                "dropout": self.dropout, "return_sequences": self.return_sequences, "dtype": self.dtype.name}

    @classmethod
    def param_shapes(cls, config):
        d_in, H, layers = _size(config, "input_size"), _size(config, "hidden_size"), _size(config, "num_layers")
        dirs = _dirs(config.get("bidirectional"))
        for k in range(layers):
            for s in dirs:
                yield f"w_ih_l{k}{s}", (cls.gates * H, d_in if k == 0 else H * len(dirs))
                yield f"w_hh_l{k}{s}", (cls.gates * H, H)
                yield from cls._bias_shapes(f"_l{k}{s}", H, config)

    def forward(self, x, lengths=None, training=False, cache=True):
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__}: x must have shape (T, B, {self.input_size}), got {x.shape}")
        T, B, _ = x.shape
        lengths = None if lengths is None else np.ascontiguousarray(lengths, dtype=np.int64)
        rev = _reverse_index(T, lengths, B) if self.bidirectional else None
        all_caches, masks = [], []
        h_last = []
        for k in range(self.num_layers):
            mask = None
            if k > 0 and training and self.dropout > 0:
                keep = 1.0 - self.dropout
                mask = (self._gen.random(x.shape, dtype=np.float32) < keep).astype(self.dtype) / self.dtype.type(keep)
                x = x * mask
            masks.append(mask)
            outs, caches, h_last = [], [], []
            for s in self.dirs:
                xs = x if s == "" else _reverse(x, rev)
                y, h_n, c = self._run(f"_l{k}{s}", xs, lengths, cache)
                outs.append(y if s == "" else _reverse(y, rev))
                caches.append(c)
                h_last.append(h_n)
            all_caches.append(caches)
            x = outs[0] if len(outs) == 1 else np.concatenate(outs, axis=2)
        if cache:
            self._rev, self._caches, self._masks = rev, all_caches, masks
        if self.return_sequences:
            return x
        return h_last[0] if len(h_last) == 1 else np.concatenate(h_last, axis=1)

    def backward(self, grad):
        H, rev = self.hidden_size, self._rev
        grad = np.asarray(grad, dtype=self.dtype)
        dx = None
        for k in reversed(range(self.num_layers)):
            parts = []
            for j, s in enumerate(self.dirs):
                dy = dh_n = None
                if k == self.num_layers - 1 and not self.return_sequences:
                    dh_n = np.ascontiguousarray(grad[:, j * H : (j + 1) * H])
                else:
                    dy = grad[..., j * H : (j + 1) * H]
                    dy = np.ascontiguousarray(dy) if s == "" else _reverse(np.ascontiguousarray(dy), rev)
                d_x, param_grads = self._run_backward(f"_l{k}{s}", self._caches[k][j], dy, dh_n)
                for name, g in param_grads.items():
                    self._g[name] += g
                parts.append(d_x if s == "" else _reverse(d_x, rev))
            dx = parts[0] if len(parts) == 1 else parts[0] + parts[1]
            if self._masks[k] is not None:
                dx = dx * self._masks[k]
            grad = dx
        self._caches = []
        return dx

    def load_torch(self, state_dict):
        """Copy a PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` state dict (``weight_ih_l{k}[_reverse]``,
        ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``; tensors or arrays) into this layer.
        The torch module must have the same sizes and ``batch_first`` does not matter."""
        vals = {}
        for k in range(self.num_layers):
            for s in self.dirs:
                sfx = f"_l{k}{s}"
                vals[f"w_ih{sfx}"] = _np(state_dict[f"weight_ih{sfx}"])
                vals[f"w_hh{sfx}"] = _np(state_dict[f"weight_hh{sfx}"])
                vals.update(self._torch_biases(state_dict, sfx))
        self.set_params(vals)


class LSTM(_Recurrent):
    """Stacked, optionally bidirectional LSTM over time-major input (T, B, input_size), on
    ``seqkern.lstm_forward`` / ``seqkern.lstm_backward``.

    Output: with ``return_sequences`` the last layer's outputs (T, B, D*H) (zeros at t >= length),
    else its final states (B, D*H) (D = 2 if bidirectional: forward state after the last valid
    step, then reverse state after reaching step 0), as PyTorch's ``h_n``.

    Parameters per layer k and direction (suffix ``_reverse``): ``w_ih_l{k}`` (4H, in),
    ``w_hh_l{k}`` (4H, H), ``bias_l{k}`` (4H,), gate rows i, f, g, o, and with ``peephole`` also
    ``peephole_l{k}`` (3, H). The reverse direction runs the same kernel on every sequence reversed
    within its length. ``dropout`` is applied to the inputs of layers 1.. in training only.
    Init (Keras' unit-forget-bias): Glorot-uniform w_ih, orthogonal w_hh, bias 0 except the forget
    gate at 1, peepholes 0. ``load_torch`` sums PyTorch's two biases into ``bias_l{k}``.
    """

    gates = 4

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, *, peephole=False,
                 dropout=0.0, return_sequences=False, dtype=np.float32, seed=None):
        self.peephole = bool(peephole)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout=dropout,
                         return_sequences=return_sequences, dtype=dtype, seed=seed)

    def _cell_config(self):
        return {"peephole": self.peephole}

    @classmethod
    def _bias_shapes(cls, sfx, H, config):
        yield f"bias{sfx}", (4 * H,)
        if config.get("peephole"):
            yield f"peephole{sfx}", (3, H)

    def _add_biases(self, sfx):
        H = self.hidden_size
        b = np.zeros(4 * H)
        b[H : 2 * H] = 1.0
        self._add(f"bias{sfx}", b)
        if self.peephole:
            self._add(f"peephole{sfx}", np.zeros((3, H)))

    def _run(self, sfx, x, lengths, cache):
        p = self._p
        y, h_n, _c_n, c = seqkern.lstm_forward(x, p[f"w_ih{sfx}"], p[f"w_hh{sfx}"], p[f"bias{sfx}"],
                                               peephole=p.get(f"peephole{sfx}"), lengths=lengths, need_cache=cache)
        return y, h_n, c

    def _run_backward(self, sfx, cache, dy, dh_n):
        d_x, dw_ih, dw_hh, dbias, _dh0, _dc0, dpeep = seqkern.lstm_backward(cache, dy=dy, dh_n=dh_n)
        grads = {f"w_ih{sfx}": dw_ih, f"w_hh{sfx}": dw_hh, f"bias{sfx}": dbias}
        if self.peephole:
            grads[f"peephole{sfx}"] = dpeep
        return d_x, grads

    def _torch_biases(self, state_dict, sfx):
        return {f"bias{sfx}": _summed_torch_bias(state_dict, sfx, 4 * self.hidden_size)}


class GRU(_Recurrent):
    """Stacked, optionally bidirectional GRU over time-major input (T, B, input_size), on
    ``seqkern.gru_forward`` / ``seqkern.gru_backward`` (PyTorch's ``nn.GRU`` math, the reset gate
    applied after the recurrent product, as Keras' ``reset_after=True``).

    Output, layers, directions, ``dropout`` and ``return_sequences`` as :class:`LSTM`.
    Parameters per layer k and direction (suffix ``_reverse``): ``w_ih_l{k}`` (3H, in),
    ``w_hh_l{k}`` (3H, H), ``b_ih_l{k}`` and ``b_hh_l{k}`` (3H,), gate rows r, z, n (PyTorch's
    ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``).
    Init (Keras): Glorot-uniform w_ih, orthogonal w_hh, biases 0.
    """

    gates = 3

    @classmethod
    def _bias_shapes(cls, sfx, H, config):
        yield f"b_ih{sfx}", (3 * H,)
        yield f"b_hh{sfx}", (3 * H,)

    def _add_biases(self, sfx):
        for name, shape in self._bias_shapes(sfx, self.hidden_size, {}):
            self._add(name, np.zeros(shape))

    def _run(self, sfx, x, lengths, cache):
        p = self._p
        return seqkern.gru_forward(x, p[f"w_ih{sfx}"], p[f"w_hh{sfx}"], p[f"b_ih{sfx}"], p[f"b_hh{sfx}"],
                                   lengths=lengths, need_cache=cache)

    def _run_backward(self, sfx, cache, dy, dh_n):
        d_x, dw_ih, dw_hh, db_ih, db_hh, _dh0 = seqkern.gru_backward(cache, dy=dy, dh_n=dh_n)
        return d_x, {f"w_ih{sfx}": dw_ih, f"w_hh{sfx}": dw_hh, f"b_ih{sfx}": db_ih, f"b_hh{sfx}": db_hh}

    def _torch_biases(self, state_dict, sfx):
        """PyTorch's two biases as they are (zeros for a module built with ``bias=False``)."""
        zero = np.zeros(3 * self.hidden_size)
        return {f"b{part}{sfx}": _np(state_dict[f"bias{part}{sfx}"]) if f"bias{part}{sfx}" in state_dict else zero
                for part in ("_ih", "_hh")}


class SimpleRNN(_Recurrent):
    """Stacked, optionally bidirectional plain RNN over time-major input (T, B, input_size), on
    ``seqkern.rnn_forward`` / ``seqkern.rnn_backward`` (PyTorch's ``nn.RNN``, Keras' ``SimpleRNN``):
    ``h_t = act(x_t W_ihᵀ + h_{t-1} W_hhᵀ + bias)`` with ``nonlinearity`` "tanh" or "relu".

    Output, layers, directions, ``dropout`` and ``return_sequences`` as :class:`LSTM`.
    Parameters per layer k and direction (suffix ``_reverse``): ``w_ih_l{k}`` (H, in),
    ``w_hh_l{k}`` (H, H), ``bias_l{k}`` (H,). Init (Keras): Glorot-uniform w_ih, orthogonal w_hh,
    bias 0. ``load_torch`` sums PyTorch's two biases into ``bias_l{k}``.
    """

    gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, *, nonlinearity="tanh",
                 dropout=0.0, return_sequences=False, dtype=np.float32, seed=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"SimpleRNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout=dropout,
                         return_sequences=return_sequences, dtype=dtype, seed=seed)

    def _cell_config(self):
        return {"nonlinearity": self.nonlinearity}

    @classmethod
    def _bias_shapes(cls, sfx, H, config):
        yield f"bias{sfx}", (H,)

    def _add_biases(self, sfx):
        self._add(f"bias{sfx}", np.zeros(self.hidden_size))

    def _run(self, sfx, x, lengths, cache):
        p = self._p
        return seqkern.rnn_forward(x, p[f"w_ih{sfx}"], p[f"w_hh{sfx}"], p[f"bias{sfx}"], lengths=lengths,
                                   nonlinearity=self.nonlinearity, need_cache=cache)

    def _run_backward(self, sfx, cache, dy, dh_n):
        d_x, dw_ih, dw_hh, dbias, _dh0 = seqkern.rnn_backward(cache, dy=dy, dh_n=dh_n)
        return d_x, {f"w_ih{sfx}": dw_ih, f"w_hh{sfx}": dw_hh, f"bias{sfx}": dbias}

    def _torch_biases(self, state_dict, sfx):
        return {f"bias{sfx}": _summed_torch_bias(state_dict, sfx, self.hidden_size)}
