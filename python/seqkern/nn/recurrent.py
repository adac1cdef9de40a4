"""Recurrent layers: :class:`LSTM`, :class:`GRU` and :class:`SimpleRNN`, stacked and optionally
bidirectional.

All share :class:`_Recurrent`, which draws the dropout masks between layers, handles
``return_sequences``, ``return_state``, initial states and ``stateful`` carrying, the config and
the PyTorch import, and runs every layer and direction in one
call of ``seqkern.lstm_layers_forward`` (``gru_``, ``rnn_``: the reverse direction, and the two
directions side by side where that is faster); a cell class only says how many gate blocks it
has, which biases it keeps, and which layer functions it calls.
"""

from __future__ import annotations

import numpy as np

import seqkern

from .layers import Layer, TorchState, _np, _rng, _size, glorot_uniform, orthogonal

__all__ = ["LSTM", "GRU", "SimpleRNN"]


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
    (their initial values), ``_weights`` (its weights object), ``_param_grads`` (the parameter
    gradients by name from the cell's gradient tuple), ``_torch_biases`` (its biases from a PyTorch
    state dict) and ``_cell_config`` (its own config entries); and ``_forward_layers`` /
    ``_backward_layers``, the cell's whole-layer functions.
    """

    gates = 0

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, *, dropout=0.0,
                 recurrent_dropout=0.0, return_sequences=False, return_state=False, stateful=False, dtype=np.float32,
                 seed=None, weight_format=None):
        super().__init__(dtype)
        self.weight_format = None
        self._lowp = None  # the low-precision weights objects, built at the first inference
        self.return_state, self.stateful = bool(return_state), bool(stateful)
        self.states = None
        self.initial_state_grads = None
        self._has_initial = False
        self.input_size, self.hidden_size = int(input_size), int(hidden_size)
        self.num_layers, self.bidirectional = int(num_layers), bool(bidirectional)
        self.dropout = float(dropout)
        self.recurrent_dropout = float(recurrent_dropout)
        if not 0.0 <= self.recurrent_dropout < 1.0:
            raise ValueError(f"{type(self).__name__}: recurrent_dropout must be in [0, 1), got {recurrent_dropout!r}")
        if self.recurrent_dropout and getattr(self, "reset_after", True) is False:
            raise ValueError("GRU: recurrent_dropout needs reset_after=True (the reset-before kernels take no mask)")
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
        self.quantize(weight_format)

    def quantize(self, weight_format):
        """Run inference with low-precision weights: ``"int8"`` or ``"bf16"`` (see
        ``seqkern.LSTMWeights``' ``dtype``), or None (or ``"float32"``) for the layer's own. The
        weights are converted from the parameters at the next inference, which the parameters keep
        unchanged; ``set_params`` (and loading) converts them again, in-place changes to the arrays
        of ``params()`` are not seen. A quantized layer does not train (``forward(training=True)``
        and ``backward`` raise); a float32 layer only. Returns the layer."""
        name = type(self).__name__
        fmt = None if weight_format in (None, "float32") else weight_format
        if fmt is not None and (not isinstance(fmt, str) or fmt not in ("bf16", "int8")):
            raise ValueError(f"{name}: weight_format must be None, 'float32', 'bf16' or 'int8', got {weight_format!r}")
        if fmt is not None and self.dtype != np.float32:
            raise ValueError(f"{name}: weight_format={fmt!r} needs a float32 layer, this one is {self.dtype}")
        self.weight_format = fmt
        self._lowp = None
        return self

    def set_params(self, values: dict) -> None:
        super().set_params(values)
        self._lowp = None

    @property
    def output_size(self) -> int:
        return self.hidden_size * len(self.dirs)

    def _cell_config(self) -> dict:
        return {}

    def get_config(self):
        return {"class": type(self).__name__, "input_size": self.input_size, "hidden_size": self.hidden_size,
                "num_layers": self.num_layers, "bidirectional": self.bidirectional, **self._cell_config(),
                "dropout": self.dropout,
                **({"recurrent_dropout": self.recurrent_dropout} if self.recurrent_dropout else {}),
                "return_sequences": self.return_sequences, "return_state": self.return_state,
                "stateful": self.stateful, "dtype": self.dtype.name,
                **({"weight_format": self.weight_format} if self.weight_format else {})}

    @classmethod
    def param_shapes(cls, config):
        d_in, H, layers = _size(config, "input_size"), _size(config, "hidden_size"), _size(config, "num_layers")
        dirs = _dirs(config.get("bidirectional"))
        for k in range(layers):
            for s in dirs:
                yield f"w_ih_l{k}{s}", (cls.gates * H, d_in if k == 0 else H * len(dirs))
                yield f"w_hh_l{k}{s}", (cls.gates * H, H)
                yield from cls._bias_shapes(f"_l{k}{s}", H, config)

    def output_shape(self, input_shape):
        if self.return_sequences:
            return (input_shape[0], input_shape[1] if len(input_shape) > 2 else None, self.output_size)
        return (input_shape[0], self.output_size)

    def _layers(self) -> list:
        """The weights objects of every layer and direction, as ``seqkern.*_layers_forward`` takes them
        (in the low-precision format when the layer is quantized, converted once)."""
        if self.weight_format is not None and self._lowp is not None:
            return self._lowp
        out = []
        for k in range(self.num_layers):
            ws = tuple(self._weights(f"_l{k}{s}", self.weight_format) for s in self.dirs)
            out.append(ws if len(ws) == 2 else ws[0])
        if self.weight_format is not None:
            self._lowp = out
        return out

    @property
    def state_count(self) -> int:
        """How many state arrays the cell carries: 2 for the LSTM (h, c), 1 for the others."""
        return 1

    def _state_shape(self, B: int) -> tuple:
        return (self.num_layers * len(self.dirs), B, self.hidden_size)

    def _initial_state(self, initial_state, B: int):
        """``initial_state`` (or, when stateful, the states the last call left) as a list of
        ``state_count`` arrays (layers*dirs, B, H), or None for zeros."""
        name = type(self).__name__
        if initial_state is None:
            if not self.stateful or self.states is None:
                return None
            if self.states[0].shape[1] != B:
                raise ValueError(f"{name}: a stateful layer got a batch of {B} rows but its states hold "
                                 f"{self.states[0].shape[1]}; give batches of one size or call reset_states()")
            return list(self.states)
        states = list(initial_state) if isinstance(initial_state, (list, tuple)) else [initial_state]
        if len(states) != self.state_count:
            what = "[h0, c0]" if self.state_count == 2 else "[h0]"
            raise ValueError(f"{name}: initial_state must be {what}, {self.state_count} array(s), got {len(states)}")
        shape = self._state_shape(B)
        out = []
        for i, a in enumerate(states):
            a = np.asarray(a)
            if a.dtype.kind != "f":
                raise TypeError(f"{name}: initial_state[{i}] must be floating point, got {a.dtype}")
            if a.shape == shape[1:] and shape[0] == 1:
                a = a[None]  # Keras' (B, H) for one layer and direction
            if a.shape != shape:
                raise ValueError(f"{name}: initial_state[{i}] must have shape (layers*dirs, B, H) = {shape}"
                                 + (f" or (B, H) = {shape[1:]}" if shape[0] == 1 else "") + f", got {a.shape}")
            out.append(np.ascontiguousarray(a, dtype=self.dtype))
        return out

    def reset_states(self, states=None) -> None:
        """Forget the states a stateful layer carries (the next batch starts from zeros), or set
        them: ``states`` a list of ``state_count`` arrays (layers*dirs, B, H)."""
        if states is None:
            self.states = None
            return
        first = np.asarray(states[0] if isinstance(states, (list, tuple)) else states)
        self.states = tuple(self._initial_state(states, first.shape[-2]))

    def forward(self, x, lengths=None, training=False, cache=True, initial_state=None):
        """The layer's output (see the class docstring); with ``return_state`` the tuple
        ``(output, h_n, c_n)`` for the LSTM and ``(output, h_n)`` for the others, states
        (layers*dirs, B, H) in PyTorch's order. ``initial_state``: [h0, c0] (LSTM) or [h0], each
        (layers*dirs, B, H), or (B, H) for one layer and direction; zeros when None. A
        ``stateful`` layer starts each call from the states the previous call ended with."""
        if self.weight_format is not None and training:
            raise ValueError(f"{type(self).__name__}: a layer quantized to {self.weight_format} does not train; "
                             "quantize(None) goes back to its float32 weights")
        if self.weight_format is not None:
            cache = False  # inference only: there is no backward to keep anything for
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"{type(self).__name__}: x must have shape (T, B, {self.input_size}), got {x.shape}")
        T, B, _ = x.shape
        lengths = None if lengths is None else np.ascontiguousarray(lengths, dtype=np.int64)
        states = self._initial_state(initial_state, B)
        masks = None
        if training and self.dropout > 0 and self.num_layers > 1:
            keep = 1.0 - self.dropout
            shape = (T, B, self.output_size)
            masks = [(self._gen.random(shape, dtype=np.float32) < keep).astype(self.dtype) / self.dtype.type(keep)
                     for _ in range(self.num_layers - 1)]
        kw = {} if states is None else dict(zip(("h0", "c0"), states))
        if training and self.recurrent_dropout > 0:
            # Variational: one mask per layer, direction and row for the whole sequence, on h_{t-1}
            # where it enters the recurrent product, inside the kernels' step (forward and backward).
            keep = 1.0 - self.recurrent_dropout
            shape = (self.num_layers * len(self.dirs), B, self.hidden_size)
            kw["recurrent_masks"] = ((self._gen.random(shape, dtype=np.float32) < keep).astype(self.dtype)
                                     / self.dtype.type(keep))
        out = self._forward_layers(x, self._layers(), lengths=lengths, dropout_masks=masks, need_cache=cache, **kw)
        final = (out.h_n,) if self.state_count == 1 else (out.h_n, out.c_n)
        if self.stateful:
            # Truncated backpropagation: the next batch starts from these values, not through them.
            self.states = tuple(s.copy() for s in final)
        if cache:
            self._cache = out.cache
            self._has_initial = states is not None
        if self.return_sequences:
            y = out.y
        else:
            last = out.h_n[-len(self.dirs):]  # the last layer's final states, (dirs, B, H)
            y = np.ascontiguousarray(last.transpose(1, 0, 2).reshape(B, self.output_size))
        return (y, *final) if self.return_state else y

    def backward(self, grad):
        """Gradient for x from the output's gradient; with ``return_state``, ``grad`` may be the
        tuple (d output, dh_n[, dc_n]) (None entries are zeros). The gradients of a given
        ``initial_state`` are left in ``initial_state_grads`` ([dh0, dc0] or [dh0])."""
        if self.weight_format is not None:
            raise ValueError(f"{type(self).__name__}: a layer quantized to {self.weight_format} has no backward; "
                             "quantize(None) goes back to its float32 weights")
        H, dirs = self.hidden_size, len(self.dirs)
        d_states = [None] * self.state_count
        if isinstance(grad, (tuple, list)):
            if not self.return_state or len(grad) != 1 + self.state_count:
                raise ValueError(f"{type(self).__name__}: backward takes a tuple of {1 + self.state_count} gradients "
                                 "only with return_state=True")
            grad, *d_states = grad
        dy = dh_n = None
        if grad is not None:
            grad = np.asarray(grad, dtype=self.dtype)
            if self.return_sequences:
                dy = grad
            else:
                B = grad.shape[0]
                dh_n = np.zeros((self.num_layers * dirs, B, H), self.dtype)
                dh_n[-dirs:] = grad.reshape(B, dirs, H).transpose(1, 0, 2)
        if d_states[0] is not None:
            d = np.asarray(d_states[0], dtype=self.dtype)
            dh_n = d.copy() if dh_n is None else dh_n + d
        dc_n = None if self.state_count == 1 or d_states[1] is None else np.asarray(d_states[1], dtype=self.dtype)
        g = self._backward_layers(self._cache, dy, dh_n, dc_n)
        for k in range(self.num_layers):
            for j, s in enumerate(self.dirs):
                for name, value in self._param_grads(f"_l{k}{s}", g.layers[k][j]).items():
                    self._g[name] += value
        self._cache = None
        self.initial_state_grads = None
        if self._has_initial:
            self.initial_state_grads = [g.dh0] if self.state_count == 1 else [g.dh0, g.dc0]
        return g.dx

    def load_torch(self, state_dict, prefix=""):
        """Copy a PyTorch ``nn.LSTM`` / ``nn.GRU`` / ``nn.RNN`` state dict (``weight_ih_l{k}[_reverse]``,
        ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``; tensors or arrays) into this layer.
        The torch module must have the same sizes and ``batch_first`` does not matter. ``prefix``:
        the module's name in a whole model's ``state_dict()`` (``"encoder"`` reads
        ``encoder.weight_ih_l0``, ...)."""
        state_dict = TorchState(state_dict, prefix, type(self).__name__)
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
    within its length. ``dropout`` is applied to the inputs of layers 1.. in training only;
    ``recurrent_dropout`` (Keras's, variational) to h_{t-1} where it enters the recurrent product,
    one mask per layer, direction and row for the whole sequence, in training only, inside the
    kernels' fused step (``recurrent_mask`` of ``seqkern.lstm_forward``).
    ``return_state``: ``forward`` returns ``(output, h_n, c_n)``, states (layers*dirs, B, H);
    ``forward(x, initial_state=[h0, c0])`` starts from given states; ``stateful``: every batch
    starts from the final states of the one before (``reset_states()`` forgets them).
    Init (Keras' unit-forget-bias): Glorot-uniform w_ih, orthogonal w_hh, bias 0 except the forget
    gate at 1, peepholes 0. ``load_torch`` sums PyTorch's two biases into ``bias_l{k}``.
    """

    gates = 4

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, *, peephole=False,
                 dropout=0.0, recurrent_dropout=0.0, return_sequences=False, return_state=False, stateful=False,
                 dtype=np.float32, seed=None, weight_format=None):
        self.peephole = bool(peephole)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, return_sequences=return_sequences, return_state=return_state, stateful=stateful,
                         dtype=dtype, seed=seed, weight_format=weight_format)

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

    def _forward_layers(self, x, layers, **kw):
        return seqkern.lstm_layers_forward(x, layers, **kw)

    @property
    def state_count(self) -> int:
        return 2

    def _backward_layers(self, cache, dy, dh_n, dc_n=None):
        return seqkern.lstm_layers_backward(cache, dy, dh_n, dc_n)

    def _weights(self, sfx, fmt=None):
        # Views of the parameters (packed on each call), so the optimizer's in-place steps are seen;
        # or, in a low-precision format, converted copies.
        p = self._p
        return seqkern.LSTMWeights(p[f"w_ih{sfx}"], p[f"w_hh{sfx}"], p[f"bias{sfx}"], p.get(f"peephole{sfx}"),
                                   copy=fmt is not None, dtype=fmt)

    def _param_grads(self, sfx, g):
        grads = {f"w_ih{sfx}": g.dw_ih, f"w_hh{sfx}": g.dw_hh, f"bias{sfx}": g.dbias}
        if self.peephole:
            grads[f"peephole{sfx}"] = g.dpeephole
        return grads

    def _torch_biases(self, state_dict, sfx):
        return {f"bias{sfx}": _summed_torch_bias(state_dict, sfx, 4 * self.hidden_size)}


class GRU(_Recurrent):
    """Stacked, optionally bidirectional GRU over time-major input (T, B, input_size), on
    ``seqkern.gru_forward`` / ``seqkern.gru_backward`` (PyTorch's ``nn.GRU`` math, the reset gate
    applied after the recurrent product, as Keras' ``reset_after=True``; with
    ``reset_after=False``, Keras's other variant and ONNX's default, before it:
    ``n = tanh(x W_inᵀ + b_in + (r * h) W_hnᵀ + b_hn)``).

    Output, layers, directions, ``dropout``, ``recurrent_dropout`` and ``return_sequences`` as
    :class:`LSTM`.
    Parameters per layer k and direction (suffix ``_reverse``): ``w_ih_l{k}`` (3H, in),
    ``w_hh_l{k}`` (3H, H), ``b_ih_l{k}`` and ``b_hh_l{k}`` (3H,), gate rows r, z, n (PyTorch's
    ``weight_ih_l{k}``, ``weight_hh_l{k}``, ``bias_ih_l{k}``, ``bias_hh_l{k}``).
    Init (Keras): Glorot-uniform w_ih, orthogonal w_hh, biases 0.
    """

    gates = 3

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, *, reset_after=True,
                 dropout=0.0, recurrent_dropout=0.0, return_sequences=False, return_state=False, stateful=False,
                 dtype=np.float32, seed=None, weight_format=None):
        if not isinstance(reset_after, (bool, np.bool_)):
            raise ValueError(f"GRU: reset_after must be True or False, got {reset_after!r}")
        self.reset_after = bool(reset_after)
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, return_sequences=return_sequences, return_state=return_state, stateful=stateful,
                         dtype=dtype, seed=seed, weight_format=weight_format)

    def _cell_config(self):
        return {} if self.reset_after else {"reset_after": False}

    def quantize(self, weight_format):
        if weight_format not in (None, "float32") and not self.reset_after:
            raise ValueError(f"GRU: weight_format={weight_format!r} needs reset_after=True (the low-precision "
                             "kernels are those of the reset-after GRU)")
        return super().quantize(weight_format)

    def load_torch(self, state_dict, prefix=""):
        if not self.reset_after:
            raise ValueError("GRU.load_torch: PyTorch's GRU resets after the product; this layer has "
                             "reset_after=False")
        super().load_torch(state_dict, prefix)

    @classmethod
    def _bias_shapes(cls, sfx, H, config):
        yield f"b_ih{sfx}", (3 * H,)
        yield f"b_hh{sfx}", (3 * H,)

    def _add_biases(self, sfx):
        for name, shape in self._bias_shapes(sfx, self.hidden_size, {}):
            self._add(name, np.zeros(shape))

    def _forward_layers(self, x, layers, **kw):
        return seqkern.gru_layers_forward(x, layers, **kw)

    def _backward_layers(self, cache, dy, dh_n, dc_n=None):
        return seqkern.gru_layers_backward(cache, dy, dh_n)

    def _weights(self, sfx, fmt=None):
        p = self._p
        return seqkern.GRUWeights(p[f"w_ih{sfx}"], p[f"w_hh{sfx}"], p[f"b_ih{sfx}"], p[f"b_hh{sfx}"], dtype=fmt,
                                  linear_before_reset=self.reset_after)

    def _param_grads(self, sfx, g):
        return {f"w_ih{sfx}": g.dw_ih, f"w_hh{sfx}": g.dw_hh, f"b_ih{sfx}": g.db_ih, f"b_hh{sfx}": g.db_hh}

    def _torch_biases(self, state_dict, sfx):
        """PyTorch's two biases as they are (zeros for a module built with ``bias=False``)."""
        zero = np.zeros(3 * self.hidden_size)
        return {f"b{part}{sfx}": _np(state_dict[f"bias{part}{sfx}"]) if f"bias{part}{sfx}" in state_dict else zero
                for part in ("_ih", "_hh")}


class SimpleRNN(_Recurrent):
    """Stacked, optionally bidirectional plain RNN over time-major input (T, B, input_size), on
    ``seqkern.rnn_forward`` / ``seqkern.rnn_backward`` (PyTorch's ``nn.RNN``, Keras' ``SimpleRNN``):
    ``h_t = act(x_t W_ihᵀ + h_{t-1} W_hhᵀ + bias)`` with ``nonlinearity`` "tanh" or "relu".

    Output, layers, directions, ``dropout``, ``recurrent_dropout`` and ``return_sequences`` as
    :class:`LSTM`.
    Parameters per layer k and direction (suffix ``_reverse``): ``w_ih_l{k}`` (H, in),
    ``w_hh_l{k}`` (H, H), ``bias_l{k}`` (H,). Init (Keras): Glorot-uniform w_ih, orthogonal w_hh,
    bias 0. ``load_torch`` sums PyTorch's two biases into ``bias_l{k}``.
    """

    gates = 1

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, *, nonlinearity="tanh",
                 dropout=0.0, recurrent_dropout=0.0, return_sequences=False, return_state=False, stateful=False,
                 dtype=np.float32, seed=None, weight_format=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"SimpleRNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout=dropout,
                         recurrent_dropout=recurrent_dropout, return_sequences=return_sequences, return_state=return_state, stateful=stateful,
                         dtype=dtype, seed=seed, weight_format=weight_format)

    def _cell_config(self):
        return {"nonlinearity": self.nonlinearity}

    @classmethod
    def _bias_shapes(cls, sfx, H, config):
        yield f"bias{sfx}", (H,)

    def _add_biases(self, sfx):
        self._add(f"bias{sfx}", np.zeros(self.hidden_size))

    def _forward_layers(self, x, layers, **kw):
        return seqkern.rnn_layers_forward(x, layers, **kw)

    def _backward_layers(self, cache, dy, dh_n, dc_n=None):
        return seqkern.rnn_layers_backward(cache, dy, dh_n)

    def _weights(self, sfx, fmt=None):
        p = self._p
        return seqkern.RNNWeights(p[f"w_ih{sfx}"], p[f"w_hh{sfx}"], p[f"bias{sfx}"], nonlinearity=self.nonlinearity,
                                  dtype=fmt)

    def _param_grads(self, sfx, g):
        return {f"w_ih{sfx}": g.dw_ih, f"w_hh{sfx}": g.dw_hh, f"bias{sfx}": g.dbias}

    def _torch_biases(self, state_dict, sfx):
        return {f"bias{sfx}": _summed_torch_bias(state_dict, sfx, self.hidden_size)}
