"""Layers with NumPy parameters and explicit forward/backward.

Layout: sequence tensors between layers are time-major, ``(T, B, F)``, the layout of the LSTM and
attention kernels. :class:`Embedding` takes batch-major ids ``(B, T)`` (the way data is stored)
and emits time-major vectors, so no transpose is ever made in between. Every layer's
``forward(x, lengths=None, training=False, cache=True)`` keeps what its ``backward(grad)`` needs;
``backward`` returns the gradient for the input (``None`` for integer inputs) and *adds* the
parameter gradients into ``grads()``, which :meth:`Layer.zero_grad` clears. With ``cache=False``
(what ``Sequential.predict`` and ``evaluate`` pass) ``forward`` keeps nothing on the layer: it
computes from its arguments and the parameters only, so several threads can run one layer at once.

``Layer.param_shapes(config)`` gives the parameter shapes a config implies without allocating
them (``load_model`` checks a file against them before building anything).

The recurrent layers (:class:`LSTM`, :class:`GRU`, :class:`SimpleRNN`) are in ``recurrent``, the
convolution (:class:`Conv1D`, :class:`GlobalMaxPool1D`) in ``conv``; all are importable from here.
"""

from __future__ import annotations

import numpy as np

import seqkern

__all__ = ["Layer", "Embedding", "Dense", "Dropout", "LSTM", "GRU", "SimpleRNN", "AttentionPool", "MeanPool",
           "TimeDistributed", "Conv1D", "GlobalMaxPool1D", "layer_class", "layer_from_config"]


def _size(config: dict, key: str, minimum: int = 0) -> int:
    """``config[key]`` as a size: an integer (not a bool) of at least ``minimum``."""
    value = config.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{config.get('class', 'layer')}: {key} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{config.get('class', 'layer')}: {key} must be >= {minimum}, got {value}")
    return int(value)


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def glorot_uniform(rng, fan_in: int, fan_out: int, shape, dtype) -> np.ndarray:
    limit = np.sqrt(6.0 / max(1, fan_in + fan_out))
    return rng.uniform(-limit, limit, size=shape).astype(dtype)


def orthogonal(rng, rows: int, cols: int, dtype) -> np.ndarray:
    """A (rows, cols) matrix with orthonormal rows or columns (QR of a Gaussian, signs fixed)."""
    a = rng.standard_normal((max(rows, cols), min(rows, cols)))
    q, r = np.linalg.qr(a)
    q = q * np.sign(np.diag(r))
    q = q if rows >= cols else q.T
    return q[:rows, :cols].astype(dtype)


class Layer:
    """Base class: a dict of parameters, a dict of gradients with the same keys and shapes."""

    input_layout = "time"

    def __init__(self, dtype=np.float32):
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise TypeError(f"{type(self).__name__}: dtype must be float32 or float64, got {self.dtype}")
        self._p: dict[str, np.ndarray] = {}
        self._g: dict[str, np.ndarray] = {}

    def _add(self, name: str, value: np.ndarray) -> None:
        self._p[name] = np.ascontiguousarray(value, dtype=self.dtype)
        self._g[name] = np.zeros_like(self._p[name])

    def params(self) -> dict[str, np.ndarray]:
        return self._p

    def grads(self) -> dict[str, np.ndarray]:
        return self._g

    def zero_grad(self) -> None:
        for g in self._g.values():
            g.fill(0)

    def set_params(self, values: dict) -> None:
        """Copy arrays into the parameters (shapes must match; dtype converted to the layer's)."""
        for k, v in values.items():
            if k not in self._p:
                raise KeyError(f"{type(self).__name__}: no parameter {k!r}; has {list(self._p)}")
            v = np.asarray(v)
            if v.shape != self._p[k].shape:
                raise ValueError(f"{type(self).__name__}: {k} must have shape {self._p[k].shape}, got {v.shape}")
            self._p[k][...] = v

    def get_config(self) -> dict:
        raise NotImplementedError

    @classmethod
    def param_shapes(cls, config: dict):
        """(name, shape) of every parameter a layer built from ``config`` has, in order, computed
        without allocating anything; a size that is not a non-negative integer raises ValueError."""
        return iter(())

    def output_shape(self, input_shape: tuple) -> tuple:
        """The output's shape, batch-major as Keras shows it (None for the batch and for
        unknown lengths), for an input of ``input_shape``; the same shape by default."""
        return tuple(input_shape)

    def forward(self, x, lengths=None, training=False, cache=True):
        """The layer's output; with ``cache`` it also keeps what :meth:`backward` needs."""
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    def __call__(self, x, lengths=None, training=False, cache=True, **kw):
        """``forward`` on arrays; on symbolic tensors (``nn.Input`` and what layers make of it),
        records the call for a functional ``nn.Model`` and returns the output's tensor(s)."""
        from .functional import call_symbolic, is_symbolic

        if is_symbolic(x):
            return call_symbolic(self, x)
        return self.forward(x, lengths=lengths, training=training, cache=cache, **kw)


class Embedding(Layer):
    """Token ids (B, T) -> vectors (T, B, dim), time-major.

    Row ``padding_idx`` starts at zero and never receives a gradient, so padding stays zero.
    ``word_dropout``: in training, each non-padding id is replaced by ``unk_idx`` with this
    probability (a regularizer for small text data sets). Init: uniform(-0.05, 0.05), as Keras
    (``scale`` changes the bound).
    """

    input_layout = "batch"

    def __init__(self, num_embeddings, dim, padding_idx=0, *, scale=0.05, word_dropout=0.0, unk_idx=1,
                 dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.num_embeddings, self.dim = int(num_embeddings), int(dim)
        self.padding_idx = None if padding_idx is None else int(padding_idx)
        self.scale, self.word_dropout, self.unk_idx = float(scale), float(word_dropout), int(unk_idx)
        if self.padding_idx is not None and not 0 <= self.padding_idx < self.num_embeddings:
            raise ValueError(f"Embedding: padding_idx must be in [0, {self.num_embeddings}), got {self.padding_idx}")
        self._gen = _rng(seed)
        w = self._gen.uniform(-scale, scale, size=(self.num_embeddings, self.dim))
        if self.padding_idx is not None:
            w[self.padding_idx] = 0
        self._add("weight", w)

    def get_config(self):
        return {"class": "Embedding", "num_embeddings": self.num_embeddings, "dim": self.dim,
                "padding_idx": self.padding_idx, "scale": self.scale, "word_dropout": self.word_dropout,
                "unk_idx": self.unk_idx, "dtype": self.dtype.name}

    @classmethod
    def param_shapes(cls, config):
        yield "weight", (_size(config, "num_embeddings"), _size(config, "dim"))

    def output_shape(self, input_shape):
        return tuple(input_shape) + (self.dim,)

    def forward(self, ids, lengths=None, training=False, cache=True):
        ids = np.asarray(ids)
        if ids.ndim != 2 or ids.dtype.kind not in "iu":
            raise TypeError(f"Embedding: ids must be a 2-D integer array (B, T), got {ids.dtype} {ids.shape}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_embeddings):
            raise ValueError(f"Embedding: ids must be in [0, {self.num_embeddings}), got [{ids.min()}, {ids.max()}]")
        ids = np.ascontiguousarray(ids.T)
        if training and self.word_dropout > 0:
            drop = self._gen.random(ids.shape) < self.word_dropout
            if self.padding_idx is not None:
                drop &= ids != self.padding_idx
            ids = np.where(drop, self.unk_idx, ids)
        if cache:
            self._ids = ids
        return self._p["weight"][ids]

    def backward(self, grad):
        g = self._g["weight"]
        flat = self._ids.reshape(-1)
        rows = grad.reshape(-1, self.dim)
        # Sum rows that share an id with one sort + reduceat (faster than np.add.at).
        order = np.argsort(flat, kind="stable")
        ids_sorted = flat[order]
        if ids_sorted.size:
            starts = np.flatnonzero(np.r_[True, ids_sorted[1:] != ids_sorted[:-1]])
            g[ids_sorted[starts]] += np.add.reduceat(rows[order], starts, axis=0)
        if self.padding_idx is not None:
            g[self.padding_idx] = 0
        return None

    def load_torch(self, state_dict, prefix=""):
        """Copy ``nn.Embedding``'s ``weight`` (tensor or array) into this layer; ``prefix`` as
        :meth:`LSTM.load_torch`."""
        self.set_params({"weight": TorchState(state_dict, prefix, "Embedding")["weight"]})


_ACTIVATIONS = (None, "linear", "relu", "tanh", "sigmoid", "softmax")


def activate(z, activation):
    """``activation`` (one of ``_ACTIVATIONS``, None for linear; softmax over the last axis) of z."""
    if activation is None:
        return z
    if activation == "relu":
        return np.maximum(z, 0)
    if activation == "tanh":
        return np.tanh(z)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-z))
    return seqkern.softmax(np.ascontiguousarray(z), axis=-1)


def activation_backward(grad, y, activation):
    """The gradient before ``activate``, from the gradient after it and its output ``y``."""
    if activation is None:
        return grad
    if activation == "relu":
        return grad * (y > 0)
    if activation == "tanh":
        return grad * (1 - y * y)
    if activation == "sigmoid":
        return grad * y * (1 - y)
    return seqkern.softmax_backward(np.ascontiguousarray(y), np.ascontiguousarray(grad, dtype=y.dtype))


class Dense(Layer):
    """y = act(x W^T + b) over the last axis; W (units, in_features) as PyTorch's nn.Linear.

    ``activation``: None/'linear', 'relu', 'tanh', 'sigmoid' or 'softmax'. With ``logits=True``
    forward returns the pre-activation and backward takes its gradient: the model uses this to
    fuse a final softmax or sigmoid with the cross-entropy loss. Init: Glorot uniform, zero bias.
    """

    def __init__(self, in_features, units, activation=None, use_bias=True, *, dtype=np.float32, seed=None):
        super().__init__(dtype)
        if activation not in _ACTIVATIONS:
            raise ValueError(f"Dense: activation must be one of {_ACTIVATIONS}, got {activation!r}")
        self.in_features, self.units = int(in_features), int(units)
        self.activation = None if activation == "linear" else activation
        self.use_bias = bool(use_bias)
        self._add("weight", glorot_uniform(_rng(seed), self.in_features, self.units,
                                           (self.units, self.in_features), self.dtype))
        if self.use_bias:
            self._add("bias", np.zeros(self.units))

    def get_config(self):
        return {"class": "Dense", "in_features": self.in_features, "units": self.units,
                "activation": self.activation, "use_bias": self.use_bias, "dtype": self.dtype.name}

    @classmethod
    def param_shapes(cls, config):
        units = _size(config, "units")
        yield "weight", (units, _size(config, "in_features"))
        if config.get("use_bias", True):
            yield "bias", (units,)

    def output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.units,)

    def forward(self, x, lengths=None, training=False, logits=False, cache=True):
        x = np.asarray(x)
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Dense: x must have {self.in_features} features in its last axis, got shape {x.shape}")
        z = x @ self._p["weight"].T
        if self.use_bias:
            z += self._p["bias"]
        y = z if logits else activate(z, self.activation)
        if cache:
            self._x, self._y = x, (None if logits or self.activation is None else y)
        return y

    def backward(self, grad, logits=False):
        if not logits:
            grad = activation_backward(grad, self._y, self.activation)
        x2 = self._x.reshape(-1, self.in_features)
        g2 = grad.reshape(-1, self.units)
        self._g["weight"] += g2.T @ x2
        if self.use_bias:
            self._g["bias"] += g2.sum(axis=0)
        return (g2 @ self._p["weight"]).reshape(self._x.shape)

    def load_torch(self, state_dict, prefix=""):
        """Copy ``nn.Linear``'s ``weight`` and ``bias`` into this layer; ``prefix`` as
        :meth:`LSTM.load_torch`."""
        state_dict = TorchState(state_dict, prefix, "Dense")
        vals = {"weight": state_dict["weight"]}
        if self.use_bias:
            vals["bias"] = state_dict["bias"]
        self.set_params(vals)


class Dropout(Layer):
    """Inverted dropout: in training, zero each entry with probability ``rate`` and scale the rest
    by 1/(1-rate); identity otherwise."""

    def __init__(self, rate, *, dtype=np.float32, seed=None):
        super().__init__(dtype)
        if not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        self._gen = _rng(seed)

    def get_config(self):
        return {"class": "Dropout", "rate": self.rate, "dtype": self.dtype.name}

    def forward(self, x, lengths=None, training=False, cache=True):
        mask = None
        if training and self.rate > 0:
            keep = 1.0 - self.rate
            mask = (self._gen.random(x.shape, dtype=np.float32) < keep).astype(x.dtype) / x.dtype.type(keep)
        if cache:
            self._mask = mask
        return x if mask is None else x * mask

    def backward(self, grad):
        return grad if self._mask is None else grad * self._mask


def _np(t):
    """A torch tensor or array-like as a NumPy array."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return np.asarray(t)


class TorchState:
    """The entries of a PyTorch state dict under ``prefix`` (a module's name in a whole model's
    ``state_dict()``; ``"encoder"`` and ``"encoder."`` mean the same), looked up by their names in
    the module. A missing name raises KeyError naming the full key and the prefixes the dict holds."""

    def __init__(self, state_dict, prefix: str, who: str):
        if not isinstance(prefix, str):
            raise TypeError(f"{who}.load_torch: prefix must be a str, got {prefix!r}")
        self.state_dict, self.who = state_dict, who
        self.prefix = prefix + "." if prefix and not prefix.endswith(".") else prefix

    def __contains__(self, name: str) -> bool:
        return self.prefix + name in self.state_dict

    def __getitem__(self, name: str):
        key = self.prefix + name
        if key not in self.state_dict:
            prefixes = sorted({k.rsplit(".", 1)[0] + "." if "." in k else "" for k in self.state_dict})
            shown = ", ".join(repr(p) for p in prefixes[:20]) + (", ..." if len(prefixes) > 20 else "")
            raise KeyError(f"{self.who}.load_torch: the state dict has no {key!r}; it holds parameters under the "
                           f"prefixes [{shown}] (pass the module's one as prefix=)")
        return _np(self.state_dict[key])


class AttentionPool(Layer):
    """Additive attention pooling over time-major h (T, B, H), on
    ``seqkern.attention_pool_forward`` / ``attention_pool_backward``:
    u_t = tanh(h_t w^T + b), score_t = u_t . w_s, alpha = softmax over valid t,
    context = sum_t alpha_t h_t  -> (B, H). The weights of the last ``forward`` that kept its cache
    (not those of ``Sequential.predict``) are in ``self.alpha`` (T, B).
    Parameters: ``w`` (A, H), ``b`` (A,), ``w_s`` (A,). Init: Glorot-uniform w and w_s, zero b.
    """

    def __init__(self, input_size, attn_size=None, *, dtype=np.float32, seed=None):
        super().__init__(dtype)
        self.input_size = int(input_size)
        self.attn_size = int(attn_size) if attn_size is not None else self.input_size
        gen = _rng(seed)
        A, H = self.attn_size, self.input_size
        self._add("w", glorot_uniform(gen, H, A, (A, H), self.dtype))
        self._add("b", np.zeros(A))
        self._add("w_s", glorot_uniform(gen, A, 1, (A,), self.dtype))
        self.alpha = None

    def get_config(self):
        return {"class": "AttentionPool", "input_size": self.input_size, "attn_size": self.attn_size,
                "dtype": self.dtype.name}

    @classmethod
    def param_shapes(cls, config):
        H = _size(config, "input_size")
        A = H if config.get("attn_size") is None else _size(config, "attn_size")
        yield from (("w", (A, H)), ("b", (A,)), ("w_s", (A,)))

    def output_shape(self, input_shape):
        return (input_shape[0], self.input_size)

    def forward(self, h, lengths=None, training=False, cache=True):
        h = np.asarray(h)
        if h.ndim != 3 or h.shape[2] != self.input_size:
            raise ValueError(f"AttentionPool: h must have shape (T, B, {self.input_size}), got {h.shape}")
        lengths = None if lengths is None else np.ascontiguousarray(lengths, dtype=np.int64)
        p = self._p
        context, alpha, c = seqkern.attention_pool_forward(h, p["w"], p["b"], p["w_s"], lengths=lengths)
        if cache:
            self._cache, self.alpha = c, alpha
        return context

    def backward(self, grad):
        dh, dw, db, dws = seqkern.attention_pool_backward(self._cache, np.ascontiguousarray(grad, dtype=self.dtype))
        self._g["w"] += dw
        self._g["b"] += db
        self._g["w_s"] += dws
        self._cache = None
        return dh


class MeanPool(Layer):
    """Mean over the valid steps of time-major x (T, B, F) -> (B, F). No parameters."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(dtype)

    def get_config(self):
        return {"class": "MeanPool", "dtype": self.dtype.name}

    def output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def forward(self, x, lengths=None, training=False, cache=True):
        T, B = x.shape[:2]
        if lengths is None:
            w = np.full((T, B), 1.0 / max(T, 1), dtype=x.dtype)
        else:
            L = np.asarray(lengths)
            w = ((np.arange(T)[:, None] < L[None, :]) / np.maximum(L, 1)[None, :]).astype(x.dtype)
        if cache:
            self._w = w
        return np.einsum("tbf,tb->bf", x, w)

    def backward(self, grad):
        return self._w[:, :, None] * grad[None, :, :]


class TimeDistributed(Layer):
    """Apply ``layer`` (a :class:`Dense`, or any layer over the last axis) to every step of a
    time-major sequence (T, B, F) -> (T, B, units): the per-token output of a sequence labeller,
    after a recurrent layer with ``return_sequences=True``. Its parameters are the inner layer's
    (the same arrays, under the same names). ``Sequential`` returns a per-token output
    batch-major, (B, T, units), and masks its loss and metrics to the real tokens."""

    def __init__(self, layer, *, dtype=None):
        if isinstance(layer, dict):
            layer = layer_from_config(layer)
        if not isinstance(layer, Layer) or isinstance(layer, TimeDistributed):
            raise TypeError(f"TimeDistributed: layer must be a Layer such as Dense, got {type(layer).__name__}")
        super().__init__(layer.dtype if dtype is None else dtype)
        self.layer = layer
        self._p, self._g = layer.params(), layer.grads()

    @property
    def activation(self):
        return getattr(self.layer, "activation", None)

    @property
    def units(self):
        return getattr(self.layer, "units", None)

    def get_config(self):
        return {"class": "TimeDistributed", "layer": self.layer.get_config()}

    @classmethod
    def param_shapes(cls, config):
        inner = config.get("layer")
        if not isinstance(inner, dict):
            raise ValueError(f"TimeDistributed: layer must be a layer config, got {inner!r}")
        return layer_class(inner).param_shapes(inner)

    def output_shape(self, input_shape):
        return tuple(input_shape[:2]) + tuple(self.layer.output_shape((None,) + tuple(input_shape[2:])))[1:]

    def set_params(self, values):
        self.layer.set_params(values)

    def forward(self, x, lengths=None, training=False, logits=False, cache=True):
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"TimeDistributed: x must be a sequence (T, B, F), got shape {x.shape}")
        T, B = x.shape[:2]
        kw = {"logits": True} if logits else {}
        y = self.layer.forward(x.reshape(T * B, -1), training=training, cache=cache, **kw)
        return y.reshape(T, B, *y.shape[1:])

    def backward(self, grad, logits=False):
        T, B = grad.shape[:2]
        kw = {"logits": True} if logits else {}
        dx = self.layer.backward(np.reshape(grad, (T * B,) + grad.shape[2:]), **kw)
        return None if dx is None else dx.reshape(T, B, *dx.shape[1:])


# The recurrent layers live in .recurrent, which builds on the helpers above; imported here so that
# ``layers.LSTM`` keeps working and the registry knows them.
from .recurrent import GRU, LSTM, SimpleRNN  # noqa: E402
from .conv import Conv1D, GlobalMaxPool1D  # noqa: E402

_CLASSES = {c.__name__: c for c in (Embedding, Dense, Dropout, LSTM, GRU, SimpleRNN, AttentionPool, MeanPool,
                                    TimeDistributed, Conv1D, GlobalMaxPool1D)}


def layer_class(config: dict) -> type:
    """The Layer subclass ``config`` (from ``layer.get_config()``) names; ValueError if none."""
    name = config.get("class")
    if not isinstance(name, str) or name not in _CLASSES:
        raise ValueError(f"unknown layer class {name!r}; known: {sorted(_CLASSES)}")
    return _CLASSES[name]


def layer_from_config(config: dict) -> Layer:
    """Build a layer (with fresh parameters) from ``layer.get_config()``."""
    cfg = dict(config)
    cls = layer_class(cfg)
    del cfg["class"]
    return cls(**cfg)
