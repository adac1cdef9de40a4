"""Convolution over time and max pooling, for CNN and CNN + LSTM text models (Keras's ``Conv1D``
and ``GlobalMaxPooling1D``), time-major like the other layers.

Both respect the rows' lengths: a row's output is what the same row alone would give, never
depending on how far the batch is padded. ``Conv1D`` sees zeros outside a row's valid steps and
writes zeros past its length, so its output has the input's lengths and can feed an LSTM,
``AttentionPool`` or ``GlobalMaxPool1D``. Only the length-keeping paddings are offered
(``"same"``, ``"causal"``), with stride 1.
"""

from __future__ import annotations

import numpy as np

from .layers import _ACTIVATIONS, Layer, _rng, _size, activate, activation_backward, glorot_uniform

__all__ = ["Conv1D", "GlobalMaxPool1D"]


def _valid(T: int, B: int, lengths, dtype):
    """The (T, B, 1) 0/1 mask of the steps each row has, or None when every row has all T."""
    if lengths is None:
        return None
    L = np.asarray(lengths)
    return (np.arange(T)[:, None] < L[None, :]).astype(dtype)[:, :, None]


class Conv1D(Layer):
    """y_t = act(b + sum_j x_{t + j d - p} W_j) over time-major x (T, B, C) -> (T, B, filters).

    ``kernel`` (kernel_size, C, filters) and ``bias`` (filters,) are Keras's Conv1D weights (the
    same names and layout: a Keras layer's ``get_weights()`` loads with ``set_params``). Padding:
    ``"same"`` puts p = (kernel_size - 1) * dilation_rate // 2 zeros before the sequence and the
    rest after it (Keras's split for stride 1), ``"causal"`` puts them all before, so y_t sees
    x_{<=t} only. ``activation`` as in ``Dense``. Init: Glorot uniform over the receptive field
    (fan in kernel_size * C, fan out kernel_size * filters), zero bias, as Keras.
    """

    def __init__(self, input_size, filters, kernel_size, padding="same", dilation_rate=1, activation=None,
                 use_bias=True, *, dtype=np.float32, seed=None):
        super().__init__(dtype)
        cfg = {"class": "Conv1D", "input_size": input_size, "filters": filters, "kernel_size": kernel_size,
               "dilation_rate": dilation_rate}
        self.input_size, self.filters = _size(cfg, "input_size", 1), _size(cfg, "filters", 1)
        self.kernel_size, self.dilation_rate = _size(cfg, "kernel_size", 1), _size(cfg, "dilation_rate", 1)
        if padding not in ("same", "causal"):
            raise ValueError(f"Conv1D: padding must be 'same' or 'causal' (the paddings that keep each row's "
                             f"length), got {padding!r}")
        if activation not in _ACTIVATIONS:
            raise ValueError(f"Conv1D: activation must be one of {_ACTIVATIONS}, got {activation!r}")
        self.padding, self.activation = padding, (None if activation == "linear" else activation)
        self.use_bias = bool(use_bias)
        k, C, F = self.kernel_size, self.input_size, self.filters
        self._add("kernel", glorot_uniform(_rng(seed), k * C, k * F, (k, C, F), self.dtype))
        if self.use_bias:
            self._add("bias", np.zeros(F))

    def get_config(self):
        return {"class": "Conv1D", "input_size": self.input_size, "filters": self.filters,
                "kernel_size": self.kernel_size, "padding": self.padding, "dilation_rate": self.dilation_rate,
                "activation": self.activation, "use_bias": self.use_bias, "dtype": self.dtype.name}

    @classmethod
    def param_shapes(cls, config):
        F = _size(config, "filters", 1)
        yield "kernel", (_size(config, "kernel_size", 1), _size(config, "input_size", 1), F)
        if config.get("use_bias", True):
            yield "bias", (F,)

    def output_shape(self, input_shape):
        return tuple(input_shape)[:-1] + (self.filters,)

    @property
    def _pad_before(self) -> int:
        span = (self.kernel_size - 1) * self.dilation_rate
        return span if self.padding == "causal" else span // 2

    def _columns(self, x):
        """(T, B, kernel_size, C): x's window of every output step, zeros outside the sequence."""
        T, B, C = x.shape
        k, d, before = self.kernel_size, self.dilation_rate, self._pad_before
        span = (k - 1) * d
        padded = np.zeros((T + span, B, C), x.dtype)
        padded[before:before + T] = x
        return np.stack([padded[j * d:j * d + T] for j in range(k)], axis=2)

    def forward(self, x, lengths=None, training=False, cache=True):
        x = np.asarray(x)
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"Conv1D: x must have shape (T, B, {self.input_size}), got {x.shape}")
        x = x.astype(self.dtype, copy=False)
        T, B, _ = x.shape
        valid = _valid(T, B, lengths, self.dtype)
        cols = self._columns(x if valid is None else x * valid)
        k, C, F = self.kernel_size, self.input_size, self.filters
        z = cols.reshape(T * B, k * C) @ self._p["kernel"].reshape(k * C, F)
        if self.use_bias:
            z += self._p["bias"]
        y = activate(z.reshape(T, B, F), self.activation)
        if valid is not None:
            y = y * valid
        if cache:
            self._cols, self._valid, self._y = cols, valid, y
        return y

    def backward(self, grad):
        grad = np.asarray(grad, dtype=self.dtype)
        valid = self._valid
        if valid is not None:
            grad = grad * valid
        g = activation_backward(grad, self._y, self.activation)
        T, B, F = g.shape
        k, C, d, before = self.kernel_size, self.input_size, self.dilation_rate, self._pad_before
        g2 = g.reshape(T * B, F)
        self._g["kernel"] += (self._cols.reshape(T * B, k * C).T @ g2).reshape(k, C, F)
        if self.use_bias:
            self._g["bias"] += g2.sum(axis=0)
        dcols = (g2 @ self._p["kernel"].reshape(k * C, F).T).reshape(T, B, k, C)
        dpadded = np.zeros((T + (k - 1) * d, B, C), self.dtype)
        for j in range(k):
            dpadded[j * d:j * d + T] += dcols[:, :, j]
        dx = dpadded[before:before + T]
        self._cols = None
        return dx if valid is None else dx * valid


class GlobalMaxPool1D(Layer):
    """The maximum over each row's valid steps of time-major x (T, B, F) -> (B, F) (Keras's
    ``GlobalMaxPooling1D``); a row of length 0 gives zeros. The gradient goes to the first step
    that holds the maximum. No parameters."""

    def __init__(self, *, dtype=np.float32):
        super().__init__(dtype)

    def get_config(self):
        return {"class": "GlobalMaxPool1D", "dtype": self.dtype.name}

    def output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])

    def forward(self, x, lengths=None, training=False, cache=True):
        x = np.asarray(x)
        if x.ndim != 3:
            raise ValueError(f"GlobalMaxPool1D: x must be a sequence (T, B, F), got shape {x.shape}")
        T, B, F = x.shape
        valid = _valid(T, B, lengths, bool)
        scores = x if valid is None else np.where(valid, x, -np.inf)
        empty = np.zeros((B, 1), bool) if valid is None else ~valid.any(axis=0)
        if T == 0:
            top, out = np.zeros((B, F), np.int64), np.zeros((B, F), x.dtype)
        else:
            top = np.argmax(scores, axis=0)  # (B, F), the first maximum
            out = np.where(empty, 0, np.take_along_axis(x, top[None], axis=0)[0]).astype(x.dtype)
        if cache:
            self._shape, self._top, self._empty = x.shape, top, empty
        return out

    def backward(self, grad):
        T, B, F = self._shape
        dx = np.zeros((T, B, F), self.dtype)
        if T:
            g = np.where(self._empty, 0, np.asarray(grad, dtype=self.dtype))
            np.put_along_axis(dx, self._top[None], g[None], axis=0)
        return dx
