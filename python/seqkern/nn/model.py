"""``Sequential``: a Keras-like model over the layers in ``seqkern.nn``.

    model = Sequential([Embedding(V, 64), LSTM(64, 64, return_sequences=True),
                        AttentionPool(64), Dense(64, n, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(X, y, epochs=10, batch_size=64, validation_data=(Xv, yv))

Inputs are batch-major, as data is stored: token ids as a list of variable-length sequences or a
padded (N, T) array, or features (N, T, D). Lengths come from the ragged lists, from
``lengths=``, or from the Embedding's padding index (trailing padding); batches are padded only
to their own longest row and, in ``fit``, bucketed by length, so the kernels skip the padding.

``fit``, ``predict`` and ``evaluate`` check their arguments before any work (token ids, labels,
sizes, lengths, what early stopping monitors) and raise TypeError/ValueError naming the call and
the argument. ``predict`` and ``evaluate`` keep no state on the model, so threads can share one.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np

from . import metrics as _metrics
from ._files import ModelArchive, write_npz
from .callbacks import Callback, EarlyStopping, as_callback
from .layers import Embedding, Layer, layer_class, layer_from_config
from .losses import get_loss
from .optim import Adam, Optimizer, get_optimizer

__all__ = ["Sequential", "EarlyStopping", "load_model"]


class _Progress:
    """tqdm when it is installed, otherwise a one-line text bar on stderr."""

    def __init__(self, total, desc, enabled, unit="batch", start=0):
        self.total, self.desc, self.enabled = total, desc, enabled
        self.n, self.t0, self.last, self.post = start, time.perf_counter(), 0.0, ""
        self.bar = None
        if enabled:
            try:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=total, desc=desc, unit=unit, initial=start, leave=True)
            except ImportError:
                self.bar = None

    def update(self, n=1, **post):
        self.n += n
        self.post = " ".join(f"{k} {v}" if isinstance(v, str) else f"{k} {v:.4f}" for k, v in post.items())
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(n)
            self.bar.set_postfix(post, refresh=False)
            return
        now = time.perf_counter()
        if now - self.last > 0.1 or self.n == self.total:
            self.last = now
            self._draw(now)

    def _draw(self, now, extra=""):
        frac = self.n / max(self.total, 1)
        filled = int(25 * frac)
        bar = "=" * filled + (">" if filled < 25 else "") + " " * (24 - filled)
        sys.stderr.write(f"\r{self.desc} [{bar}] {self.n}/{self.total} {now - self.t0:.1f}s {self.post}{extra}")
        sys.stderr.flush()

    def close(self, extra=""):
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.set_postfix_str(self.post + extra, refresh=False)
            self.bar.close()
            return
        self._draw(time.perf_counter(), extra)
        sys.stderr.write("\n")
        sys.stderr.flush()


def _count(value, fn: str, name: str, minimum: int = 1) -> int:
    """``value`` as an int of at least ``minimum``; TypeError/ValueError naming ``fn`` and ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{fn}: {name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{fn}: {name} must be >= {minimum}, got {value}")
    return int(value)


def _check_ids(lo: int, hi: int, emb: Embedding, where: str) -> None:
    if lo < 0 or hi >= emb.num_embeddings:
        bad = lo if lo < 0 else hi
        raise ValueError(f"{where} holds token id {bad}, outside the Embedding's [0, {emb.num_embeddings})")


class _Inputs:
    """Batch-major model inputs with per-row lengths, checked before any work (``fn`` and
    ``name`` name the call and the argument in errors); ``batch(idx)`` pads to the batch's
    longest row. A model that starts with an Embedding takes integer token ids only: a float
    id is refused, never truncated."""

    def __init__(self, x, lengths, first, dtype, fn, name="x"):
        emb = first if isinstance(first, Embedding) else None
        pad_id = None if emb is None else emb.padding_idx
        self.pad_id = 0 if pad_id is None else pad_id
        self.dtype = dtype
        if isinstance(x, (list, tuple)):
            if emb is None:
                raise TypeError(f"{fn}: {name} as a list of sequences needs a model that starts with an Embedding; "
                                "give features as an (N, T, D) array")
            rows = [np.asarray(s) for s in x]
            for i, r in enumerate(rows):
                if r.ndim != 1 or (r.size and r.dtype.kind not in "iu"):
                    raise TypeError(f"{fn}: {name}[{i}] must be a sequence of integer token ids, "
                                    f"got {r.dtype} of shape {r.shape}")
            nonempty = [r for r in rows if r.size]
            if nonempty:
                lo, hi = min(int(r.min()) for r in nonempty), max(int(r.max()) for r in nonempty)
                _check_ids(lo, hi, emb, f"{fn}: {name}")
            self.ragged = [r.astype(np.int64) for r in rows]
            self.n = len(self.ragged)
            self.lengths = np.array([len(s) for s in self.ragged], dtype=np.int64)
            self.array = None
            return
        self.ragged = None
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError(f"{fn}: {name} must hold one row per example, got a scalar")
        if emb is not None:
            if x.ndim != 2 or x.dtype.kind not in "iu":
                raise TypeError(f"{fn}: {name} must be integer token ids (N, T) (the model starts with an Embedding), "
                                f"got {x.dtype} of shape {x.shape}")
            if x.size:
                _check_ids(int(x.min()), int(x.max()), emb, f"{fn}: {name}")
        self.array, self.n = x, x.shape[0]
        if lengths is not None:
            lengths = np.asarray(lengths)
            if lengths.dtype.kind not in "iu":
                raise TypeError(f"{fn}: lengths must be integers, got {lengths.dtype}")
            self.lengths = lengths.astype(np.int64)
            top = x.shape[1] if x.ndim > 1 else 1
            if lengths.shape != (self.n,) or (self.n and (lengths.min() < 0 or lengths.max() > top)):
                got = (f"shape {lengths.shape}" if lengths.shape != (self.n,)
                       else f"values in [{lengths.min()}, {lengths.max()}]")
                raise ValueError(f"{fn}: lengths must have shape ({self.n},) and values in [0, {top}], got {got}")
        elif x.ndim == 2 and x.dtype.kind in "iu" and pad_id is not None:
            nonpad = x != pad_id
            last = x.shape[1] - np.argmax(nonpad[:, ::-1], axis=1)
            self.lengths = np.where(nonpad.any(axis=1), last, 0).astype(np.int64)
        else:
            self.lengths = np.full(self.n, x.shape[1] if x.ndim > 1 else 1, dtype=np.int64)

    def subset(self, idx) -> "_Inputs":
        """The rows ``idx`` as inputs of their own (``fit``'s ``validation_split``)."""
        out = object.__new__(_Inputs)
        out.pad_id, out.dtype = self.pad_id, self.dtype
        out.ragged = None if self.ragged is None else [self.ragged[i] for i in idx]
        out.array = None if self.array is None else self.array[idx]
        out.lengths, out.n = self.lengths[idx], len(idx)
        return out

    @property
    def width(self) -> int:
        """The padded length of all rows together (the time axis of a per-token output)."""
        if self.array is not None and self.array.ndim > 1:
            return self.array.shape[1]
        return int(self.lengths.max(initial=0))

    def batch(self, idx):
        lens = self.lengths[idx]
        T = int(lens.max(initial=0))
        if self.ragged is not None:
            xb = np.full((len(idx), T), self.pad_id, dtype=np.int64)
            for r, i in enumerate(idx):
                xb[r, : lens[r]] = self.ragged[i]
        else:
            xb = self.array[idx, :T] if self.array.ndim > 1 else self.array[idx]
            if xb.dtype.kind == "f":
                xb = xb.astype(self.dtype, copy=False)
        if xb.ndim > 1 and np.all(lens == xb.shape[1]):
            lens = None
        return xb, lens


class Sequential:
    """A stack of layers trained with one loss and one optimizer (see the module docstring)."""

    def __init__(self, layers: list[Layer]):
        self.layers = list(layers)
        self._check_layers()
        self.loss = None
        self.optimizer: Optimizer | None = None
        self.metrics: tuple = ()
        self.extra: dict = {}
        self.stop_training = False
        self.history: dict = {}

    def _check_layers(self):
        for i, layer in enumerate(self.layers):
            if getattr(layer, "return_state", False):
                raise ValueError(f"Sequential: layer {i} ({type(layer).__name__}) has return_state=True, which returns "
                                 "a tuple no next layer takes; call it directly or use it in a functional Model")

    # -- configuration ------------------------------------------------------------------------

    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
        """``metrics``: any of 'accuracy', 'precision', 'recall', 'f1', 'auc' (see
        ``seqkern.nn.metrics``), computed over the whole epoch and over the validation data."""
        metrics = tuple(metrics or ())
        for m in metrics:
            if m not in _metrics.METRICS:
                raise ValueError(f"compile: metrics holds {m!r}; known metrics: {list(_metrics.METRICS)}")
        self.optimizer = get_optimizer(optimizer) if not isinstance(optimizer, Optimizer) else optimizer
        self.loss = get_loss(loss)
        self.metrics = metrics
        return self

    def params(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params().items()}

    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads().items()}

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

    @property
    def stateful(self) -> bool:
        """Whether a layer carries its states from one batch to the next (``stateful=True``)."""
        return any(getattr(layer, "stateful", False) for layer in self.layers)

    def reset_states(self):
        """Zero the carried states of every stateful layer."""
        for layer in self.layers:
            if getattr(layer, "stateful", False):
                layer.reset_states()

    def _batches(self, data, batch_size, shuffle, bucket, rng):
        """Row indices of each batch. A stateful model keeps the rows in order (row i of one
        batch continues row i of the previous one), so it never buckets or shuffles."""
        if self.stateful:
            return [np.arange(i, min(i + batch_size, data.n)) for i in range(0, data.n, batch_size)]
        if bucket:
            return _bucket(data.lengths, batch_size, shuffle, rng)
        order = rng.permutation(data.n) if shuffle else np.arange(data.n)
        return [order[i : i + batch_size] for i in range(0, data.n, batch_size)]

    def get_config(self) -> dict:
        return {"layers": [layer.get_config() for layer in self.layers],
                "loss": getattr(self.loss, "name", None), "metrics": list(self.metrics)}

    @property
    def dtype(self):
        for layer in self.layers:
            if layer.params():
                return layer.dtype
        return np.dtype(np.float32)

    def _inputs(self, x, lengths, fn, name="x") -> _Inputs:
        return _Inputs(x, lengths, self.layers[0] if self.layers else None, self.dtype, fn, name)

    def _input_shape(self):
        """The model's input shape as Keras shows it, or None when the first layer does not say."""
        first = self.layers[0] if self.layers else None
        if isinstance(first, Embedding):
            return (None, None)
        if hasattr(first, "input_size"):
            return (None, None, first.input_size)
        if hasattr(first, "in_features"):
            return (None, first.in_features)
        return None

    def output_shapes(self) -> list:
        """Each layer's output shape, batch-major, None for the batch and unknown lengths (all
        None when the first layer does not say what it takes)."""
        shape, out = self._input_shape(), []
        for layer in self.layers:
            shape = None if shape is None else layer.output_shape(shape)
            out.append(shape)
        return out

    @property
    def per_token(self) -> bool:
        """Whether the model outputs one vector per step (a sequence labeller): targets are then
        one label per token, and the loss and metrics count the real tokens only."""
        shapes = self.output_shapes()
        return bool(shapes) and shapes[-1] is not None and len(shapes[-1]) == 3

    def _targets(self, y, data: _Inputs, fn, xname="x", yname="y") -> np.ndarray:
        """``y`` as an array with one row per row of ``data``, checked by the loss (class ids
        whole and in range, binary targets in [0, 1]). Per-token targets (lists of labels, or
        (N, T) arrays) are padded to ``data``'s width; only the real tokens are checked."""
        check = getattr(self.loss, "check_targets", None)
        units = getattr(self.layers[-1], "units", None) if self.layers else None
        if self.per_token:
            return self._token_targets(y, data, fn, xname, yname, check, units)
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != data.n:
            raise ValueError(f"{fn}: {xname} has {data.n} rows but {yname} has {len(y) if y.ndim else 'none (a scalar)'}")
        if check is not None:
            check(y, f"{fn}: {yname}", units)
        return y

    def _token_targets(self, y, data, fn, xname, yname, check, units):
        n = len(y) if isinstance(y, (list, tuple)) or np.ndim(y) else None
        if n != data.n:
            raise ValueError(f"{fn}: {xname} has {data.n} rows but {yname} has {n if n is not None else 'none'}")
        W = data.width
        if isinstance(y, (list, tuple)):
            rows = [np.asarray(r) for r in y]
            out = np.zeros((data.n, W), dtype=np.int64)
            for i, r in enumerate(rows):
                if r.ndim != 1 or len(r) != data.lengths[i]:
                    raise ValueError(f"{fn}: {yname}[{i}] has {len(r) if r.ndim == 1 else r.shape} labels but "
                                     f"{xname}[{i}] has {data.lengths[i]} tokens")
                if r.size and r.dtype.kind not in "iu":
                    raise TypeError(f"{fn}: {yname}[{i}] must hold integer class ids, got {r.dtype}")
                out[i, : len(r)] = r
            y = out
        else:
            y = np.asarray(y)
            if y.ndim < 2 or y.shape[1] < int(data.lengths.max(initial=0)):
                raise ValueError(f"{fn}: {yname} must hold one label per token, (N, T) with T >= the longest row "
                                 f"({int(data.lengths.max(initial=0))}), got shape {y.shape}")
        if check is not None:
            check(y[_token_mask(data.lengths, y.shape[1])], f"{fn}: {yname}", units)
        return y

    def _sample_weights(self, sample_weight, class_weight, y, n, fn="fit"):
        """Per-row weights from ``sample_weight`` (N,) times ``class_weight[y]``, or None."""
        w = None
        if sample_weight is not None:
            w = np.asarray(sample_weight)
            if w.dtype.kind not in "biuf":
                raise TypeError(f"{fn}: sample_weight must hold numbers, got {w.dtype}")
            if w.shape != (n,):
                raise ValueError(f"{fn}: sample_weight must have shape ({n},), one weight a row, got {w.shape}")
            w = w.astype(np.float64)
            if not np.all(np.isfinite(w) & (w >= 0)):
                raise ValueError(f"{fn}: sample_weight must hold finite weights >= 0, got {_first_bad(w)}")
        if class_weight is not None:
            if not isinstance(class_weight, dict):
                raise TypeError(f"{fn}: class_weight must be a dict {{class id: weight}}, got {type(class_weight).__name__}")
            if self.per_token:
                raise ValueError(f"{fn}: class_weight weighs one label a row; a per-token model takes sample_weight")
            units = getattr(self.layers[-1], "units", None)
            classes = max(units, 2) if units is not None else None
            for c, v in class_weight.items():
                if isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0 or (classes and c >= classes):
                    raise ValueError(f"{fn}: class_weight has key {c!r}; keys must be class ids in [0, {classes})")
                if isinstance(v, bool) or not isinstance(v, (int, float, np.number)) or not (np.isfinite(v) and v >= 0):
                    raise ValueError(f"{fn}: class_weight[{c}] must be a finite number >= 0, got {v!r}")
            y = np.asarray(y)
            ids = y.argmax(axis=1) if y.ndim == 2 and y.shape[1] > 1 else np.rint(y.reshape(len(y), -1)[:, 0])
            cw = np.array([class_weight.get(int(c), 1.0) for c in ids], dtype=np.float64)
            w = cw if w is None else w * cw
        return w

    # -- forward / backward -------------------------------------------------------------------

    def _fused(self):
        last = self.layers[-1]
        fuses = getattr(self.loss, "fuses", None)
        return fuses is not None and getattr(last, "activation", None) == fuses

    def forward(self, x, lengths=None, training=False, logits=False, cache=True):
        """Run the layers on one batch (batch-major input); returns the model output, or the final
        pre-activation when ``logits`` and the last layer is a Dense. A sequence output comes back
        batch-major (B, T, F), as the input went in. ``cache=False`` keeps nothing on the layers
        (no ``backward`` after it), which makes the call reentrant."""
        if x.ndim == 3 and self.layers[0].input_layout == "time":
            x = x.transpose(1, 0, 2)
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            if i == n - 1 and logits and hasattr(layer, "activation"):
                x = layer.forward(x, lengths=lengths, training=training, logits=True, cache=cache)
            else:
                x = layer.forward(x, lengths=lengths, training=training, cache=cache)
        return x.transpose(1, 0, 2) if x.ndim == 3 else x

    def backward(self, grad, logits=False):
        if grad.ndim == 3:
            grad = grad.transpose(1, 0, 2)
        n = len(self.layers)
        for i in reversed(range(n)):
            layer = self.layers[i]
            if i == n - 1 and logits and hasattr(layer, "activation"):
                grad = layer.backward(grad, logits=True)
            else:
                grad = layer.backward(grad)
            if grad is None:
                break
        return grad

    def _loss(self, out, y, lengths, weights):
        """The loss of one batch, with the per-token mask and the row weights when there are any."""
        kw = {}
        if weights is not None:
            kw["sample_weight"] = weights
        if out.ndim == 3 and self.per_token:
            kw["mask"] = _token_mask(lengths, out.shape[1], out.shape[0])
        return self.loss(out, y, **kw)

    def loss_and_grads(self, x, y, lengths=None, training=True, sample_weight=None):
        """Forward and backward on one batch; gradients are left in ``grads()`` (zeroed first).
        Returns (loss, model output before a fused activation)."""
        if self.loss is None:
            raise RuntimeError("call compile() before training")
        fused = self._fused()
        self.zero_grad()
        out = self.forward(x, lengths=lengths, training=training, logits=fused)
        loss, g = self._loss(out, y, lengths, sample_weight)
        self.backward(g.astype(out.dtype, copy=False), logits=fused)
        return loss, out

    def train_on_batch(self, x, y, lengths=None, sample_weight=None):
        loss, out = self.loss_and_grads(x, y, lengths=lengths, training=True, sample_weight=sample_weight)
        self.optimizer.step(self.params(), self.grads())
        return loss, out

    def _swap_ema(self):
        """Exchange the parameters with the optimizer's moving averages (a no-op without them)."""
        ema = getattr(self.optimizer, "ema_params", None)
        if not ema:
            return
        for k, p in self.params().items():
            tmp = p.copy()
            p[...] = ema[k]
            ema[k][...] = tmp

    # -- training and inference ---------------------------------------------------------------

    def _scored(self, out, y, lengths):
        """(scores, truth) of one batch for the metrics: class probabilities (N, C) or the
        probability of class 1 (N,), and class ids (N,); per-token outputs give their real tokens."""
        fuses = getattr(self.loss, "fuses", None) if self._fused() else None
        out = np.asarray(out, dtype=np.float64)
        y = np.asarray(y)
        if out.ndim == 3:
            mask = _token_mask(lengths, out.shape[1], out.shape[0])
            out, y = out[mask], y[:, : mask.shape[1]][mask]
        if fuses == "softmax":
            out = np.exp(out - out.max(axis=-1, keepdims=True))
            out /= out.sum(axis=-1, keepdims=True)
        elif fuses == "sigmoid":
            out = 1.0 / (1.0 + np.exp(-out))
        if out.ndim == 2 and out.shape[1] > 1:
            truth = y.argmax(axis=1) if y.ndim == 2 else y
            return out, truth.astype(np.int64)
        return out.reshape(-1), (y.reshape(-1) > 0.5).astype(np.int64)

    def _computed(self, validation: bool) -> set:
        """The names of the logs a fit with these metrics (and validation data) computes."""
        names = {"loss"} | set(self.metrics)
        done = names | {"time", "tokens_per_s", "learning_rate"}
        return done | ({f"val_{k}" for k in names} if validation else set())

    def fit(self, x, y, epochs=1, batch_size=32, *, validation_data=None, validation_split=0.0, lengths=None,
            shuffle=True, bucket=True, verbose=1, early_stopping=None, seed=None, callbacks=(), class_weight=None,
            sample_weight=None):
        """Train; returns a history dict of per-epoch lists ('loss', 'accuracy', 'val_loss', ...),
        also kept as ``self.history``.

        ``validation_data``: (x, y) or (x, y, lengths). ``validation_split``: instead, hold out
        this fraction of the rows, the last ones before any shuffling (as Keras). ``sample_weight``
        (N,): each row's weight in the loss; ``class_weight``: {class id: weight} multiplies it by
        the weight of the row's class (absent classes weigh 1). Neither weighs the validation
        loss. ``early_stopping``: an :class:`EarlyStopping` or an int patience on 'val_accuracy'
        (or 'accuracy' without validation data). ``bucket``: group rows of similar length into
        batches. ``callbacks``: :class:`~seqkern.nn.callbacks.Callback` objects, or functions
        called as ``cb(model, epoch, logs)`` after every epoch.
        """
        if self.optimizer is None:
            self.compile()
        epochs = _count(epochs, "fit", "epochs")
        batch_size = _count(batch_size, "fit", "batch_size")
        data = self._inputs(x, lengths, "fit")
        if data.n == 0:
            raise ValueError("fit: x has no rows; there is nothing to train on")
        y = self._targets(y, data, "fit")
        weights = self._sample_weights(sample_weight, class_weight, y, data.n)
        validation = self._validation(validation_data)
        split = _fraction(validation_split, "fit", "validation_split")
        if split > 0:
            if validation is not None:
                raise ValueError("fit: give validation_data or validation_split, not both")
            cut = int(np.floor(data.n * (1.0 - split)))
            if cut == 0 or cut == data.n:
                raise ValueError(f"fit: validation_split={split} of {data.n} rows leaves "
                                 f"{'no training' if cut == 0 else 'no validation'} rows")
            keep, held = np.arange(cut), np.arange(cut, data.n)
            validation = (data.subset(held), y[held])
            data, y = data.subset(keep), y[keep]
            weights = None if weights is None else weights[keep]
        if isinstance(early_stopping, bool) or not isinstance(early_stopping, (int, type(None), EarlyStopping)):
            raise TypeError(f"fit: early_stopping must be an EarlyStopping or an int patience, got {early_stopping!r}")
        if isinstance(early_stopping, int):
            early_stopping = EarlyStopping("val_accuracy" if validation is not None else "accuracy",
                                           patience=early_stopping)
        if callbacks is None:
            callbacks = ()
        elif isinstance(callbacks, Callback) or callable(callbacks):
            callbacks = [callbacks]
        cbs = [as_callback(cb, f"fit: callbacks[{i}]") for i, cb in enumerate(callbacks)]
        computed = self._computed(validation is not None)
        watched = [(f"callbacks[{i}] ({type(cb).__name__})", cb) for i, cb in enumerate(cbs)]
        if early_stopping is not None:
            watched.append(("early_stopping", early_stopping))
            cbs.append(early_stopping)
        for what, cb in watched:
            monitor = getattr(cb, "monitor", None)
            if monitor is not None and getattr(cb, "save_best_only", True) and monitor not in computed:
                raise ValueError(f"fit: {what} monitors {monitor!r}, which this fit never computes "
                                 f"(it computes {sorted(computed)})")
        if self.stateful and shuffle:
            raise ValueError("fit: shuffle must be False for a model with a stateful layer (its rows continue "
                             "from batch to batch)")
        rng = np.random.default_rng(seed)
        history: dict[str, list] = {}
        self.history = history
        self.stop_training = False
        use_acc = "accuracy" in self.metrics
        others = [m for m in self.metrics if m != "accuracy"]
        for cb in cbs:
            cb.set_model(self)
        for cb in cbs:
            cb.on_train_begin({})
        logs: dict = {}
        for epoch in range(epochs):
            self.reset_states()
            for cb in cbs:
                cb.on_epoch_begin(epoch, {})
            batches = self._batches(data, batch_size, shuffle, bucket, rng)
            bar = _Progress(len(batches), f"epoch {epoch + 1}/{epochs}", verbose > 0)
            tot_loss, hits, seen, t0, tokens = 0.0, 0, 0, time.perf_counter(), 0
            scored = []
            for b, idx in enumerate(batches):
                for cb in cbs:
                    cb.on_train_batch_begin(b, {"batch": b, "size": len(idx)})
                xb, lb = data.batch(idx)
                yb = y[idx] if not self.per_token else y[idx][:, : xb.shape[1]]
                loss, out = self.train_on_batch(xb, yb, lengths=lb, sample_weight=None if weights is None
                                                else weights[idx])
                count = int(data.lengths[idx].sum()) if self.per_token else len(idx)
                tot_loss += loss * count
                seen += count
                tokens += int(data.lengths[idx].sum())
                post = {"loss": tot_loss / max(seen, 1)}
                if use_acc or others:
                    scores, truth = self._scored(out, yb, lb)
                    hits += int(np.sum(_metrics.predicted(scores) == truth))
                    if others:
                        scored.append((scores, truth))
                    if use_acc:
                        post["accuracy"] = hits / max(seen, 1)
                bar.update(1, **({"loss": post["loss"], "acc": post["accuracy"]} if use_acc else post))
                for cb in cbs:
                    cb.on_train_batch_end(b, dict(post))
            logs = {"loss": tot_loss / max(seen, 1)}
            if use_acc:
                logs["accuracy"] = hits / max(seen, 1)
            if others:
                logs.update(_metrics.compute(others, np.concatenate([s for s, _ in scored]),
                                             np.concatenate([t for _, t in scored])))
            logs["time"] = time.perf_counter() - t0
            logs["tokens_per_s"] = tokens / max(logs["time"], 1e-9)
            logs["learning_rate"] = float(self.optimizer.lr)
            self._swap_ema()  # evaluate (and keep as best) the averaged weights, if any
            self.reset_states()
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate(*validation, 256).items()})
            extra = "".join(f" {k} {logs[k]:.4f}" for k in ("val_loss", "val_accuracy") if k in logs)
            bar.close(extra)
            for k, val in logs.items():
                history.setdefault(k, []).append(val)
            for cb in cbs:
                cb.on_epoch_end(epoch, logs)
            if self.stop_training or epoch == epochs - 1:
                # The model keeps the averaged weights, as Keras' use_ema does.
                for k, e in getattr(self.optimizer, "ema_params", {}).items():
                    e[...] = self.params()[k]
                break
            self._swap_ema()
        for cb in cbs:
            cb.on_train_end(logs)
        return history

    def _validation(self, validation_data):
        """fit's ``validation_data`` as checked (inputs, targets), or None."""
        if validation_data is None:
            return None
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("fit: validation_data must be (x, y) or (x, y, lengths)")
        lengths = validation_data[2] if len(validation_data) == 3 else None
        data = self._inputs(validation_data[0], lengths, "fit", "validation_data x")
        if data.n == 0:
            raise ValueError("fit: validation_data x has no rows")
        return data, self._targets(validation_data[1], data, "fit", "validation_data x", "validation_data y")

    def predict(self, x, batch_size=256, lengths=None):
        """Model outputs (after the last layer's activation) for every row, in input order; a
        per-token model gives (N, T, C), zeros past each row's length. Keeps no state on the
        model: threads may call it on one model at once."""
        batch_size = _count(batch_size, "predict", "batch_size")
        data = self._inputs(x, lengths, "predict")
        res = None
        for idx in self._batches(data, batch_size, False, True, None):
            xb, lb = data.batch(idx)
            out = self.forward(xb, lengths=lb, training=False, cache=False)
            if res is None:
                shape = (data.n, data.width) + out.shape[2:] if out.ndim == 3 else (data.n,) + out.shape[1:]
                res = np.zeros(shape, dtype=out.dtype)
            if out.ndim == 3:
                res[idx, : out.shape[1]] = out * _token_mask(lb, out.shape[1], out.shape[0])[..., None]
            else:
                res[idx] = out
        return np.empty((0,), dtype=self.dtype) if res is None else res

    def evaluate(self, x, y, batch_size=256, lengths=None, sample_weight=None) -> dict:
        """{'loss': mean loss, and every compiled metric ('accuracy', ...)}; a per-token model
        counts its real tokens only. Keeps no state on the model, like :meth:`predict`."""
        if self.loss is None:
            raise RuntimeError("evaluate: call compile() first")
        batch_size = _count(batch_size, "evaluate", "batch_size")
        data = self._inputs(x, lengths, "evaluate")
        if data.n == 0:
            raise ValueError("evaluate: x has no rows")
        y = self._targets(y, data, "evaluate")
        weights = self._sample_weights(sample_weight, None, y, data.n, "evaluate")
        return self._evaluate(data, y, batch_size, weights)

    def _evaluate(self, data: _Inputs, y: np.ndarray, batch_size: int, weights=None) -> dict:
        fused = self._fused()
        tot, seen = 0.0, 0
        scored = []
        for idx in self._batches(data, batch_size, False, True, None):
            xb, lb = data.batch(idx)
            yb = y[idx] if not self.per_token else y[idx][:, : xb.shape[1]]
            out = self.forward(xb, lengths=lb, training=False, logits=fused, cache=False)
            loss, _ = self._loss(out, yb, lb, None if weights is None else weights[idx])
            count = int(data.lengths[idx].sum()) if self.per_token else len(idx)
            tot += loss * count
            seen += count
            if self.metrics:
                scored.append(self._scored(out, yb, lb))
        res = {"loss": tot / max(seen, 1)}
        if self.metrics:
            res.update(_metrics.compute(self.metrics, np.concatenate([s for s, _ in scored]),
                                        np.concatenate([t for _, t in scored])))
        return res

    def load_torch(self, state_dict, prefixes) -> None:
        """Copy a whole PyTorch model's ``state_dict()`` into the layers: ``prefixes`` maps a
        layer's index to the torch module's name in the dict (``{0: "embed", 1: "encoder", 3:
        "head.0"}``), or is a list with one name (or None to skip) a layer. Each named layer's
        ``load_torch(state_dict, prefix=...)`` does the copy."""
        if isinstance(prefixes, (list, tuple)):
            if len(prefixes) != len(self.layers):
                raise ValueError(f"load_torch: prefixes as a list needs one entry a layer ({len(self.layers)}), "
                                 f"got {len(prefixes)}")
            prefixes = {i: p for i, p in enumerate(prefixes) if p is not None}
        if not isinstance(prefixes, dict):
            raise TypeError(f"load_torch: prefixes must be a dict {{layer index: prefix}} or a list, got {prefixes!r}")
        for i, prefix in prefixes.items():
            if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.layers):
                raise ValueError(f"load_torch: prefixes has layer index {i!r}; the model has layers 0 to "
                                 f"{len(self.layers) - 1}")
            layer = self.layers[i]
            if not hasattr(layer, "load_torch"):
                raise TypeError(f"load_torch: layer {i} ({type(layer).__name__}) takes no PyTorch weights")
            layer.load_torch(state_dict, prefix=prefix)

    def to_onnx(self, path) -> str:
        """Write the model as an ONNX file that ONNX Runtime runs with :meth:`predict`'s outputs:
        inputs ``ids`` (B, T) int64 (or ``x`` (B, T, D) float32) and ``lengths`` (B,) int64,
        output ``output``. See ``seqkern.nn.onnx_export``."""
        from .onnx_export import to_onnx

        return to_onnx(self, path)

    def plot_history(self, path, history=None) -> str:
        """Draw the training curves of ``history`` (default: the last ``fit``'s) to an image file
        (the format from the suffix: .png, .pdf, .svg): the loss, and each metric, with their
        validation curves, one panel each. Needs matplotlib (``pip install 'seqkern[plot]'``);
        returns ``path``."""
        try:
            from matplotlib.backends.backend_agg import FigureCanvasAgg
            from matplotlib.figure import Figure
        except ImportError:
            raise ImportError("plot_history needs matplotlib, which is not installed: "
                              "pip install 'seqkern[plot]' (or pip install matplotlib)") from None
        history = self.history if history is None else history
        skip = {"time", "tokens_per_s", "learning_rate", "best_epoch"}
        names = [k for k in history if not k.startswith("val_") and k not in skip]
        if not names:
            raise ValueError("plot_history: the history holds no curves; call fit first or pass history=")
        fig = Figure(figsize=(4.5 * len(names), 3.5), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(1, len(names), squeeze=False)[0]
        best = history.get("best_epoch", [None])[0]
        for ax, name in zip(axes, names):
            for key, label in ((name, "training"), (f"val_{name}", "validation")):
                if key in history:
                    ax.plot(range(1, len(history[key]) + 1), history[key], marker="o", markersize=3, label=label)
            if best is not None:
                ax.axvline(best + 1, color="gray", linestyle=":", linewidth=1, label="best epoch")
            ax.set_xlabel("epoch")
            ax.set_title(name)
            ax.grid(alpha=0.3)
            ax.legend()
        path = os.fspath(path)
        fig.savefig(path, dpi=100)
        return path

    # -- persistence --------------------------------------------------------------------------

    def save(self, path) -> str:
        """Write one .npz: every parameter (``"<layer>.<name>"``) plus the config as JSON (key
        ``config.json``: layers, loss, metrics and ``self.extra``, e.g. a vocabulary).

        ``.npz`` is appended to ``path`` unless it ends with it (as ``numpy.savez`` does, and
        :func:`load_model` resolves names the same way); returns the file name. The file is
        written next to its target and renamed over it, so a failed save leaves any previous
        file intact."""
        cfg = self.get_config()
        cfg["extra"] = self.extra
        arrays = dict(self.params())
        arrays["config.json"] = np.array(json.dumps(cfg))
        return write_npz(path, arrays)

    @classmethod
    def load(cls, path) -> "Sequential":
        """Rebuild a model saved by :meth:`save`; compiled with its loss and Adam defaults.

        The file is checked before anything is allocated: every parameter the config implies
        must be a member of exactly that shape (by its .npy header) and every member must hold
        the bytes it declares. A file that is not such a model raises ValueError naming it."""
        with ModelArchive(path) as archive:
            where = f"load_model: {archive.path}"
            cfg = archive.config
            members = []
            for i, c in enumerate(cfg["layers"]):
                try:
                    members.extend(_checked_members(c, i, archive))
                except ValueError as e:
                    if str(e).startswith("load_model: "):
                        raise
                    raise ValueError(f"{where}: layer {i}: {e}") from None
            if archive.unused:
                raise ValueError(f"{where}: members {sorted(archive.unused)} are parameters of no layer of the config")
            try:
                from .functional import model_from_config

                model = model_from_config(cfg, [layer_from_config(c) for c in cfg["layers"]])
                if cfg.get("loss"):
                    if not isinstance(cfg["loss"], str):
                        raise ValueError(f"loss must be a name, got {cfg['loss']!r}")
                    model.compile(Adam(), cfg["loss"], cfg.get("metrics", ()))
            except (TypeError, ValueError, KeyError, IndexError) as e:
                raise ValueError(f"{where}: the config does not describe a model: {e}") from None
            params = model.params()
            if [(k, v.shape) for k, v in params.items()] != [(k, m.shape) for k, m in members]:
                raise ValueError(f"{where}: the layers built from the config have other parameters than it implies")
            for key, _ in members:
                params[key][...] = archive.read(key)
        model.extra = cfg.get("extra", {})
        return model

    def quantize(self, weight_format):
        """Run the recurrent layers' inference with low-precision weights: ``"int8"`` (per-row
        scales, and every step's inputs and states quantized too: integer products) or ``"bf16"``
        (weights rounded to bfloat16, float32 arithmetic), or None to go back to float32; the other
        layers stay float32 (``seqkern.LSTMWeights``' ``dtype`` says what each format computes).
        The parameters themselves do not change, so ``quantize(None)`` gives back the float32
        model's results exactly. ``save`` keeps the format and ``load_model`` restores it. A
        quantized model predicts and evaluates but does not train (``fit`` raises); float32 models
        only. Returns the model."""
        recurrent = [getattr(layer, "layer", layer) for layer in self.layers]
        recurrent = [layer for layer in recurrent if hasattr(layer, "quantize")]
        if weight_format not in (None, "float32") and not recurrent:
            raise ValueError(f"quantize: the model has no recurrent layer to quantize (weight_format={weight_format!r})")
        for layer in recurrent:
            layer.quantize(weight_format)
        return self

    def summary(self, print_fn=print) -> str:
        """Print a table of the layers (index and type), their output shapes (batch-major, None
        for the batch and unknown lengths, as Keras shows them) and parameter counts, with the
        totals; returns the same text. ``print_fn=None`` only returns it."""
        rows = []
        for i, (layer, shape) in enumerate(zip(self.layers, self.output_shapes())):
            kind = type(layer).__name__
            if hasattr(layer, "layer"):
                kind += f"({type(layer.layer).__name__})"
            fmt = getattr(getattr(layer, "layer", layer), "weight_format", None)
            if fmt:
                kind += f" [{fmt}]"
            n = sum(v.size for v in layer.params().values())
            rows.append((f"{i} {kind}", "?" if shape is None else str(shape), f"{n:,d}"))
        head = ("Layer (type)", "Output Shape", "Param #")
        w0 = max([len(head[0])] + [len(r[0]) for r in rows]) + 2
        w1 = max([len(head[1])] + [len(r[1]) for r in rows]) + 2
        w2 = max([len(head[2])] + [len(r[2]) for r in rows])
        rule = "=" * (w0 + w1 + w2)
        total = sum(v.size for v in self.params().values())
        nbytes = sum(v.nbytes for v in self.params().values())
        lines = [f"{head[0]:<{w0}}{head[1]:<{w1}}{head[2]:>{w2}}", rule]
        lines += [f"{a:<{w0}}{b:<{w1}}{c:>{w2}}" for a, b, c in rows]
        lines += [rule, f"Total params: {total:,d} ({_size_text(nbytes)})", f"Trainable params: {total:,d}",
                  "Non-trainable params: 0"]
        text = "\n".join(lines) + "\n"
        if print_fn is not None:
            print_fn(text.rstrip("\n"))
        return text


def _size_text(nbytes: int) -> str:
    for unit, scale in (("MB", 1 << 20), ("KB", 1 << 10)):
        if nbytes >= scale:
            return f"{nbytes / scale:.2f} {unit}"
    return f"{nbytes} B"


def _token_mask(lengths, T: int, B: int | None = None) -> np.ndarray:
    """(B, T) True at the real tokens: step t < lengths[b] (every step when lengths is None)."""
    if lengths is None:
        return np.ones((B, T), dtype=bool)
    return np.arange(T)[None, :] < np.asarray(lengths)[:, None]


def _fraction(value, fn: str, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{fn}: {name} must be a number in [0, 1), got {value!r}")
    if not 0 <= value < 1:
        raise ValueError(f"{fn}: {name} must be in [0, 1), got {value}")
    return float(value)


def _first_bad(w: np.ndarray) -> str:
    i = int(np.argmax(~(np.isfinite(w) & (w >= 0))))
    return f"{w[i]} (row {i})"


def _bucket(lengths, batch_size, shuffle, rng):
    from ..text import bucket_batches

    return bucket_batches(lengths, batch_size, shuffle=shuffle, rng=rng) if len(lengths) else []


def _checked_members(config: dict, i: int, archive: ModelArchive):
    """(key, member) of every parameter layer ``i``'s config implies, each checked against the
    file's header of that member; stops at the first parameter the file does not hold."""
    for name, shape in layer_class(config).param_shapes(config):
        key = f"{i}.{name}"
        yield key, archive.header(key, shape)


def load_model(path) -> Sequential:
    """:meth:`Sequential.load`."""
    return Sequential.load(path)

