"""Optimizers over dicts of named NumPy parameters, updated in place.

``step(params, grads)`` takes two dicts with the same keys. ``clipnorm`` rescales all gradients
together when their global L2 norm exceeds it (Keras' ``global_clipnorm``, PyTorch's
``clip_grad_norm_``). ``weight_decay`` applies to parameters with two or more dimensions (weight
matrices, embeddings), not to biases and vectors: L2 added to the gradient for SGD, decoupled
(AdamW) for Adam. ``ema``: also keep an exponential moving average of every parameter
(e = ema * e + (1 - ema) * p after each step, starting from the first updated values), as Keras'
``use_ema``; ``Sequential.fit`` evaluates with the averages and leaves them in the model.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["Optimizer", "SGD", "Adam", "get_optimizer", "global_norm"]


def global_norm(grads) -> float:
    return math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))


class Optimizer:
    def __init__(self, lr: float, clipnorm: float | None = None, weight_decay: float = 0.0,
                 ema: float | None = None):
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be > 0, got {lr}")
        if ema is not None and not 0 <= ema < 1:
            raise ValueError(f"{type(self).__name__}: ema must be in [0, 1), got {ema}")
        self.lr, self.clipnorm, self.weight_decay = float(lr), clipnorm, float(weight_decay)
        self.ema = ema
        self.ema_params: dict[str, np.ndarray] = {}
        self.state: dict[str, dict[str, np.ndarray]] = {}
        self.iterations = 0

    def step(self, params: dict, grads: dict) -> float:
        """Update every parameter in place; returns the global gradient norm before clipping."""
        norm = global_norm(grads)
        scale = 1.0
        if self.clipnorm is not None and norm > self.clipnorm:
            scale = self.clipnorm / (norm + 1e-12)
        self.iterations += 1
        for k, p in params.items():
            self._update(k, p, grads[k], scale)
            if self.ema is not None:
                e = self.ema_params.get(k)
                if e is None:
                    self.ema_params[k] = p.copy()
                else:
                    d = p - e
                    d *= p.dtype.type(1 - self.ema)
                    e += d
        return norm

    def _decays(self, p) -> bool:
        return self.weight_decay > 0 and p.ndim >= 2

    def _update(self, key, p, g, scale):
        raise NotImplementedError


class SGD(Optimizer):
    """v = momentum * v + g (+ weight_decay * p);  p -= lr * v  (Nesterov: p -= lr * (g + momentum * v))."""

    def __init__(self, lr=0.01, momentum=0.0, nesterov=False, *, clipnorm=None, weight_decay=0.0, ema=None):
        super().__init__(lr, clipnorm, weight_decay, ema)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)

    def _update(self, key, p, g, scale):
        g = g * p.dtype.type(scale) if scale != 1.0 else g
        if self._decays(p):
            g = g + p.dtype.type(self.weight_decay) * p
        if self.momentum == 0:
            p -= p.dtype.type(self.lr) * g
            return
        st = self.state.setdefault(key, {"v": np.zeros_like(p)})
        v = st["v"]
        v *= p.dtype.type(self.momentum)
        v += g
        step = g + p.dtype.type(self.momentum) * v if self.nesterov else v
        p -= p.dtype.type(self.lr) * step


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction; ``weight_decay`` is decoupled: p -= lr * wd * p."""

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, *, clipnorm=None, weight_decay=0.0, ema=None):
        super().__init__(lr, clipnorm, weight_decay, ema)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def _update(self, key, p, g, scale):
        st = self.state.get(key)
        if st is None:
            st = self.state[key] = {"m": np.zeros_like(p), "v": np.zeros_like(p), "tmp": np.zeros_like(p)}
        m, v, tmp = st["m"], st["v"], st["tmp"]
        t = self.iterations
        b1, b2 = self.beta1, self.beta2
        np.multiply(g, p.dtype.type((1 - b1) * scale), out=tmp)
        m *= p.dtype.type(b1)
        m += tmp
        np.multiply(g, g, out=tmp)
        tmp *= p.dtype.type((1 - b2) * scale * scale)
        v *= p.dtype.type(b2)
        v += tmp
        lr_t = self.lr * math.sqrt(1 - b2**t) / (1 - b1**t)
        eps_t = self.eps * math.sqrt(1 - b2**t)
        if self._decays(p):
            p *= p.dtype.type(1 - self.lr * self.weight_decay)
        np.sqrt(v, out=tmp)
        tmp += p.dtype.type(eps_t)
        np.divide(m, tmp, out=tmp)
        tmp *= p.dtype.type(lr_t)
        p -= tmp


def get_optimizer(opt, **kw):
    if isinstance(opt, Optimizer):
        return opt
    table = {"adam": Adam, "sgd": SGD}
    if opt not in table:
        raise ValueError(f"unknown optimizer {opt!r}; known: {sorted(table)}")
    return table[opt](**kw)
