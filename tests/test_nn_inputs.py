"""Bad arguments to the training stack and the demo CLI: each is refused before any work, with an
error that names the call and the argument (float token ids, fractional or out-of-range labels,
x and y of different lengths, empty data, batch sizes, early stopping on a metric never
computed, the demo's numeric options and --save folder)."""

from __future__ import annotations

import numpy as np
import pytest

from seqkern import demo, nn


def _model(loss="sparse_categorical_crossentropy", units=3, activation="softmax", metrics=("accuracy",)):
    rng = np.random.default_rng(0)
    return nn.Sequential([nn.Embedding(12, 4, seed=rng), nn.MeanPool(),
                          nn.Dense(4, units, activation=activation, seed=rng)]).compile("adam", loss, metrics)


X = np.array([[1, 2, 3], [4, 5, 0], [6, 0, 0], [7, 8, 9]])
Y = np.array([0, 1, 2, 1])


def _never_trained(model):
    """Fails the test if the model is trained or evaluated (the error must come first)."""
    def boom(*args, **kwargs):
        raise AssertionError("the model ran before the argument was checked")

    model.forward = boom
    return model


@pytest.mark.parametrize("call", ["fit", "predict", "evaluate"])
@pytest.mark.parametrize("x,match", [
    (X.astype(np.float64) + 0.7, r"x must be integer token ids \(N, T\).*got float64"),
    ([[1.7, 2.2], [3]], r"x\[0\] must be a sequence of integer token ids, got float64"),
    ([[1, 2], [3.0]], r"x\[1\] must be a sequence of integer token ids"),
    (X.astype(bool), "x must be integer token ids"),
])
def test_float_token_ids_are_refused_not_truncated(call, x, match):
    model = _never_trained(_model())
    args = {"fit": (x, Y[: len(x)]), "predict": (x,), "evaluate": (x, Y[: len(x)])}[call]
    with pytest.raises(TypeError, match=rf"{call}: {match}"):
        getattr(model, call)(*args)


def test_token_ids_out_of_range_and_float_lengths_are_refused():
    model = _never_trained(_model())
    with pytest.raises(ValueError, match=r"predict: x holds token id 12, outside the Embedding's \[0, 12\)"):
        model.predict([[1, 12]])
    with pytest.raises(ValueError, match="fit: x holds token id -1"):
        model.fit(np.array([[1, -1]]), [0])
    with pytest.raises(TypeError, match="predict: lengths must be integers, got float64"):
        model.predict(X, lengths=np.array([3, 2.5, 1, 3]))
    with pytest.raises(TypeError, match="x as a list of sequences needs a model that starts with an Embedding"):
        nn.Sequential([nn.LSTM(2, 3)]).predict([[0.5, 0.1]])


@pytest.mark.parametrize("y,match", [
    ([0, 1.5, 2, 1], r"fit: y must hold whole class ids, got 1.5 \(row 1\)"),
    ([0, np.nan, 2, 1], "fit: y must hold whole class ids, got nan"),
    ([0, 1, 3, 1], r"fit: y: class ids must be in \[0, 3\), got \[0, 3\]"),
    ([0, -1, 2, 1], r"fit: y: class ids must be in \[0, 3\)"),
])
def test_fractional_or_out_of_range_class_ids_are_refused(y, match):
    with pytest.raises(ValueError, match=match):
        _never_trained(_model()).fit(X, np.array(y), verbose=0)


def test_binary_targets_outside_0_1_are_refused():
    model = _model("binary_crossentropy", units=1, activation="sigmoid")
    for y, shown in (([0, 1, 2, 1], "2"), ([0, 1, -0.5, 1], "-0.5"), ([0, np.nan, 1, 1], "nan")):
        with pytest.raises(ValueError, match=f"fit: y must hold binary targets in \\[0, 1\\], got {shown}"):
            _never_trained(model).fit(X, np.array(y, dtype=float), verbose=0)
    with pytest.raises(ValueError, match="evaluate: y must hold binary targets"):
        model.evaluate(X, np.array([0, 1, 3, 1]))
    with pytest.raises(ValueError, match="binary_crossentropy: y must hold binary targets"):
        nn.BinaryCrossEntropy()(np.zeros(2), np.array([0.0, 1.5]))
    loss, _ = nn.BinaryCrossEntropy()(np.zeros(2), np.array([0.0, 0.25]))  # soft targets stay valid
    assert np.isfinite(loss)


def test_x_and_y_of_different_lengths_are_refused():
    model = _never_trained(_model())
    with pytest.raises(ValueError, match="evaluate: x has 4 rows but y has 3"):
        model.evaluate(X, Y[:3])
    with pytest.raises(ValueError, match="fit: x has 4 rows but y has 5"):
        model.fit(X, np.r_[Y, 0])
    with pytest.raises(ValueError, match="fit: validation_data x has 4 rows but validation_data y has 2"):
        model.fit(X, Y, validation_data=(X, Y[:2]))
    with pytest.raises(ValueError, match=r"fit: x has 4 rows but y has none \(a scalar\)"):
        model.fit(X, 1)


def test_empty_data_is_refused():
    model = _never_trained(_model())
    with pytest.raises(ValueError, match="fit: x has no rows; there is nothing to train on"):
        model.fit(np.zeros((0, 3), np.int64), np.zeros(0, np.int64))
    with pytest.raises(ValueError, match="fit: x has no rows"):
        model.fit([], [])
    with pytest.raises(ValueError, match="evaluate: x has no rows"):
        model.evaluate([], [])
    with pytest.raises(ValueError, match="fit: validation_data x has no rows"):
        model.fit(X, Y, validation_data=([], []))


@pytest.mark.parametrize("value,error", [(0, ValueError), (-3, ValueError), (2.5, TypeError), (True, TypeError)])
def test_batch_size_and_epochs_must_be_positive_integers(value, error):
    model = _never_trained(_model())
    for name, call in (("batch_size", lambda: model.fit(X, Y, batch_size=value)),
                       ("batch_size", lambda: model.fit(X, Y, batch_size=value, bucket=False)),
                       ("batch_size", lambda: model.predict(X, batch_size=value)),
                       ("batch_size", lambda: model.evaluate(X, Y, batch_size=value)),
                       ("epochs", lambda: model.fit(X, Y, epochs=value))):
        with pytest.raises(error, match=f"{name} must be"):
            call()


@pytest.mark.parametrize("kwargs,monitor", [
    ({"early_stopping": nn.EarlyStopping("val_loss")}, "val_loss"),                 # no validation data
    ({"early_stopping": nn.EarlyStopping("val_acc"), "validation_data": (X, Y)}, "val_acc"),  # a typo
    ({"early_stopping": 2}, "accuracy"),                                             # metrics=() below
])
def test_early_stopping_on_a_metric_never_computed_fails_before_training(kwargs, monitor):
    model = _never_trained(_model(metrics=()))
    with pytest.raises(ValueError, match=f"fit: early_stopping monitors '{monitor}', which this fit never computes"):
        model.fit(X, Y, epochs=3, verbose=0, **kwargs)


# -- the demo CLI --------------------------------------------------------------------------------


@pytest.mark.parametrize("argv,message", [
    (["--epochs", "0"], "argument --epochs: must be an integer in [1, inf), got '0'"),
    (["--threads", "0"], "argument --threads: must be an integer in [1, inf), got '0'"),
    (["--batch-size", "0"], "argument --batch-size: must be an integer in [1, inf), got '0'"),
    (["--batch-size", "-4"], "argument --batch-size: must be an integer in [1, inf)"),
    (["--lr", "0"], "argument --lr: must be a number in (0, inf), got '0'"),
    (["--lr", "nan"], "argument --lr: must be a number in (0, inf), got 'nan'"),
    (["--dropout", "1"], "argument --dropout: must be a number in [0, 1), got '1'"),
    (["--hidden", "2.5"], "argument --hidden: must be an integer in [1, inf), got '2.5'"),
    (["--seed", "-1"], "argument --seed: must be an integer in [0, inf)"),
])
def test_demo_bad_numbers_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as e:
        demo.main(argv + ["--quiet"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: python -m seqkern demo") and message in err, err


def test_demo_save_to_an_unwritable_place_fails_before_training(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(demo, "build_model", lambda *a, **k: pytest.fail("the demo trained before checking --save"))
    (tmp_path / "file").write_text("")
    for target in (tmp_path / "missing" / "m.npz", tmp_path / "file" / "m"):
        with pytest.raises(SystemExit) as e:
            demo.main(["--save", str(target), "--quiet"])
        assert e.value.code == 2
        err = capsys.readouterr().err
        assert f"argument --save: cannot write a model file there ({str(target)!r})" in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_demo_reports_a_bad_data_file_with_its_line(tmp_path, capsys):
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_bytes(b"good\t1\nbad \xff byte\t0\n")
    test.write_text("fine\t1\n")
    assert demo.main(["--train", str(train), "--test", str(test), "--quiet"]) == 2
    assert f"demo: read_tsv: {train} line 2 is not valid UTF-8" in capsys.readouterr().err
    assert demo.main(["--train", str(tmp_path / "absent.tsv"), "--test", str(test), "--quiet"]) == 2
    assert "absent.tsv" in capsys.readouterr().err
