"""seqkern.nn.SimpleRNN: layer gradients against float64 finite differences (tanh and relu),
outputs against PyTorch's nn.RNN with the same weights, config and init, training and save/load
of a small model."""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_close
from test_nn import _layer_check

from seqkern import nn

F64 = np.float64


def _random_rnn(rng, *args, **kw):
    rnn = nn.SimpleRNN(*args, dtype=F64, seed=4, **kw)
    rnn.set_params({k: rng.uniform(-0.5, 0.5, v.shape) for k, v in rnn.params().items() if k.startswith("bias")})
    return rnn


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("use_lengths", [True, False])
def test_rnn_grad(rng, return_sequences, use_lengths, nonlinearity):
    rnn = _random_rnn(rng, 3, 4, 2, True, nonlinearity=nonlinearity, return_sequences=return_sequences)
    T, B = 5, 3
    x = rng.standard_normal((T, B, 3))
    lengths = np.array([5, 2, 0]) if use_lengths else None
    out = _layer_check(rnn, x, rng, lengths=lengths, name=f"SimpleRNN {nonlinearity}")
    assert out.shape == ((T, B, 8) if return_sequences else (B, 8))


def test_rnn_params_config_and_init():
    rnn = nn.SimpleRNN(5, 8, 2, True, nonlinearity="relu", seed=0)
    cfg = rnn.get_config()
    assert cfg["class"] == "SimpleRNN" and cfg["nonlinearity"] == "relu"
    assert [(k, v.shape) for k, v in rnn.params().items()] == list(nn.SimpleRNN.param_shapes(cfg))
    assert list(rnn.params())[:3] == ["w_ih_l0", "w_hh_l0", "bias_l0"]
    assert rnn.params()["w_ih_l1_reverse"].shape == (8, 16)
    w = rnn.params()["w_hh_l0"].astype(F64)
    np.testing.assert_allclose(w.T @ w, np.eye(8), atol=1e-5)
    assert all(np.all(v == 0) for k, v in rnn.params().items() if k.startswith("bias"))
    clone = nn.layer_from_config(cfg)
    assert type(clone) is nn.SimpleRNN and clone.get_config() == cfg
    with pytest.raises(ValueError, match="SimpleRNN: nonlinearity must be 'tanh' or 'relu'"):
        nn.SimpleRNN(5, 8, nonlinearity="sigmoid")


@pytest.mark.parametrize("nonlinearity", ["tanh", "relu"])
def test_rnn_matches_torch(rng, nonlinearity):
    torch = pytest.importorskip("torch")
    D, H, T = 3, 4, 6
    ref = torch.nn.RNN(D, H, num_layers=2, bidirectional=True, nonlinearity=nonlinearity).double()
    rnn = nn.SimpleRNN(D, H, 2, True, nonlinearity=nonlinearity, return_sequences=True, dtype=F64)
    rnn.load_torch(ref.state_dict())
    lengths = np.array([6, 2, 4, 1])
    x = rng.standard_normal((T, len(lengths), D))
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                         enforce_sorted=False)
        y, _ = ref(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=T)
    assert_close(rnn.forward(x, lengths=lengths), y.numpy(), name="SimpleRNN vs torch")


def test_rnn_model_trains_and_round_trips(tmp_path, rng):
    x = rng.integers(2, 12, size=(256, 8))
    y = (x[:, -1] > 6).astype(np.int64) + (x[:, -2] > 6)
    r = np.random.default_rng(0)
    model = nn.Sequential([
        nn.Embedding(12, 4, seed=r),
        nn.SimpleRNN(4, 8, seed=r),
        nn.Dense(8, 3, activation="softmax", seed=r),
    ]).compile(nn.Adam(0.02), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y)["loss"]
    model.fit(x, y, epochs=4, batch_size=32, verbose=0, seed=0)
    after = model.evaluate(x, y)["loss"]
    assert after < 0.7 * before, (before, after)
    path = tmp_path / "rnn.npz"
    model.save(path)
    loaded = nn.load_model(path)
    assert type(loaded.layers[1]) is nn.SimpleRNN
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
