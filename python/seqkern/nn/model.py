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

import io
import json
import sys
import time

import numpy as np

from ._files import ModelArchive, write_npz
from .layers import Embedding, Layer, layer_class, layer_from_config
from .losses import get_loss
from .optim import Adam, Optimizer, get_optimizer

__all__ = ["Sequential", "EarlyStopping", "load_model"]


class EarlyStopping:
    """Stop when ``monitor`` has not improved for ``patience`` epochs; optionally restore the best
    weights. ``monitor``: 'val_accuracy', 'val_loss', 'accuracy' or 'loss'."""

    def __init__(self, monitor="val_accuracy", patience=3, restore_best_weights=True, min_delta=0.0):
        if not isinstance(monitor, str):
            raise TypeError(f"EarlyStopping: monitor must be a str such as 'val_accuracy', got {monitor!r}")
        self.monitor, self.patience = monitor, int(patience)
        self.restore_best_weights, self.min_delta = bool(restore_best_weights), float(min_delta)
        self.mode = "min" if monitor.endswith("loss") else "max"


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
        self.loss = None
        self.optimizer: Optimizer | None = None
        self.metrics: tuple = ()
        self.extra: dict = {}
        self.stop_training = False

    # -- configuration ------------------------------------------------------------------------

    def compile(self, optimizer="adam", loss="sparse_categorical_crossentropy", metrics=("accuracy",)):
        self.optimizer = get_optimizer(optimizer) if not isinstance(optimizer, Optimizer) else optimizer
        self.loss = get_loss(loss)
        self.metrics = tuple(metrics or ())
        return self

    def params(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.params().items()}

    def grads(self) -> dict[str, np.ndarray]:
        return {f"{i}.{k}": v for i, layer in enumerate(self.layers) for k, v in layer.grads().items()}

    def zero_grad(self):
        for layer in self.layers:
            layer.zero_grad()

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

    def _targets(self, y, data: _Inputs, fn, xname="x", yname="y") -> np.ndarray:
        """``y`` as an array with one row per row of ``data``, checked by the loss (class ids
        whole and in range, binary targets in [0, 1])."""
        y = np.asarray(y)
        if y.ndim == 0 or len(y) != data.n:
            raise ValueError(f"{fn}: {xname} has {data.n} rows but {yname} has {len(y) if y.ndim else 'none (a scalar)'}")
        check = getattr(self.loss, "check_targets", None)
        if check is not None:
            check(y, f"{fn}: {yname}", getattr(self.layers[-1], "units", None) if self.layers else None)
        return y

    # -- forward / backward -------------------------------------------------------------------

    def _fused(self):
        last = self.layers[-1]
        fuses = getattr(self.loss, "fuses", None)
        return fuses is not None and getattr(last, "activation", None) == fuses

    def forward(self, x, lengths=None, training=False, logits=False, cache=True):
        """Run the layers on one batch (batch-major input); returns the model output, or the final
        pre-activation when ``logits`` and the last layer is a Dense. ``cache=False`` keeps
        nothing on the layers (no ``backward`` after it), which makes the call reentrant."""
        if x.ndim == 3 and self.layers[0].input_layout == "time":
            x = x.transpose(1, 0, 2)
        n = len(self.layers)
        for i, layer in enumerate(self.layers):
            if i == n - 1 and logits and hasattr(layer, "activation"):
                x = layer.forward(x, lengths=lengths, training=training, logits=True, cache=cache)
            else:
                x = layer.forward(x, lengths=lengths, training=training, cache=cache)
        return x

    def backward(self, grad, logits=False):
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

    def loss_and_grads(self, x, y, lengths=None, training=True):
        """Forward and backward on one batch; gradients are left in ``grads()`` (zeroed first).
        Returns (loss, model output before a fused activation)."""
        if self.loss is None:
            raise RuntimeError("call compile() before training")
        fused = self._fused()
        self.zero_grad()
        out = self.forward(x, lengths=lengths, training=training, logits=fused)
        loss, g = self.loss(out, y)
        self.backward(g.astype(out.dtype, copy=False), logits=fused)
        return loss, out

    def train_on_batch(self, x, y, lengths=None):
        loss, out = self.loss_and_grads(x, y, lengths=lengths, training=True)
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

    def _accuracy_hits(self, out, y):
        y = np.asarray(y)
        if out.ndim == 2 and out.shape[1] > 1:
            pred = out.argmax(axis=1)
            truth = y.argmax(axis=1) if y.ndim == 2 else y
        else:
            # One sigmoid unit: fused outputs are logits (threshold 0), others probabilities.
            thr = 0.0 if self._fused() else 0.5
            pred = (out.reshape(-1) > thr).astype(np.int64)
            truth = y.reshape(-1)
        return int(np.sum(pred == truth))

    def fit(self, x, y, epochs=1, batch_size=32, *, validation_data=None, lengths=None, shuffle=True,
            bucket=True, verbose=1, early_stopping=None, seed=None, callbacks=()):
        """Train; returns a history dict of per-epoch lists ('loss', 'accuracy', 'val_loss', ...).

        ``validation_data``: (x, y) or (x, y, lengths). ``early_stopping``: an
        :class:`EarlyStopping` or an int patience on 'val_accuracy' (or 'accuracy' without
        validation data). ``bucket``: group rows of similar length into batches. ``callbacks``:
        functions called as ``cb(model, epoch, logs)`` after every epoch.
        """
        if self.optimizer is None:
            self.compile()
        epochs = _count(epochs, "fit", "epochs")
        batch_size = _count(batch_size, "fit", "batch_size")
        data = self._inputs(x, lengths, "fit")
        if data.n == 0:
            raise ValueError("fit: x has no rows; there is nothing to train on")
        y = self._targets(y, data, "fit")
        validation = self._validation(validation_data)
        use_acc = "accuracy" in self.metrics
        if isinstance(early_stopping, int):
            early_stopping = EarlyStopping("val_accuracy" if validation is not None else "accuracy",
                                           patience=early_stopping)
        if early_stopping is not None:
            computed = {"loss", "time", "tokens_per_s"} | ({"accuracy"} if use_acc else set())
            if validation is not None:
                computed |= {f"val_{k}" for k in computed & {"loss", "accuracy"}}
            if early_stopping.monitor not in computed:
                raise ValueError(f"fit: early_stopping monitors {early_stopping.monitor!r}, which this fit never "
                                 f"computes (it computes {sorted(computed)})")
        rng = np.random.default_rng(seed)
        history: dict[str, list] = {}
        best, best_epoch, best_params, wait = None, -1, None, 0
        self.stop_training = False
        for epoch in range(epochs):
            if bucket:
                batches = _bucket(data.lengths, batch_size, shuffle, rng)
            else:
                order = rng.permutation(data.n) if shuffle else np.arange(data.n)
                batches = [order[i : i + batch_size] for i in range(0, data.n, batch_size)]
            bar = _Progress(len(batches), f"epoch {epoch + 1}/{epochs}", verbose > 0)
            tot_loss, hits, seen, t0, tokens = 0.0, 0, 0, time.perf_counter(), 0
            for idx in batches:
                xb, lb = data.batch(idx)
                loss, out = self.train_on_batch(xb, y[idx], lengths=lb)
                tot_loss += loss * len(idx)
                seen += len(idx)
                tokens += int(data.lengths[idx].sum())
                post = {"loss": tot_loss / seen}
                if use_acc:
                    hits += self._accuracy_hits(out, y[idx])
                    post["acc"] = hits / seen
                bar.update(1, **post)
            logs = {"loss": tot_loss / max(seen, 1)}
            if use_acc:
                logs["accuracy"] = hits / max(seen, 1)
            logs["time"] = time.perf_counter() - t0
            logs["tokens_per_s"] = tokens / max(logs["time"], 1e-9)
            self._swap_ema()  # evaluate (and keep as best) the averaged weights, if any
            if validation is not None:
                logs.update({f"val_{k}": v for k, v in self._evaluate(*validation, 256).items()})
            extra = "".join(f" {k} {logs[k]:.4f}" for k in ("val_loss", "val_accuracy") if k in logs)
            bar.close(extra)
            for k, val in logs.items():
                history.setdefault(k, []).append(val)
            for cb in callbacks:
                cb(self, epoch, logs)
            if early_stopping is not None:
                cur = logs[early_stopping.monitor]
                better = best is None or (cur > best + early_stopping.min_delta if early_stopping.mode == "max"
                                          else cur < best - early_stopping.min_delta)
                if better:
                    best, best_epoch, wait = cur, epoch, 0
                    if early_stopping.restore_best_weights:
                        best_params = {k: v.copy() for k, v in self.params().items()}
                else:
                    wait += 1
                    if wait >= early_stopping.patience:
                        self.stop_training = True
            if self.stop_training or epoch == epochs - 1:
                # The model keeps the averaged weights, as Keras' use_ema does.
                for k, e in getattr(self.optimizer, "ema_params", {}).items():
                    e[...] = self.params()[k]
                break
            self._swap_ema()
        if early_stopping is not None and best_params is not None:
            for k, v in self.params().items():
                v[...] = best_params[k]
            history["best_epoch"] = [best_epoch]
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
        """Model outputs (after the last layer's activation) for every row, in input order.
        Keeps no state on the model: threads may call it on one model at once."""
        batch_size = _count(batch_size, "predict", "batch_size")
        data = self._inputs(x, lengths, "predict")
        res = None
        for idx in _bucket(data.lengths, batch_size, False, None):
            xb, lb = data.batch(idx)
            out = self.forward(xb, lengths=lb, training=False, cache=False)
            if res is None:
                res = np.empty((data.n,) + out.shape[1:], dtype=out.dtype)
            res[idx] = out
        return np.empty((0,), dtype=self.dtype) if res is None else res

    def evaluate(self, x, y, batch_size=256, lengths=None) -> dict:
        """{'loss': mean loss, 'accuracy': fraction correct (if compiled with it)}. Keeps no
        state on the model, like :meth:`predict`."""
        if self.loss is None:
            raise RuntimeError("evaluate: call compile() first")
        batch_size = _count(batch_size, "evaluate", "batch_size")
        data = self._inputs(x, lengths, "evaluate")
        if data.n == 0:
            raise ValueError("evaluate: x has no rows")
        return self._evaluate(data, self._targets(y, data, "evaluate"), batch_size)

    def _evaluate(self, data: _Inputs, y: np.ndarray, batch_size: int) -> dict:
        fused = self._fused()
        tot, hits = 0.0, 0
        for idx in _bucket(data.lengths, batch_size, False, None):
            xb, lb = data.batch(idx)
            out = self.forward(xb, lengths=lb, training=False, logits=fused, cache=False)
            loss, _ = self.loss(out, y[idx])
            tot += loss * len(idx)
            if "accuracy" in self.metrics:
                hits += self._accuracy_hits(out, y[idx])
        res = {"loss": tot / max(data.n, 1)}
        if "accuracy" in self.metrics:
            res["accuracy"] = hits / max(data.n, 1)
        return res

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
                model = cls([layer_from_config(c) for c in cfg["layers"]])
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

    def summary(self) -> str:
        buf = io.StringIO()
        total = 0
        for i, layer in enumerate(self.layers):
            n = sum(v.size for v in layer.params().values())
            total += n
            buf.write(f"{i:>2} {type(layer).__name__:<14} {n:>10,d} params\n")
        buf.write(f"   total          {total:>10,d} params\n")
        return buf.getvalue()


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

