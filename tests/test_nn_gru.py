"""seqkern.nn.GRU: layer gradients against float64 finite differences (both reset variants),
outputs against PyTorch's nn.GRU with the same weights, training and save/load of a small model,
predict from threads."""

from __future__ import annotations

import sys
import threading

import numpy as np
import pytest
from checks import assert_close
from test_nn import _layer_check

from seqkern import nn

F64 = np.float64


def _random_gru(rng, *args, **kw):
    gru = nn.GRU(*args, dtype=F64, seed=4, **kw)
    # Random biases, so that no term of the gradient hides behind a zero.
    gru.set_params({k: rng.uniform(-0.5, 0.5, v.shape) for k, v in gru.params().items() if k.startswith("b_")})
    return gru


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("return_sequences", [True, False])
@pytest.mark.parametrize("use_lengths", [True, False])
def test_gru_grad(rng, return_sequences, use_lengths, reset_after):
    gru = _random_gru(rng, 3, 4, 2, True, return_sequences=return_sequences, reset_after=reset_after)
    T, B = 5, 3
    x = rng.standard_normal((T, B, 3))
    lengths = np.array([5, 2, 0]) if use_lengths else None
    out = _layer_check(gru, x, rng, lengths=lengths, name="GRU")
    assert out.shape == ((T, B, 8) if return_sequences else (B, 8))
    if use_lengths and return_sequences:
        assert np.all(out[2:, 1] == 0) and np.all(out[:, 2] == 0)


def test_gru_dropout_between_layers_grad(rng):
    gru = nn.GRU(3, 4, 2, True, dropout=0.4, return_sequences=True, dtype=F64, seed=5)
    x = rng.standard_normal((4, 2, 3))
    assert not np.allclose(gru.forward(x), gru.forward(x, training=True))
    _layer_check(gru, x, rng, lengths=np.array([4, 3]), training=True, reseed=11, name="GRU dropout")


def test_reset_before_config_and_its_refusals(tmp_path, rng):
    gru = nn.GRU(5, 8, reset_after=False, seed=0)
    cfg = gru.get_config()
    assert cfg["reset_after"] is False and "reset_after" not in nn.GRU(5, 8).get_config()
    clone = nn.layer_from_config(cfg)
    assert clone.reset_after is False and clone.get_config() == cfg
    x = rng.standard_normal((4, 2, 5)).astype(np.float32)
    clone.set_params(gru.params())
    np.testing.assert_array_equal(clone.forward(x), gru.forward(x))
    assert not np.allclose(gru.forward(x), nn.GRU(5, 8, seed=0).forward(x))  # the variants differ
    with pytest.raises(ValueError, match="GRU: reset_after must be True or False"):
        nn.GRU(5, 8, reset_after="no")
    with pytest.raises(ValueError, match="needs reset_after=True"):
        gru.quantize("int8")
    with pytest.raises(ValueError, match="reset_after=False"):
        gru.load_torch({"weight_ih_l0": np.zeros((24, 5))})


def test_gru_params_config_and_init():
    gru = nn.GRU(5, 8, 2, True, seed=0)
    H = 8
    cfg = gru.get_config()
    assert cfg["class"] == "GRU" and "peephole" not in cfg
    assert [(k, v.shape) for k, v in gru.params().items()] == list(nn.GRU.param_shapes(cfg))
    assert list(gru.params())[:4] == ["w_ih_l0", "w_hh_l0", "b_ih_l0", "b_hh_l0"]
    assert gru.params()["w_ih_l1_reverse"].shape == (3 * H, 2 * H)
    p = gru.params()
    w = p["w_hh_l0"].astype(F64)  # (3H, H) with orthonormal columns
    np.testing.assert_allclose(w.T @ w, np.eye(H), atol=1e-5)
    assert np.abs(p["w_ih_l0"]).max() <= np.sqrt(6 / (5 + 3 * H))
    assert all(np.all(v == 0) for k, v in p.items() if k.startswith("b_"))
    assert p["w_ih_l0"].dtype == np.float32
    clone = nn.layer_from_config(cfg)
    assert type(clone) is nn.GRU and clone.get_config() == cfg


@pytest.mark.parametrize("return_sequences", [True, False])
def test_gru_matches_torch(rng, return_sequences):
    torch = pytest.importorskip("torch")
    D, H, T = 3, 4, 6
    gru = _random_gru(rng, D, H, 2, True, return_sequences=return_sequences)
    ref = torch.nn.GRU(D, H, num_layers=2, bidirectional=True).double()
    ref.load_state_dict({k: torch.from_numpy(gru.params()[k.replace("weight", "w").replace("bias", "b")].copy())
                         for k in ref.state_dict()})
    lengths = np.array([6, 2, 4, 1])
    x = rng.standard_normal((T, len(lengths), D))
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(torch.from_numpy(x), torch.from_numpy(lengths),
                                                         enforce_sorted=False)
        y, h_n = ref(packed)
        y, _ = torch.nn.utils.rnn.pad_packed_sequence(y, total_length=T)
    expected = y.numpy() if return_sequences else torch.cat([h_n[-2], h_n[-1]], dim=1).numpy()
    assert_close(gru.forward(x, lengths=lengths), expected, name="GRU vs torch")

    # And back: torch's state dict loaded into a fresh layer gives the same parameters.
    fresh = nn.GRU(D, H, 2, True, dtype=F64)
    fresh.load_torch(ref.state_dict())
    for k, v in gru.params().items():
        np.testing.assert_array_equal(fresh.params()[k], v)


def _toy_task(rng, n=256):
    x = rng.integers(2, 12, size=(n, 8))
    y = (x[:, 0] > 6).astype(np.int64) + (x[:, 1] > 6)
    return x, y


def _gru_model(seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential([
        nn.Embedding(12, 4, seed=rng),
        nn.GRU(4, 6, bidirectional=True, seed=rng),
        nn.Dense(12, 3, activation="softmax", seed=rng),
    ]).compile(nn.Adam(0.02), "sparse_categorical_crossentropy")


def test_gru_model_trains_and_round_trips(tmp_path, rng):
    x, y = _toy_task(rng)
    model = _gru_model()
    before = model.evaluate(x, y)["loss"]
    model.fit(x, y, epochs=4, batch_size=32, verbose=0, seed=0)
    after = model.evaluate(x, y)["loss"]
    assert after < 0.7 * before, (before, after)
    path = tmp_path / "gru.npz"
    model.save(path)
    loaded = nn.load_model(path)
    assert type(loaded.layers[1]) is nn.GRU
    assert [layer.get_config() for layer in loaded.layers] == [layer.get_config() for layer in model.layers]
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_gru_predict_from_threads_matches_one_thread(rng):
    model = _gru_model()
    inputs = [[list(rng.integers(1, 12, size=n)) for n in rng.integers(1, 30, size=40)] for _ in range(8)]
    alone = [model.predict(x, batch_size=7) for x in inputs]
    got, errors = [[] for _ in inputs], []
    start = threading.Barrier(len(inputs))

    def run(i):
        try:
            start.wait()
            got[i].extend(model.predict(inputs[i], batch_size=7) for _ in range(5))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        pool = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
        [t.start() for t in pool]
        [t.join(timeout=120) for t in pool]
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[0]
    for i, runs in enumerate(got):
        assert len(runs) == 5
        for probs in runs:
            np.testing.assert_array_equal(probs, alone[i], err_msg=f"thread {i}")
