"""seqkern.nn callbacks: the hooks fit calls and their order, EarlyStopping as a callback,
ModelCheckpoint, CSVLogger, ReduceLROnPlateau, LearningRateScheduler and LambdaCallback, and the
checks fit makes before training."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from seqkern import nn


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.integers(1, 12, size=(n, 6))
    return x, (x[:, 0] > 6).astype(np.int64)


def _model(lr=0.02, opt=None):
    rng = np.random.default_rng(3)
    model = nn.Sequential([nn.Embedding(12, 4, seed=rng), nn.MeanPool(), nn.Dense(4, 2, activation="softmax", seed=rng)])
    return model.compile(opt or nn.Adam(lr), "sparse_categorical_crossentropy")


class Recorder(nn.Callback):
    def __init__(self):
        self.calls = []

    def on_train_begin(self, logs=None):
        self.calls.append(("train_begin", self.model is not None))

    def on_epoch_begin(self, epoch, logs=None):
        self.calls.append(("epoch_begin", epoch))

    def on_batch_begin(self, batch, logs=None):
        self.calls.append(("batch_begin", batch))

    def on_batch_end(self, batch, logs=None):
        self.calls.append(("batch_end", batch, sorted(logs)))

    def on_epoch_end(self, epoch, logs=None):
        self.calls.append(("epoch_end", epoch, sorted(logs)))

    def on_train_end(self, logs=None):
        self.calls.append(("train_end",))


def test_hooks_in_order():
    x, y = _data(20)
    rec = Recorder()
    _model().fit(x, y, epochs=2, batch_size=8, validation_data=(x, y), callbacks=[rec], verbose=0)
    keys = ["accuracy", "learning_rate", "loss", "time", "tokens_per_s", "val_accuracy", "val_loss"]
    batches = []
    for b in range(3):
        batches += [("batch_begin", b), ("batch_end", b, ["accuracy", "loss"])]
    assert rec.calls == ([("train_begin", True), ("epoch_begin", 0)] + batches + [("epoch_end", 0, keys)]
                         + [("epoch_begin", 1)] + batches + [("epoch_end", 1, keys), ("train_end",)])


def test_bare_functions_and_lambda_callbacks_still_work():
    x, y = _data(16)
    seen, ends = [], []
    lam = nn.LambdaCallback(on_epoch_end=lambda epoch, logs: ends.append(epoch), on_train_end=lambda logs: ends.append("end"))
    _model().fit(x, y, epochs=3, verbose=0, callbacks=[lambda m, e, logs: seen.append((e, "loss" in logs)), lam])
    assert seen == [(0, True), (1, True), (2, True)]
    assert ends == [0, 1, 2, "end"]


def test_a_callback_stops_training():
    class StopAfterTwo(nn.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                self.model.stop_training = True

    x, y = _data(16)
    assert len(_model().fit(x, y, epochs=5, verbose=0, callbacks=[StopAfterTwo()])["loss"]) == 2


def test_early_stopping_as_a_callback_matches_the_argument():
    x, y = _data()
    runs = []
    for kw in ({"early_stopping": nn.EarlyStopping("val_loss", patience=1, min_delta=1.0)},
               {"callbacks": [nn.EarlyStopping("val_loss", patience=1, min_delta=1.0)]}):
        model = _model()
        hist = model.fit(x, y, epochs=6, batch_size=16, validation_data=(x, y), verbose=0, seed=1, **kw)
        runs.append((hist, model.params()))
    (h1, p1), (h2, p2) = runs
    assert len(h1["loss"]) == len(h2["loss"]) == 2 and h1["best_epoch"] == h2["best_epoch"] == [0]
    for k in p1:
        np.testing.assert_array_equal(p1[k], p2[k])


def test_model_checkpoint_best_only(tmp_path):
    x, y = _data()
    ckpt = nn.ModelCheckpoint(tmp_path / "best.npz", monitor="val_loss", save_best_only=True)
    every = nn.ModelCheckpoint(str(tmp_path / "e{epoch:02d}-{loss:.2f}"))
    model = _model(lr=0.05)
    hist = model.fit(x, y, epochs=4, batch_size=16, validation_data=(x[:16], y[:16]), verbose=0, seed=0,
                     callbacks=[ckpt, every])
    best = int(np.argmin(hist["val_loss"]))
    improved = [e for e in range(4) if hist["val_loss"][e] == min(hist["val_loss"][: e + 1])]
    assert len(ckpt.saved) == len(improved) and ckpt.best == hist["val_loss"][best]
    loaded = nn.load_model(tmp_path / "best.npz")
    assert loaded.evaluate(x[:16], y[:16])["loss"] == pytest.approx(hist["val_loss"][best], rel=1e-6)
    assert [p.split("/")[-1] for p in every.saved] == [f"e{e + 1:02d}-{hist['loss'][e]:.2f}.npz" for e in range(4)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no temporary files left"


def test_model_checkpoint_bad_field(tmp_path):
    x, y = _data(16)
    with pytest.raises(ValueError, match="ModelCheckpoint: filepath .* names a field the logs do not have"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[nn.ModelCheckpoint(str(tmp_path / "{val_auc}"))])


def test_csv_logger(tmp_path):
    x, y = _data()
    path = tmp_path / "log.csv"
    hist = _model().fit(x, y, epochs=3, validation_data=(x, y), verbose=0, callbacks=[nn.CSVLogger(path)])
    rows = list(csv.reader(path.read_text().splitlines()))
    keys = sorted(k for k in hist)
    assert rows[0] == ["epoch"] + keys
    assert len(rows) == 4
    for e, row in enumerate(rows[1:]):
        assert int(row[0]) == e
        for k, v in zip(keys, row[1:]):
            assert float(v) == hist[k][e]
    _model().fit(x, y, epochs=2, verbose=0, validation_data=(x, y), callbacks=[nn.CSVLogger(path, append=True)])
    rows = list(csv.reader(path.read_text().splitlines()))
    assert len(rows) == 6 and rows[4][0] == "0", "appended rows, one header"


def test_reduce_lr_on_plateau():
    x, y = _data()
    cb = nn.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_lr=0.0025, min_delta=100.0)
    hist = _model(lr=0.01).fit(x, y, epochs=5, verbose=0, callbacks=[cb])
    # Epoch 0 sets the best; every later epoch fails to improve by 100, so the rate halves after
    # each one (seen in the next epoch's logs) until it reaches min_lr.
    assert hist["learning_rate"] == pytest.approx([0.01, 0.01, 0.005, 0.0025, 0.0025])
    with pytest.raises(ValueError, match=r"ReduceLROnPlateau: factor must be in \(0, 1\), got 1.5"):
        nn.ReduceLROnPlateau(factor=1.5)


def test_reduce_lr_cooldown():
    x, y = _data()
    # Keras's count: the epoch of a reduction counts toward the cooldown, so 2 pauses one epoch.
    cb = nn.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=1, min_delta=100.0, cooldown=2)
    hist = _model(opt=nn.SGD(0.01)).fit(x, y, epochs=6, verbose=0, callbacks=[cb])
    assert hist["learning_rate"] == pytest.approx([0.01, 0.01, 0.005, 0.005, 0.0025, 0.0025])


def test_learning_rate_scheduler():
    x, y = _data()
    seen = []
    sched = nn.LearningRateScheduler(lambda epoch, lr: (seen.append(lr), 0.02 * 0.5**epoch)[1])
    model = _model(opt=nn.SGD(0.3))
    hist = model.fit(x, y, epochs=3, verbose=0, callbacks=[sched])
    assert hist["learning_rate"] == pytest.approx([0.02, 0.01, 0.005])
    assert seen == pytest.approx([0.3, 0.02, 0.01])
    bad = nn.LearningRateScheduler(lambda epoch, lr: -1)
    with pytest.raises(ValueError, match=r"LearningRateScheduler: schedule\(0, 0.005\) must return a number > 0"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[bad])


@pytest.mark.parametrize("cb,match", [
    (nn.ModelCheckpoint("m", monitor="val_auc", save_best_only=True), r"callbacks\[0\] \(ModelCheckpoint\) monitors 'val_auc'"),
    (nn.ReduceLROnPlateau(), r"callbacks\[0\] \(ReduceLROnPlateau\) monitors 'val_loss'"),
    (nn.EarlyStopping("f1"), r"callbacks\[0\] \(EarlyStopping\) monitors 'f1'"),
])
def test_monitor_never_computed_fails_before_training(cb, match):
    x, y = _data(16)
    model = _model()
    before = {k: v.copy() for k, v in model.params().items()}
    with pytest.raises(ValueError, match=match + ", which this fit never computes"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[cb])
    for k, v in model.params().items():
        np.testing.assert_array_equal(v, before[k])


def test_bad_callbacks_are_refused():
    x, y = _data(16)
    with pytest.raises(TypeError, match=r"fit: callbacks\[1\] must be a Callback or a function"):
        _model().fit(x, y, epochs=1, verbose=0, callbacks=[nn.Callback(), 3])
    with pytest.raises(ValueError, match="EarlyStopping: mode must be 'auto', 'min' or 'max'"):
        nn.EarlyStopping(mode="up")
