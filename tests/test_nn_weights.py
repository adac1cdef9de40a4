"""seqkern.nn fit's sample_weight, class_weight and validation_split: weighted losses and their
gradients against float64 finite differences, Keras's reduction, and the rows held out."""

from __future__ import annotations

import numpy as np
import pytest
from checks import check_grad

from seqkern import nn

F64 = np.float64


@pytest.mark.parametrize("loss,shape,target", [
    (nn.SoftmaxCrossEntropy(), (5, 3), "ids"),
    (nn.SoftmaxCrossEntropy(), (5, 3), "dist"),
    (nn.BinaryCrossEntropy(), (5, 1), "binary"),
    (nn.MeanSquaredError(), (5, 2), "real"),
])
def test_weighted_losses_and_gradients(rng, loss, shape, target):
    z = rng.standard_normal(shape)
    y = {"ids": rng.integers(0, 3, size=5), "dist": rng.dirichlet(np.ones(3), size=5),
         "binary": rng.integers(0, 2, size=(5, 1)), "real": rng.standard_normal(shape)}[target]
    w = rng.uniform(0, 2, size=5)
    val, g = loss(z.copy(), y, sample_weight=w)
    # Keras's reduction: the weighted per-row losses summed, over the number of rows.
    per_row = np.array([loss(z[i : i + 1].copy(), y[i : i + 1])[0] for i in range(5)])
    assert val == pytest.approx(np.sum(w * per_row) / 5)
    check_grad(lambda z: np.array(loss(z.copy(), y, sample_weight=w)[0]), {"z": z}, {"__g__": (1.0,), "z": g},
               rng=rng, name=f"weighted {loss.name}")


def test_masked_token_loss_and_gradient(rng):
    loss = nn.SoftmaxCrossEntropy()
    z = rng.standard_normal((3, 4, 5))
    y = rng.integers(0, 5, size=(3, 4))
    mask = np.arange(4)[None, :] < np.array([4, 1, 2])[:, None]
    y[~mask] = -1  # padding may hold anything
    w = np.array([1.0, 2.0, 0.5])
    val, g = loss(z.copy(), y, sample_weight=w, mask=mask)
    flat = [(b, t) for b in range(3) for t in range(4) if mask[b, t]]
    per = [loss(z[b, t][None].copy(), y[b, t][None])[0] * w[b] for b, t in flat]
    assert val == pytest.approx(np.sum(per) / len(flat)), "the mean over the real tokens"
    assert np.all(g[~mask] == 0), "padding gets no gradient"
    check_grad(lambda z: np.array(loss(z.copy(), y, sample_weight=w, mask=mask)[0]), {"z": z},
               {"__g__": (1.0,), "z": g}, rng=rng, name="masked cross-entropy")


def _model(dtype=F64):
    rng = np.random.default_rng(1)
    return nn.Sequential([nn.Embedding(12, 4, dtype=dtype, seed=rng), nn.MeanPool(dtype=dtype),
                          nn.Dense(4, 3, activation="softmax", dtype=dtype, seed=rng)])


def test_integer_weights_equal_repeated_rows(rng):
    x = rng.integers(1, 12, size=(3, 5))
    y = np.array([0, 2, 1])
    a = _model().compile("sgd", "sparse_categorical_crossentropy")
    b = _model().compile("sgd", "sparse_categorical_crossentropy")
    la, _ = a.loss_and_grads(x, y, training=False, sample_weight=np.array([2.0, 1.0, 0.0]))
    lb, _ = b.loss_and_grads(x[[0, 0, 1]], y[[0, 0, 1]], training=False)
    # sum(w l) / 3 rows against the mean over the 3 repeated rows: equal.
    assert la == pytest.approx(lb)
    for k, g in a.grads().items():
        np.testing.assert_allclose(g, b.grads()[k], rtol=1e-12, atol=1e-15)


def test_class_weight_is_a_sample_weight_per_class(rng):
    x = rng.integers(1, 12, size=(40, 5))
    y = rng.integers(0, 3, size=40)
    cw = {0: 1.0, 1: 3.0}  # class 2 absent: weight 1
    sw = rng.uniform(0.5, 1.5, size=40)
    a, b = _model(), _model()
    for m in (a, b):
        m.compile(nn.SGD(0.1), "sparse_categorical_crossentropy")
    ha = a.fit(x, y, epochs=2, batch_size=8, shuffle=False, bucket=False, verbose=0, class_weight=cw, sample_weight=sw)
    hb = b.fit(x, y, epochs=2, batch_size=8, shuffle=False, bucket=False, verbose=0,
               sample_weight=sw * np.where(y == 1, 3.0, 1.0))
    assert ha["loss"] == pytest.approx(hb["loss"])
    for k, v in a.params().items():
        np.testing.assert_allclose(v, b.params()[k], rtol=1e-12)


def test_validation_split_holds_out_the_last_rows(rng):
    x = rng.integers(1, 12, size=(40, 5))
    y = rng.integers(0, 3, size=40)
    model = _model().compile(nn.Adam(0.01), "sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=2, batch_size=8, validation_split=0.25, verbose=0, seed=0)
    assert hist["val_loss"][-1] == pytest.approx(model.evaluate(x[30:], y[30:])["loss"])
    # The held-out rows are never trained on: their change alone leaves training the same.
    other = _model().compile(nn.Adam(0.01), "sparse_categorical_crossentropy")
    y2 = y.copy()
    y2[30:] = (y2[30:] + 1) % 3
    h2 = other.fit(x, y2, epochs=2, batch_size=8, validation_split=0.25, verbose=0, seed=0)
    assert h2["loss"] == pytest.approx(hist["loss"])


@pytest.mark.parametrize("kwargs,error,match", [
    ({"validation_split": 1.0}, ValueError, r"fit: validation_split must be in \[0, 1\), got 1.0"),
    ({"validation_split": "0.2"}, TypeError, "fit: validation_split must be a number"),
    ({"validation_split": 1e-17}, ValueError, "leaves no validation rows"),
    ({"validation_split": 0.95}, ValueError, "validation_split=0.95 of 10 rows leaves no training rows"),
    ({"validation_split": 0.2, "validation_data": "X"}, ValueError, "validation_data or validation_split, not both"),
    ({"sample_weight": np.ones(3)}, ValueError, r"fit: sample_weight must have shape \(10,\)"),
    ({"sample_weight": -np.ones(10)}, ValueError, r"sample_weight must hold finite weights >= 0, got -1.0 \(row 0\)"),
    ({"sample_weight": np.array(["a"] * 10)}, TypeError, "sample_weight must hold numbers"),
    ({"class_weight": [1, 2]}, TypeError, "class_weight must be a dict"),
    ({"class_weight": {3: 1.0}}, ValueError, r"class_weight has key 3; keys must be class ids in \[0, 3\)"),
    ({"class_weight": {0: -1}}, ValueError, r"class_weight\[0\] must be a finite number >= 0"),
])
def test_bad_weights_and_splits_are_refused(rng, kwargs, error, match):
    x = rng.integers(1, 12, size=(10, 5))
    y = rng.integers(0, 3, size=10)
    if kwargs.get("validation_data") == "X":
        kwargs = dict(kwargs, validation_data=(x, y))
    model = _model().compile("adam", "sparse_categorical_crossentropy")
    with pytest.raises(error, match=match):
        model.fit(x, y, epochs=1, verbose=0, **kwargs)
