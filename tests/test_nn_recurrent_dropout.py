"""recurrent_dropout of nn.LSTM, nn.GRU and nn.SimpleRNN (Keras's variational recurrent dropout, in
the kernels' fused step): layer gradients against float64 finite differences with the mask drawn,
the masks the layer draws (one per layer, direction and row, the whole sequence), inference
untouched, config and save/load, training through fit, and the refusals."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from test_nn import _layer_check

import seqkern
from seqkern import nn

F64 = np.float64
CELLS = {"LSTM": nn.LSTM, "GRU": nn.GRU, "SimpleRNN": nn.SimpleRNN}


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("return_sequences", [True, False])
def test_layer_grad_with_recurrent_dropout(rng, name, return_sequences):
    layer = CELLS[name](3, 4, 2, True, recurrent_dropout=0.3, return_sequences=return_sequences, dtype=F64, seed=3)
    x = rng.standard_normal((5, 3, 3))
    out = _layer_check(layer, x, rng, lengths=np.array([5, 2, 0]), training=True, reseed=9,
                       name=f"{name} recurrent_dropout")
    layer._gen = np.random.default_rng(9)
    assert not np.allclose(out, layer.forward(x, lengths=np.array([5, 2, 0])))  # inference has no mask


@pytest.mark.parametrize("name", list(CELLS))
def test_masks_are_per_layer_direction_and_row(rng, name):
    T, B, H = 6, 4, 5
    layer = CELLS[name](3, H, 2, True, recurrent_dropout=0.5, return_sequences=True, seed=1)
    x = rng.standard_normal((T, B, 3)).astype(np.float32)
    gen = copy.deepcopy(layer._gen)
    out = layer.forward(x, training=True)
    keep = np.float32(0.5)
    masks = (gen.random((4, B, H), dtype=np.float32) < keep).astype(np.float32) / keep
    fwd = getattr(seqkern, {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}[name] + "_layers_forward")
    expected = fwd(x, layer._layers(), recurrent_masks=masks, need_cache=False)
    np.testing.assert_array_equal(out, expected.y)
    # Inference: no mask at all, the same as a layer without recurrent dropout.
    plain = CELLS[name](3, H, 2, True, return_sequences=True, seed=1)
    plain.set_params(layer.params())
    np.testing.assert_array_equal(layer.forward(x), plain.forward(x))


def test_config_save_load_and_refusals(tmp_path, rng):
    lstm = nn.LSTM(5, 8, recurrent_dropout=0.25, seed=0)
    cfg = lstm.get_config()
    assert cfg["recurrent_dropout"] == 0.25 and "recurrent_dropout" not in nn.LSTM(5, 8).get_config()
    clone = nn.layer_from_config(cfg)
    assert clone.recurrent_dropout == 0.25 and clone.get_config() == cfg
    model = nn.Sequential([nn.Embedding(20, 5, seed=1), nn.LSTM(5, 8, recurrent_dropout=0.25, seed=0),
                           nn.Dense(8, 2, activation="softmax", seed=2)])
    ids = rng.integers(1, 20, (3, 7))
    path = model.save(tmp_path / "m.npz")
    back = nn.Sequential.load(path)
    assert back.layers[1].recurrent_dropout == 0.25
    np.testing.assert_array_equal(back.predict(ids), model.predict(ids))
    for bad in (1.0, -0.1):
        with pytest.raises(ValueError, match="recurrent_dropout must be in"):
            nn.GRU(5, 8, recurrent_dropout=bad)
    with pytest.raises(ValueError, match="recurrent_dropout needs reset_after=True"):
        nn.GRU(5, 8, reset_after=False, recurrent_dropout=0.2)


def test_fit_with_recurrent_dropout_learns_and_repeats(rng):
    # Label: whether token 1 occurs in the row. Trained twice from the same seeds: the same losses.
    ids = rng.integers(2, 12, (96, 9))
    ids[::2, rng.integers(0, 9)] = 1
    y = (ids == 1).any(axis=1).astype(np.int64)

    def run():
        model = nn.Sequential([nn.Embedding(12, 8, seed=1), nn.LSTM(8, 16, recurrent_dropout=0.3, seed=2),
                               nn.Dense(16, 2, activation="softmax", seed=3)])
        model.compile(optimizer=nn.Adam(0.02), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        hist = model.fit(ids, y, epochs=12, batch_size=16, verbose=0, seed=4)
        return model, hist["loss"]

    model, losses = run()
    assert losses[-1] < 0.5 * losses[0]
    assert model.evaluate(ids, y)["accuracy"] >= 0.9
    assert run()[1] == losses
