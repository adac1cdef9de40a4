"""Sequential.plot_history: an image of the training curves with matplotlib, a clear error
without it."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from seqkern import nn


def _fitted():
    rng = np.random.default_rng(0)
    x = rng.integers(1, 10, size=(32, 5))
    y = (x[:, 0] > 5).astype(np.int64)
    model = nn.Sequential([nn.Embedding(10, 4, seed=rng), nn.MeanPool(), nn.Dense(4, 2, activation="softmax", seed=rng)])
    model.compile(nn.Adam(0.05), "sparse_categorical_crossentropy", metrics=("accuracy", "auc"))
    model.fit(x, y, epochs=3, validation_split=0.25, verbose=0, early_stopping=5)
    return model


def test_plot_history_writes_an_image(tmp_path):
    pytest.importorskip("matplotlib")
    model = _fitted()
    path = model.plot_history(tmp_path / "curves.png")
    with open(path, "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    svg = model.plot_history(tmp_path / "curves.svg", history={"loss": [3.0, 2.0], "val_loss": [3.5, 2.5]})
    with open(svg) as fh:
        text = fh.read()
    assert "<svg" in text and "validation" in text


def test_plot_history_without_matplotlib(tmp_path, monkeypatch):
    model = _fitted()
    for name in list(sys.modules):
        if name == "matplotlib" or name.startswith("matplotlib."):
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ImportError, match=r"plot_history needs matplotlib, which is not installed: pip install 'seqkern\[plot\]'"):
        model.plot_history(tmp_path / "c.png")


def test_plot_history_needs_curves(tmp_path):
    pytest.importorskip("matplotlib")
    untrained = nn.Sequential([nn.Dense(2, 1)]).compile("sgd", "mse")
    with pytest.raises(ValueError, match="plot_history: the history holds no curves"):
        untrained.plot_history(tmp_path / "c.png")
