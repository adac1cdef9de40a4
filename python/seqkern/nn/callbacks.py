"""Callbacks for ``Sequential.fit``, by Keras's names and hooks.

``fit`` calls, on every callback in ``callbacks=``: ``set_model(model)``, ``on_train_begin(logs)``,
then per epoch ``on_epoch_begin(epoch, logs)``, per batch ``on_train_batch_begin(batch, logs)`` /
``on_train_batch_end(batch, logs)`` (which call ``on_batch_begin`` / ``on_batch_end``, as Keras's
do), ``on_epoch_end(epoch, logs)`` with the epoch's logs (``loss``, the metrics, their ``val_``
versions, ``learning_rate``, ``time``, ``tokens_per_s``), and at the end ``on_train_end(logs)``.
Epochs count from 0. A callback stops training by setting ``self.model.stop_training = True``.

A plain function in ``callbacks=`` is called as ``fn(model, epoch, logs)`` after every epoch.
Callbacks that watch a metric (``monitor``) are checked before training: ``fit`` refuses one
that watches a metric it never computes. ``mode="auto"`` minimizes a monitor whose name ends in
``loss`` and maximizes any other.
"""

from __future__ import annotations

import csv
import math
import os
import sys

import numpy as np

__all__ = ["Callback", "LambdaCallback", "EarlyStopping", "ModelCheckpoint", "CSVLogger", "ReduceLROnPlateau",
           "LearningRateScheduler"]


class Callback:
    """Base class: every hook does nothing. ``self.model`` is the model being trained."""

    model = None

    def set_model(self, model) -> None:
        self.model = model

    def on_train_begin(self, logs=None):
        pass

    def on_train_end(self, logs=None):
        pass

    def on_epoch_begin(self, epoch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        pass

    def on_batch_begin(self, batch, logs=None):
        pass

    def on_batch_end(self, batch, logs=None):
        pass

    def on_train_batch_begin(self, batch, logs=None):
        self.on_batch_begin(batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self.on_batch_end(batch, logs)


class LambdaCallback(Callback):
    """A callback from functions: ``on_epoch_end=lambda epoch, logs: ...`` and so on (Keras's
    signatures: ``(epoch, logs)``, ``(batch, logs)``, ``(logs)`` for train begin and end)."""

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_batch_begin=None, on_batch_end=None,
                 on_train_begin=None, on_train_end=None):
        for name, fn in list(locals().items()):
            if name != "self" and fn is not None:
                if not callable(fn):
                    raise TypeError(f"LambdaCallback: {name} must be callable, got {fn!r}")
                setattr(self, name, fn)


class _FunctionCallback(Callback):
    """A bare function ``fn(model, epoch, logs)``, called after every epoch."""

    def __init__(self, fn):
        self.fn = fn

    def on_epoch_end(self, epoch, logs=None):
        self.fn(self.model, epoch, logs)


def as_callback(cb, where: str) -> Callback:
    if isinstance(cb, Callback):
        return cb
    if callable(cb):
        return _FunctionCallback(cb)
    raise TypeError(f"{where} must be a Callback or a function (model, epoch, logs), got {cb!r}")


class _Monitor(Callback):
    """What the callbacks that watch one metric share: ``monitor``, ``mode`` and ``min_delta``."""

    def __init__(self, monitor, mode="auto", min_delta=0.0):
        name = type(self).__name__
        if not isinstance(monitor, str):
            raise TypeError(f"{name}: monitor must be a str such as 'val_accuracy', got {monitor!r}")
        if mode not in ("auto", "min", "max"):
            raise ValueError(f"{name}: mode must be 'auto', 'min' or 'max', got {mode!r}")
        self.monitor, self.min_delta = monitor, abs(float(min_delta))
        self.mode = ("min" if monitor.endswith("loss") else "max") if mode == "auto" else mode

    def improved(self, current, best) -> bool:
        if best is None:
            return not math.isnan(current)
        if self.mode == "max":
            return current > best + self.min_delta
        return current < best - self.min_delta


class EarlyStopping(_Monitor):
    """Stop when ``monitor`` has not improved (by more than ``min_delta``) for ``patience`` epochs;
    with ``restore_best_weights``, the model ends with the weights of its best epoch (and
    ``fit``'s history gets ``best_epoch``). ``monitor``: 'val_accuracy', 'val_loss', 'accuracy',
    'loss' or any other metric the fit computes. The defaults are this library's (Keras's are
    'val_loss', patience 0, no restore)."""

    def __init__(self, monitor="val_accuracy", patience=3, restore_best_weights=True, min_delta=0.0, mode="auto"):
        super().__init__(monitor, mode, min_delta)
        self.patience = int(patience)
        self.restore_best_weights = bool(restore_best_weights)
        self.best = self.best_epoch = self.best_params = None
        self.wait, self.stopped_epoch = 0, None

    def on_train_begin(self, logs=None):
        self.best, self.best_epoch, self.best_params, self.wait, self.stopped_epoch = None, -1, None, 0, None

    def on_epoch_end(self, epoch, logs=None):
        cur = logs[self.monitor]
        if self.improved(cur, self.best):
            self.best, self.best_epoch, self.wait = cur, epoch, 0
            if self.restore_best_weights:
                self.best_params = {k: v.copy() for k, v in self.model.params().items()}
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        if self.best_params is not None:
            for k, v in self.model.params().items():
                v[...] = self.best_params[k]
            self.model.history["best_epoch"] = [self.best_epoch]


class ModelCheckpoint(_Monitor):
    """Save the model (``model.save``: a temporary file renamed over the target, so a crash never
    leaves a half-written file) after every epoch, or with ``save_best_only`` only when
    ``monitor`` improved. ``filepath`` may hold ``str.format`` fields: ``{epoch}`` (counted from 1,
    as Keras names files) and any log entry, e.g. ``"ckpt-{epoch:02d}-{val_loss:.3f}.npz"``. The
    files written are listed in ``saved``."""

    def __init__(self, filepath, monitor="val_loss", save_best_only=False, mode="auto", verbose=0):
        super().__init__(monitor, mode)
        self.filepath = os.fspath(filepath)
        self.save_best_only, self.verbose = bool(save_best_only), int(verbose)
        self.best = None
        self.saved: list[str] = []

    def on_train_begin(self, logs=None):
        self.best = None

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.save_best_only:
            cur = logs[self.monitor]
            if not self.improved(cur, self.best):
                return
            self.best = cur
        try:
            path = self.filepath.format(epoch=epoch + 1, **logs)
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"ModelCheckpoint: filepath {self.filepath!r} names a field the logs do not have "
                             f"({e}); they have epoch and {sorted(logs)}") from None
        path = self.model.save(path)
        self.saved.append(path)
        if self.verbose:
            print(f"epoch {epoch + 1}: saved the model to {path}", file=sys.stderr)


class CSVLogger(Callback):
    """Write one row per epoch to ``filename``: ``epoch`` then every log entry, sorted by name, as
    Keras does. The file is opened for each row and closed after it, so every finished epoch is
    on disk even if training stops with an error. ``append`` adds to an existing file (its
    header kept)."""

    def __init__(self, filename, separator=",", append=False):
        self.filename, self.separator, self.append = os.fspath(filename), separator, bool(append)
        self._keys, self._header = None, True

    def on_train_begin(self, logs=None):
        existed = self.append and os.path.exists(self.filename) and os.path.getsize(self.filename) > 0
        if not self.append:
            open(self.filename, "w", encoding="utf-8").close()
        self._keys, self._header = None, not existed

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        with open(self.filename, "a", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, delimiter=self.separator, lineterminator="\n")
            if self._keys is None:
                self._keys = sorted(logs)
                if self._header:
                    writer.writerow(["epoch"] + self._keys)
            writer.writerow([epoch] + [_csv_value(logs.get(k, "")) for k in self._keys])


def _csv_value(v):
    return repr(float(v)) if isinstance(v, (float, np.floating)) else v


class ReduceLROnPlateau(_Monitor):
    """Multiply the optimizer's learning rate by ``factor`` when ``monitor`` has not improved (by
    more than ``min_delta``) for ``patience`` epochs, never below ``min_lr``; after a reduction,
    ``cooldown`` epochs pass before counting starts again, the epoch that ends the cooldown
    already counting (Keras's rule and defaults: ``cooldown=c`` leaves c - 1 epochs uncounted)."""

    def __init__(self, monitor="val_loss", factor=0.1, patience=10, min_lr=0.0, min_delta=1e-4, cooldown=0,
                 mode="auto", verbose=0):
        super().__init__(monitor, mode, min_delta)
        if not 0.0 < factor < 1.0:
            raise ValueError(f"ReduceLROnPlateau: factor must be in (0, 1), got {factor}")
        if min_lr < 0:
            raise ValueError(f"ReduceLROnPlateau: min_lr must be >= 0, got {min_lr}")
        self.factor, self.patience, self.min_lr = float(factor), int(patience), float(min_lr)
        self.cooldown, self.verbose = int(cooldown), int(verbose)
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_train_begin(self, logs=None):
        self.best, self.wait, self.cooldown_counter = None, 0, 0

    def on_epoch_end(self, epoch, logs=None):
        cur = logs[self.monitor]
        opt = self.model.optimizer
        if self.cooldown_counter > 0:
            self.cooldown_counter -= 1
            self.wait = 0
        if self.improved(cur, self.best):
            self.best, self.wait = cur, 0
        elif self.cooldown_counter == 0:
            self.wait += 1
            if self.wait >= self.patience and opt.lr > self.min_lr:
                opt.lr = max(opt.lr * self.factor, self.min_lr)
                self.cooldown_counter, self.wait = self.cooldown, 0
                if self.verbose:
                    print(f"epoch {epoch + 1}: learning rate reduced to {opt.lr:.4g}", file=sys.stderr)


class LearningRateScheduler(Callback):
    """Set the learning rate at the start of every epoch to ``schedule(epoch, lr)`` (epoch from
    0, lr the current rate), as Keras's."""

    def __init__(self, schedule, verbose=0):
        if not callable(schedule):
            raise TypeError(f"LearningRateScheduler: schedule must be a function (epoch, lr), got {schedule!r}")
        self.schedule, self.verbose = schedule, int(verbose)

    def on_epoch_begin(self, epoch, logs=None):
        opt = self.model.optimizer
        lr = self.schedule(epoch, float(opt.lr))
        if isinstance(lr, bool) or not isinstance(lr, (int, float, np.number)) or not np.isfinite(lr) or lr <= 0:
            raise ValueError(f"LearningRateScheduler: schedule({epoch}, {opt.lr}) must return a number > 0, got {lr!r}")
        opt.lr = float(lr)
        if self.verbose:
            print(f"epoch {epoch + 1}: learning rate {opt.lr:.4g}", file=sys.stderr)
