"""Sequential.to_onnx: the exported graph, run by ONNX Runtime, gives predict's outputs."""

from __future__ import annotations

import numpy as np
import pytest

from seqkern import nn
from seqkern.text import pad_sequences

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _run(path, feeds):
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(["output"], feeds)[0]


def _seqs(rng, V, lengths):
    return [list(rng.integers(1, V, size=n)) for n in lengths]


MODELS = {
    "bilstm2-attention": lambda r: [nn.Embedding(20, 6, seed=r), nn.Dropout(0.5, seed=r),
                                    nn.LSTM(6, 5, num_layers=2, bidirectional=True, return_sequences=True, seed=r),
                                    nn.AttentionPool(10, 4, seed=r), nn.Dense(10, 3, activation="softmax", seed=r)],
    "lstm-peephole-state": lambda r: [nn.Embedding(20, 6, seed=r), nn.LSTM(6, 5, peephole=True, seed=r),
                                      nn.Dense(5, 1, activation="sigmoid", seed=r)],
    "bigru-mean": lambda r: [nn.Embedding(20, 6, seed=r), nn.GRU(6, 5, bidirectional=True, return_sequences=True, seed=r),
                             nn.MeanPool(), nn.Dense(10, 4, activation="relu", seed=r), nn.Dense(4, 2, seed=r)],
    "gru-reset-before-state": lambda r: [nn.Embedding(20, 6, seed=r),
                                         nn.GRU(6, 5, num_layers=2, reset_after=False, seed=r),
                                         nn.Dense(5, 2, activation="softmax", seed=r)],
    "rnn-relu-state": lambda r: [nn.Embedding(20, 6, seed=r),
                                 nn.SimpleRNN(6, 5, num_layers=2, bidirectional=True, nonlinearity="relu", seed=r),
                                 nn.Dense(10, 3, activation="tanh", seed=r)],
    "tagger": lambda r: [nn.Embedding(20, 6, seed=r), nn.LSTM(6, 5, bidirectional=True, return_sequences=True, seed=r),
                         nn.TimeDistributed(nn.Dense(10, 4, activation="softmax", seed=r))],
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_runtime_matches_predict(tmp_path, rng, name):
    model = nn.Sequential(MODELS[name](np.random.default_rng(1)))
    if "peephole" in name:
        model.layers[1].set_params({"peephole_l0": rng.uniform(-0.5, 0.5, (3, 5))})
    seqs = _seqs(rng, 20, [7, 3, 5, 1])
    ids, lengths = pad_sequences(seqs)
    path = model.to_onnx(tmp_path / f"{name}.onnx")
    got = _run(path, {"ids": ids, "lengths": lengths})
    want = model.predict(seqs)
    assert got.shape == want.shape
    if want.ndim == 3:
        got = got * (np.arange(ids.shape[1])[None, :, None] < lengths[:, None, None])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_onnx_features_input(tmp_path, rng):
    model = nn.Sequential([nn.GRU(3, 4, return_sequences=True, seed=0), nn.AttentionPool(4, seed=1),
                           nn.Dense(4, 1, seed=2)])
    x = rng.standard_normal((3, 6, 3)).astype(np.float32)
    lengths = np.array([6, 2, 4])
    got = _run(model.to_onnx(tmp_path / "f.onnx"), {"x": x, "lengths": lengths})
    np.testing.assert_allclose(got, model.predict(x, lengths=lengths), rtol=1e-4, atol=1e-5)


def test_onnx_refuses_what_it_cannot_export(tmp_path):
    stateful = nn.Sequential([nn.Embedding(5, 2), nn.LSTM(2, 3, stateful=True), nn.Dense(3, 1)])
    with pytest.raises(ValueError, match=r"to_onnx: layer 1 \(LSTM\): stateful layers and return_state"):
        stateful.to_onnx(tmp_path / "s.onnx")
    ids = nn.Input(shape=(None,), dtype="int64")
    graph = nn.Model(ids, nn.Dense(2, 1)(nn.MeanPool()(nn.Embedding(5, 2)(ids))))
    with pytest.raises(TypeError, match="to_onnx: functional Model graphs are not exported"):
        graph.to_onnx(tmp_path / "g.onnx")
