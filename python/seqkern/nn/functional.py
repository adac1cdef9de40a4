"""The functional API: ``Input``, ``Model`` and the layers that join tensors (``Dot``, ``Add``,
``Concatenate``, ``Softmax``), enough to write an RNN-attention classifier the Keras way::

    ids = nn.Input(shape=(None,), dtype="int64")
    h, h_n, c_n = nn.LSTM(64, 64, return_sequences=True, return_state=True)(nn.Embedding(V, 64)(ids))
    q = nn.Dense(64, 32)(h_n)                                # the final state asks ...
    k, v = nn.Dense(64, 32)(h), nn.Dense(64, 32)(h)         # ... every step answers
    alpha = nn.Softmax()(nn.Dot(axes=(1, 2))([q, k]))        # (B, T), zero past each length
    context = nn.Dot(axes=(1, 1))([alpha, v])                # (B, 32)
    model = nn.Model(ids, nn.Dense(32, n_classes, activation="softmax")(context))
    model.compile("adam", "sparse_categorical_crossentropy").fit(X, y, epochs=5)

Calling a layer on a symbolic tensor (from ``Input`` or another layer) records the call and
returns the output's symbolic tensor; ``Model(inputs, outputs)`` collects the calls between them.
Tensors in the graph are batch-major, as Keras shows them (``(B, T, F)``; the model transposes
around the time-major recurrent and pooling layers); axis 0 is the batch and an axis of unknown
length (``None``) is a time axis. A recurrent layer with ``return_state`` gives its states as
(B, H) for one layer and direction, else (B, layers*dirs, H). ``Softmax`` over a time axis
ignores the steps at or past each row's length, as Keras's masking does.

``Model`` trains, evaluates, predicts, saves and loads as ``Sequential`` does (it is one, with a
graph instead of a chain). Limits: one input and one output, each layer called once (no shared
layers).
"""

from __future__ import annotations

import numpy as np

from .layers import _CLASSES, AttentionPool, Embedding, Layer, MeanPool
from .model import Sequential, _Inputs
from .recurrent import _Recurrent

__all__ = ["Input", "SymbolicTensor", "Model", "Dot", "Add", "Concatenate", "Softmax"]

_TIME_IN = (_Recurrent, AttentionPool, MeanPool)  # take 3-D inputs time-major
_INT_DTYPES = ("int32", "int64", "int")


class SymbolicTensor:
    """A tensor of the graph: its batch-major ``shape`` (None for the batch and unknown lengths),
    the layer call that makes it (``layer``, output ``index``, ``inputs``), or none for an Input."""

    def __init__(self, shape, layer=None, index=0, inputs=(), dtype="float32"):
        self.shape, self.layer, self.index, self.inputs = tuple(shape), layer, index, tuple(inputs)
        self.dtype = dtype

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def __repr__(self):
        made = "Input" if self.layer is None else type(self.layer).__name__
        return f"<SymbolicTensor shape={self.shape} from {made}>"


def Input(shape, dtype="float32") -> SymbolicTensor:
    """The model's input: ``shape`` without the batch axis, as Keras's ``Input``: ``(None,)``
    with an integer ``dtype`` for token ids, ``(None, D)`` for D features a step."""
    if not isinstance(shape, (tuple, list)) or not all(s is None or (isinstance(s, int) and s > 0) for s in shape):
        raise TypeError(f"Input: shape must be a tuple of positive ints or None (no batch axis), got {shape!r}")
    dtype = str(np.dtype(dtype)) if dtype not in _INT_DTYPES else "int64"
    return SymbolicTensor((None,) + tuple(shape), dtype=dtype)


def is_symbolic(x) -> bool:
    return isinstance(x, SymbolicTensor) or (isinstance(x, (list, tuple)) and bool(x)
                                             and all(isinstance(t, SymbolicTensor) for t in x))


def _state_shape(layer, shape):
    n = layer.num_layers * len(layer.dirs)
    return (shape[0], layer.hidden_size) if n == 1 else (shape[0], n, layer.hidden_size)


def call_symbolic(layer: Layer, x):
    """Record ``layer`` called on symbolic tensor(s) ``x``; returns its output tensor(s)."""
    name = type(layer).__name__
    if getattr(layer, "_graph_inputs", None) is not None:
        raise ValueError(f"{name}: this layer is already called in a graph; shared layers are not supported, "
                         "make another layer")
    multi = getattr(layer, "multi_input", False)
    inputs = list(x) if isinstance(x, (list, tuple)) else [x]
    if multi != (isinstance(x, (list, tuple))):
        raise TypeError(f"{name}: " + ("takes a list of tensors" if multi else "takes one tensor, not a list"))
    shapes = [t.shape for t in inputs]
    if isinstance(layer, Embedding) and inputs[0].dtype != "int64":
        raise TypeError(f"Embedding: its input must be token ids, an Input with an integer dtype, got {inputs[0].dtype}")
    out_shape = layer.output_shape(shapes if multi else shapes[0])
    layer._graph_inputs = inputs
    outs = [SymbolicTensor(out_shape, layer, 0, inputs)]
    if getattr(layer, "return_state", False):
        st = _state_shape(layer, shapes[0])
        outs += [SymbolicTensor(st, layer, i, inputs) for i in range(1, 1 + layer.state_count)]
        return tuple(outs)
    return outs[0]


def _axis(axis: int, ndim: int, who: str) -> int:
    a = axis + ndim if axis < 0 else axis
    if not 0 < a < ndim:
        raise ValueError(f"{who}: axis {axis} is not an axis of a {ndim}-D tensor other than the batch axis 0")
    return a


class _Merge(Layer):
    """A parameter-free layer of several inputs; ``backward`` returns one gradient per input."""

    multi_input = True

    def __init__(self, *, dtype=np.float32):
        super().__init__(dtype)

    def _check(self, xs, count=None):
        if not isinstance(xs, (list, tuple)) or (count is not None and len(xs) != count) or len(xs) < 2:
            want = f"{count}" if count is not None else "2 or more"
            raise ValueError(f"{type(self).__name__}: takes a list of {want} tensors, got "
                             f"{len(xs) if isinstance(xs, (list, tuple)) else type(xs).__name__}")
        return [np.asarray(x) for x in xs]


class Dot(_Merge):
    """Batched dot product of two tensors over ``axes`` (an int for both, or a pair; axis 0 is
    the batch and is kept), as Keras's ``Dot``: the output holds the batch axis, then the first
    input's other axes, then the second's. (B, A)·(B, T, A) over (1, 2) -> (B, T) scores;
    (B, T)·(B, T, A) over (1, 1) -> (B, A) a context vector."""

    def __init__(self, axes, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        pair = (axes, axes) if isinstance(axes, (int, np.integer)) else tuple(axes)
        if len(pair) != 2 or not all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in pair):
            raise TypeError(f"Dot: axes must be an int or a pair of ints, got {axes!r}")
        self.axes = tuple(int(a) for a in pair)

    def get_config(self):
        return {"class": "Dot", "axes": list(self.axes), "dtype": self.dtype.name}

    def _subscripts(self, na: int, nb: int):
        aa, ab = _axis(self.axes[0], na, "Dot"), _axis(self.axes[1], nb, "Dot")
        letters = iter("cdefghijklmnopqrstuvwxyz")
        sa = ["b"] + [next(letters) for _ in range(na - 1)]
        sb = ["b"] + [next(letters) for _ in range(nb - 1)]
        sb[ab] = sa[aa] = "a"
        out = ["b"] + [s for i, s in enumerate(sa) if i not in (0, aa)] + [s for i, s in enumerate(sb) if i not in (0, ab)]
        return "".join(sa), "".join(sb), "".join(out), aa, ab

    def output_shape(self, input_shape):
        (a, b) = input_shape
        _, _, _, aa, ab = self._subscripts(len(a), len(b))
        if a[aa] is not None and b[ab] is not None and a[aa] != b[ab]:
            raise ValueError(f"Dot: axes {self.axes} have sizes {a[aa]} and {b[ab]} in shapes {a} and {b}")
        return (a[0],) + tuple(s for i, s in enumerate(a) if i not in (0, aa)) + tuple(
            s for i, s in enumerate(b) if i not in (0, ab))

    def forward(self, xs, lengths=None, training=False, cache=True):
        a, b = self._check(xs, 2)
        sa, sb, so, aa, ab = self._subscripts(a.ndim, b.ndim)
        if a.shape[aa] != b.shape[ab] or a.shape[0] != b.shape[0]:
            raise ValueError(f"Dot: the inputs' batch and axes {self.axes} must agree, got shapes {a.shape} and {b.shape}")
        if cache:
            self._ab, self._subs = (a, b), (sa, sb, so)
        return np.einsum(f"{sa},{sb}->{so}", a, b)

    def backward(self, grad):
        (a, b), (sa, sb, so) = self._ab, self._subs
        self._ab = None
        return [np.einsum(f"{so},{sb}->{sa}", grad, b), np.einsum(f"{so},{sa}->{sb}", grad, a)]


class Add(_Merge):
    """The sum of tensors of one shape."""

    def get_config(self):
        return {"class": "Add", "dtype": self.dtype.name}

    def output_shape(self, input_shape):
        first = input_shape[0]
        for s in input_shape[1:]:
            if len(s) != len(first) or any(p is not None and q is not None and p != q for p, q in zip(s, first)):
                raise ValueError(f"Add: the inputs must have one shape, got {list(input_shape)}")
        return tuple(first)

    def forward(self, xs, lengths=None, training=False, cache=True):
        xs = self._check(xs)
        if any(x.shape != xs[0].shape for x in xs):
            raise ValueError(f"Add: the inputs must have one shape, got {[x.shape for x in xs]}")
        if cache:
            self._n = len(xs)
        return sum(xs[1:], xs[0].copy())

    def backward(self, grad):
        return [grad] * self._n


class Concatenate(_Merge):
    """Tensors joined along ``axis`` (not the batch axis; default the last)."""

    def __init__(self, axis=-1, *, dtype=np.float32):
        super().__init__(dtype=dtype)
        self.axis = int(axis)

    def get_config(self):
        return {"class": "Concatenate", "axis": self.axis, "dtype": self.dtype.name}

    def output_shape(self, input_shape):
        nd = len(input_shape[0])
        ax = _axis(self.axis, nd, "Concatenate")
        if any(len(s) != nd for s in input_shape):
            raise ValueError(f"Concatenate: the inputs must have one rank, got {list(input_shape)}")
        sizes = [s[ax] for s in input_shape]
        out = list(input_shape[0])
        out[ax] = None if any(v is None for v in sizes) else sum(sizes)
        return tuple(out)

    def forward(self, xs, lengths=None, training=False, cache=True):
        xs = self._check(xs)
        ax = _axis(self.axis, xs[0].ndim, "Concatenate")
        if cache:
            self._splits = np.cumsum([x.shape[ax] for x in xs])[:-1]
            self._ax = ax
        return np.concatenate(xs, axis=ax)

    def backward(self, grad):
        return np.split(grad, self._splits, axis=self._ax)


class Softmax(Layer):
    """softmax over ``axis``. Over a time axis (one the graph does not know the length of, or
    ``time_axis=True``) the steps at or past each row's length get probability 0, as Keras's
    masked softmax: y = exp(x - max) / sum over the valid steps."""

    def __init__(self, axis=-1, *, time_axis=None, dtype=np.float32):
        super().__init__(dtype)
        self.axis = int(axis)
        self.time_axis = time_axis

    def get_config(self):
        return {"class": "Softmax", "axis": self.axis, "time_axis": self.time_axis, "dtype": self.dtype.name}

    def output_shape(self, input_shape):
        ax = _axis(self.axis, len(input_shape), "Softmax")
        if self.time_axis is None:
            self.time_axis = input_shape[ax] is None
        return tuple(input_shape)

    def forward(self, x, lengths=None, training=False, cache=True):
        x = np.asarray(x)
        ax = _axis(self.axis, x.ndim, "Softmax")
        valid = None
        if self.time_axis and lengths is not None:
            shape = [1] * x.ndim
            shape[0], shape[ax] = x.shape[0], x.shape[ax]
            valid = (np.arange(x.shape[ax])[None, :] < np.asarray(lengths)[:, None]).reshape(shape)
            x = np.where(valid, x, -np.inf)
        m = np.max(x, axis=ax, keepdims=True)
        m = np.where(np.isfinite(m), m, 0)
        e = np.exp(x - m)
        s = e.sum(axis=ax, keepdims=True)
        y = e / np.where(s > 0, s, 1)  # a row of length 0 gets all zeros
        if cache:
            self._y, self._ax = y, ax
        return y

    def backward(self, grad):
        y = self._y
        return y * (grad - np.sum(grad * y, axis=self._ax, keepdims=True))


class Model(Sequential):
    """A model of the layer calls between ``inputs`` (from :func:`Input`) and ``outputs`` (see
    the module docstring); compiled, trained, evaluated and saved as :class:`Sequential`."""

    def __init__(self, inputs, outputs):
        inputs = inputs[0] if isinstance(inputs, (list, tuple)) and len(inputs) == 1 else inputs
        outputs = outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs
        if not isinstance(inputs, SymbolicTensor) or inputs.layer is not None:
            raise TypeError("Model: inputs must be one tensor from nn.Input")
        if not isinstance(outputs, SymbolicTensor):
            raise TypeError("Model: outputs must be one tensor, made by calling layers on the input")
        order, seen = [], set()

        def visit(t):
            if t.layer is None:
                if t is not inputs:
                    raise ValueError("Model: outputs depend on an Input other than inputs")
                return
            if id(t.layer) in seen:
                return
            for u in t.inputs:
                visit(u)
            seen.add(id(t.layer))
            order.append(t.layer)

        visit(outputs)
        if not order:
            raise ValueError("Model: outputs must come from at least one layer")
        if order[-1] is not outputs.layer or outputs.index != 0:
            raise ValueError("Model: outputs must be the first output of the last layer called")
        self.input, self.output = inputs, outputs
        super().__init__(order)
        self._index = {id(layer): i for i, layer in enumerate(order)}

    def _check_layers(self):
        pass  # a graph takes a layer's states where a chain cannot

    def _ref(self, t):
        return (-1, 0) if t.layer is None else (self._index[id(t.layer)], t.index)

    def _input_shape(self):
        return self.input.shape

    def output_shapes(self):
        return [self._out_shape(layer) for layer in self.layers]

    def _out_shape(self, layer):
        shapes = [t.shape for t in layer._graph_inputs]
        return layer.output_shape(shapes if getattr(layer, "multi_input", False) else shapes[0])

    def _inputs(self, x, lengths, fn, name="x"):
        first = next((layer for layer in self.layers if self.input in layer._graph_inputs), None)
        return _Inputs(x, lengths, first, self.dtype, fn, name)

    def get_config(self):
        cfg = super().get_config()
        cfg["graph"] = {"input": {"shape": list(self.input.shape[1:]), "dtype": self.input.dtype},
                        "calls": [[list(self._ref(t)) for t in layer._graph_inputs] for layer in self.layers]}
        return cfg

    @classmethod
    def from_config_layers(cls, layers, graph: dict) -> "Model":
        """Rebuild the graph a saved ``get_config()["graph"]`` describes, on ``layers``."""
        inp = Input(tuple(graph["input"]["shape"]), graph["input"]["dtype"])
        produced = {}
        out = None
        for i, (layer, refs) in enumerate(zip(layers, graph["calls"])):
            args = [inp if r[0] == -1 else produced[(r[0], r[1])] for r in refs]
            res = call_symbolic(layer, args if getattr(layer, "multi_input", False) else args[0])
            res = res if isinstance(res, tuple) else (res,)
            for j, t in enumerate(res):
                produced[(i, j)] = t
            out = res[0]
        return cls(inp, out)

    # -- forward / backward -------------------------------------------------------------------

    def forward(self, x, lengths=None, training=False, logits=False, cache=True):
        values = {(-1, 0): x}
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            args = [values[self._ref(t)] for t in layer._graph_inputs]
            kw = {"lengths": lengths, "training": training, "cache": cache}
            if i == last and logits and hasattr(layer, "activation"):
                kw["logits"] = True
            if getattr(layer, "multi_input", False):
                res = layer.forward(args, **kw)
            else:
                a = args[0]
                if isinstance(layer, _TIME_IN) and a.ndim == 3:
                    a = a.transpose(1, 0, 2)
                res = layer.forward(a, **kw)
            res = list(res) if isinstance(res, tuple) else [res]
            if isinstance(layer, (Embedding, _Recurrent)) and res[0].ndim == 3:
                res[0] = res[0].transpose(1, 0, 2)
            for j in range(1, len(res)):  # recurrent states (layers*dirs, B, H) -> batch-major
                s = res[j].transpose(1, 0, 2)
                res[j] = s[:, 0] if s.shape[1] == 1 else s
            for j, r in enumerate(res):
                values[(i, j)] = r
        return values[self._ref(self.output)]

    def backward(self, grad, logits=False):
        grads = {self._ref(self.output): grad}
        last = len(self.layers) - 1
        dx = None
        for i in reversed(range(len(self.layers))):
            layer = self.layers[i]
            n_out = 1 + (layer.state_count if getattr(layer, "return_state", False) else 0)
            gs = [grads.pop((i, j), None) for j in range(n_out)]
            if all(g is None for g in gs):
                continue
            if isinstance(layer, (Embedding, _Recurrent)) and gs[0] is not None and gs[0].ndim == 3:
                gs[0] = gs[0].transpose(1, 0, 2)
            for j in range(1, n_out):
                if gs[j] is not None:
                    gs[j] = (gs[j][:, None] if gs[j].ndim == 2 else gs[j]).transpose(1, 0, 2)
            g = tuple(gs) if n_out > 1 else gs[0]
            kw = {"logits": True} if i == last and logits and hasattr(layer, "activation") else {}
            d = layer.backward(g, **kw)
            multi = getattr(layer, "multi_input", False)
            ds = d if multi else [d]
            for t, dt in zip(layer._graph_inputs, ds):
                if dt is None:
                    continue
                if not multi and isinstance(layer, _TIME_IN) and dt.ndim == 3:
                    dt = dt.transpose(1, 0, 2)
                ref = self._ref(t)
                grads[ref] = dt if ref not in grads else grads[ref] + dt
        dx = grads.get((-1, 0))
        return dx


def model_from_config(config: dict, layers: list) -> Sequential:
    """The model a saved config describes: a :class:`Model` when it has a graph, else a
    :class:`Sequential`."""
    if "graph" in config:
        return Model.from_config_layers(layers, config["graph"])
    return Sequential(layers)



_CLASSES.update({c.__name__: c for c in (Dot, Add, Concatenate, Softmax)})
