"""seqkern.nn recurrent states: return_state, initial_state (values and gradients against float64
finite differences), stateful layers across batches, and load_torch of a whole model's state dict
by prefix."""

from __future__ import annotations

import numpy as np
import pytest
from checks import check_grad

import seqkern
from seqkern import nn

F64 = np.float64
CELLS = [nn.LSTM, nn.GRU, nn.SimpleRNN]


def _layers_forward(layer):
    return {nn.LSTM: seqkern.lstm_layers_forward, nn.GRU: seqkern.gru_layers_forward,
            nn.SimpleRNN: seqkern.rnn_layers_forward}[type(layer)]


def _states(layer, rng, B):
    shape = (layer.num_layers * len(layer.dirs), B, layer.hidden_size)
    return [rng.standard_normal(shape) * 0.5 for _ in range(layer.state_count)]


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_return_state_gives_the_final_states(rng, cls, return_sequences):
    layer = cls(3, 4, num_layers=2, bidirectional=True, return_sequences=return_sequences, return_state=True,
                dtype=F64, seed=1)
    x = rng.standard_normal((5, 3, 3))
    lengths = np.array([5, 2, 4])
    init = _states(layer, rng, 3)
    out = layer.forward(x, lengths=lengths, initial_state=init)
    assert len(out) == 1 + layer.state_count
    ref = _layers_forward(layer)(x, layer._layers(), lengths=lengths, **dict(zip(("h0", "c0"), init)))
    np.testing.assert_array_equal(out[1], ref.h_n)
    if cls is nn.LSTM:
        np.testing.assert_array_equal(out[2], ref.c_n)
    if return_sequences:
        np.testing.assert_array_equal(out[0], ref.y)
    else:
        # The output is the last layer's two final states side by side.
        np.testing.assert_array_equal(out[0], np.concatenate([ref.h_n[-2], ref.h_n[-1]], axis=1))


@pytest.mark.parametrize("cls", CELLS)
@pytest.mark.parametrize("return_sequences", [False, True])
def test_initial_state_and_state_gradients(rng, cls, return_sequences):
    """Gradients for x, every parameter and the initial states, from upstream gradients on the
    output and on every returned state."""
    layer = cls(3, 4, num_layers=2, bidirectional=True, return_sequences=return_sequences, return_state=True,
                dtype=F64, seed=2)
    layer.set_params({k: rng.uniform(-0.5, 0.5, v.shape) for k, v in layer.params().items() if "b" in k[:2]})
    x = rng.standard_normal((4, 3, 3))
    lengths = np.array([4, 1, 3])
    init = _states(layer, rng, 3)
    names = ["h0", "c0"][: layer.state_count]
    out = layer.forward(x, lengths=lengths, initial_state=init)
    g = tuple(rng.standard_normal(o.shape) for o in out)
    layer.zero_grad()
    dx = layer.backward(g)
    inputs = {"x": x, **dict(zip(names, init)), **{k: v.copy() for k, v in layer.params().items()}}
    grads = {"__g__": g, "x": dx, **dict(zip(names, layer.initial_state_grads)),
             **{k: v.copy() for k, v in layer.grads().items()}}

    def f(**kw):
        saved = {k: v.copy() for k, v in layer.params().items()}
        layer.set_params({k: v for k, v in kw.items() if k in saved})
        res = layer.forward(kw["x"], lengths=lengths, initial_state=[kw[n] for n in names], cache=False)
        layer.set_params(saved)
        return res

    check_grad(f, inputs, grads, rng=rng, name=f"{cls.__name__} states")


def test_no_initial_state_leaves_no_state_gradients(rng):
    layer = nn.LSTM(2, 3, dtype=F64, seed=0)
    layer.backward(np.ones_like(layer.forward(rng.standard_normal((3, 2, 2)))))
    assert layer.initial_state_grads is None


def test_keras_shaped_initial_state(rng):
    """One layer, one direction: initial states may be (B, H), as Keras gives them."""
    layer = nn.LSTM(2, 3, return_state=True, dtype=F64, seed=0)
    x = rng.standard_normal((4, 2, 2))
    h, c = rng.standard_normal((2, 2, 3))
    a = layer.forward(x, initial_state=[h, c])
    b = layer.forward(x, initial_state=[h[None], c[None]])
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    assert a[1].shape == (1, 2, 3)


@pytest.mark.parametrize("cls,state,error,match", [
    (nn.LSTM, "one", ValueError, r"initial_state must be \[h0, c0\], 2 array\(s\), got 1"),
    (nn.GRU, "two", ValueError, r"initial_state must be \[h0\], 1 array\(s\), got 2"),
    (nn.GRU, "shape", ValueError, r"initial_state\[0\] must have shape \(layers\*dirs, B, H\) = \(2, 2, 3\)"),
    (nn.SimpleRNN, "int", TypeError, r"initial_state\[0\] must be floating point"),
])
def test_bad_initial_state_is_refused(cls, state, error, match):
    layer = cls(2, 3, num_layers=2, dtype=F64, seed=0)
    good = np.zeros((2, 2, 3))
    given = {"one": [good], "two": [good, good], "shape": [np.zeros((1, 2, 3))], "int": [good.astype(int)]}[state]
    with pytest.raises(error, match=match):
        layer.forward(np.zeros((3, 2, 2)), initial_state=given)


@pytest.mark.parametrize("cls", CELLS)
def test_stateful_layer_continues_across_batches(rng, cls):
    """A sequence fed in two halves through a stateful layer gives what it gives in one piece."""
    whole = cls(3, 4, num_layers=2, return_sequences=True, dtype=F64, seed=3)
    parts = cls(3, 4, num_layers=2, return_sequences=True, stateful=True, dtype=F64, seed=3)
    x = rng.standard_normal((6, 2, 3))
    y = whole.forward(x)
    y1 = parts.forward(x[:4])
    y2 = parts.forward(x[4:])
    np.testing.assert_allclose(np.concatenate([y1, y2]), y, rtol=1e-13, atol=1e-14)
    parts.reset_states()
    np.testing.assert_array_equal(parts.forward(x[:4]), y1)
    with pytest.raises(ValueError, match="stateful layer got a batch of 3 rows but its states hold 2"):
        parts.forward(x[:, :1].repeat(3, axis=1))


def test_stateful_model_fit_and_predict(rng):
    model = nn.Sequential([nn.LSTM(2, 4, stateful=True, dtype=F64, seed=0), nn.Dense(4, 1, dtype=F64, seed=1)])
    model.compile(nn.Adam(0.01), "mse")
    x = rng.standard_normal((8, 5, 2))
    y = x[:, :, 0].sum(axis=1, keepdims=True)
    with pytest.raises(ValueError, match="fit: shuffle must be False for a model with a stateful layer"):
        model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    hist = model.fit(x, y, epochs=3, batch_size=4, shuffle=False, verbose=0)
    assert hist["loss"][-1] < hist["loss"][0]
    model.reset_states()
    p1 = model.predict(x, batch_size=4)
    # Batches go in order; the second batch starts from the first one's final states.
    model.reset_states()
    first = model.predict(x[:4], batch_size=4)
    np.testing.assert_array_equal(first, p1[:4])
    second = model.predict(x[4:], batch_size=4)
    np.testing.assert_array_equal(second, p1[4:])
    model.reset_states()
    assert not np.array_equal(model.predict(x[4:], batch_size=4), p1[4:])


def test_sequential_refuses_return_state():
    with pytest.raises(ValueError, match=r"Sequential: layer 0 \(LSTM\) has return_state=True"):
        nn.Sequential([nn.LSTM(2, 3, return_state=True), nn.Dense(3, 1)])


def test_state_options_in_config_and_saved_models(tmp_path):
    layer = nn.GRU(2, 3, stateful=True)
    cfg = layer.get_config()
    assert cfg["stateful"] is True and cfg["return_state"] is False
    model = nn.Sequential([layer, nn.Dense(3, 2, activation="softmax")]).compile()
    loaded = nn.load_model(model.save(tmp_path / "s"))
    assert loaded.layers[0].stateful and loaded.stateful


def _torch_model():
    torch = pytest.importorskip("torch")

    class Tagger(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = torch.nn.Embedding(11, 4, padding_idx=0)
            self.encoder = torch.nn.LSTM(4, 3, num_layers=2, bidirectional=True)
            self.head = torch.nn.Sequential(torch.nn.Linear(6, 5))

        def forward(self, ids):
            _, (h, _) = self.encoder(self.embed(ids.T))
            return self.head(torch.cat([h[-2], h[-1]], dim=1))

    torch.manual_seed(0)
    return torch, Tagger()


def test_load_torch_by_prefix(rng):
    torch, tm = _torch_model()
    ours = nn.Sequential([nn.Embedding(11, 4), nn.LSTM(4, 3, num_layers=2, bidirectional=True), nn.Dense(6, 5)])
    sd = tm.state_dict()
    ours.layers[0].load_torch(sd, prefix="embed")
    ours.layers[1].load_torch(sd, prefix="encoder.")
    ours.layers[2].load_torch(sd, prefix="head.0")
    ids = rng.integers(1, 11, size=(3, 6))
    with torch.no_grad():
        ref = tm(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(ours.forward(ids), ref, rtol=1e-4, atol=1e-5)


def test_model_load_torch_by_prefixes(rng):
    torch, tm = _torch_model()
    sd = tm.state_dict()
    a = nn.Sequential([nn.Embedding(11, 4), nn.LSTM(4, 3, num_layers=2, bidirectional=True), nn.Dropout(0.1),
                       nn.Dense(6, 5)])
    a.load_torch(sd, {0: "embed", 1: "encoder", 3: "head.0"})
    b = nn.Sequential([nn.Embedding(11, 4), nn.LSTM(4, 3, num_layers=2, bidirectional=True), nn.Dropout(0.1),
                       nn.Dense(6, 5)])
    b.load_torch(sd, ["embed", "encoder", None, "head.0"])
    ids = rng.integers(1, 11, size=(3, 6))
    with torch.no_grad():
        ref = tm(torch.from_numpy(ids)).numpy()
    np.testing.assert_allclose(a.forward(ids), ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(a.forward(ids), b.forward(ids))
    with pytest.raises(TypeError, match=r"load_torch: layer 2 \(Dropout\) takes no PyTorch weights"):
        a.load_torch(sd, {2: "x"})
    with pytest.raises(ValueError, match="load_torch: prefixes has layer index 7"):
        a.load_torch(sd, {7: "x"})
    with pytest.raises(ValueError, match=r"load_torch: prefixes as a list needs one entry a layer \(4\), got 2"):
        a.load_torch(sd, ["embed", "encoder"])


def test_load_torch_missing_key_names_it_and_the_prefixes():
    _, tm = _torch_model()
    sd = tm.state_dict()
    with pytest.raises(KeyError, match=r"LSTM.load_torch: the state dict has no 'weight_ih_l0'; it holds parameters "
                                       r"under the prefixes \['embed.', 'encoder.', 'head.0.'\]"):
        nn.LSTM(4, 3, num_layers=2, bidirectional=True).load_torch(sd)
    with pytest.raises(KeyError, match="Dense.load_torch: the state dict has no 'head.weight'"):
        nn.Dense(6, 5).load_torch(sd, prefix="head")
    with pytest.raises(TypeError, match="Embedding.load_torch: prefix must be a str"):
        nn.Embedding(11, 4).load_torch(sd, prefix=0)
