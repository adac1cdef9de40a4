"""nn.from_keras: Keras Sequential models (Keras 3 on the PyTorch backend) converted to seqkern.nn
give Keras's own predictions on the same token ids. Skips without keras (or its backend)."""

import os

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")

from seqkern import nn  # noqa: E402

# Keras's own variables warn when NumPy converts them (inside keras, not here).
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

L = keras.layers
V, T, N = 30, 9, 12


def _ids(rng, pad=True):
    ids = rng.integers(1, V, (N, T))
    if pad:
        for i in range(N):
            ids[i, rng.integers(2, T + 1):] = 0
    return ids


def _perturbed(model, rng):
    """Random weights, biases included (Keras starts them at zero), so every term is checked."""
    model.set_weights([w + (0.3 * rng.standard_normal(w.shape)).astype(w.dtype) for w in model.get_weights()])
    return model


def _inputs():
    return keras.Input((T,), dtype="int32")


MODELS = {
    # The classic: LSTM(50) over masked embeddings, a softmax Dense.
    "lstm": lambda: [L.Embedding(V, 8, mask_zero=True), L.LSTM(50), L.Dense(3, activation="softmax")],
    "bigru_dropout": lambda: [L.Embedding(V, 8, mask_zero=True), L.Bidirectional(L.GRU(5)), L.Dropout(0.3),
                              L.Dense(2, activation="softmax")],
    "gru_reset_before_meanpool": lambda: [L.Embedding(V, 8, mask_zero=True),
                                          L.GRU(5, reset_after=False, return_sequences=True),
                                          L.GlobalAveragePooling1D(), L.Dense(1, activation="sigmoid")],
    "stacked_lstm_no_bias": lambda: [L.Embedding(V, 8, mask_zero=True), L.LSTM(6, return_sequences=True),
                                     L.LSTM(4, use_bias=False), L.Dense(2, activation="tanh")],
    "relu_rnn_bilstm_tagger": lambda: [L.Embedding(V, 8), L.SimpleRNN(6, activation="relu", return_sequences=True),
                                       L.Bidirectional(L.LSTM(4, return_sequences=True)),
                                       L.TimeDistributed(L.Dense(3, activation="softmax"))],
    "conv_maxpool": lambda: [L.Embedding(V, 8), L.Conv1D(7, 3, padding="causal", dilation_rate=2, activation="relu"),
                             L.GlobalMaxPooling1D(), L.Dense(4)],
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_predictions_equal_keras(rng, name):
    model = _perturbed(keras.Sequential([_inputs()] + MODELS[name]()), rng)
    masked = isinstance(model.layers[0], L.Embedding) and model.layers[0].get_config().get("mask_zero")
    ids = _ids(rng, pad=bool(masked))
    want = model.predict(ids, verbose=0)
    got = nn.from_keras(model).predict(ids)
    assert got.shape == want.shape
    if got.ndim == 3 and masked:
        got, want = got[ids != 0], want[ids != 0]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_dense_over_a_sequence_becomes_per_token(rng):
    model = _perturbed(keras.Sequential([_inputs(), L.Embedding(V, 8), L.LSTM(5, return_sequences=True),
                                         L.Dense(3, activation="softmax")]), rng)
    converted = nn.from_keras(model)
    assert isinstance(converted.layers[-1], nn.TimeDistributed)
    ids = _ids(rng, pad=False)
    np.testing.assert_allclose(converted.predict(ids), model.predict(ids, verbose=0), rtol=1e-4, atol=1e-5)


def test_saved_file_converts(rng, tmp_path):
    model = _perturbed(keras.Sequential([_inputs(), L.Embedding(V, 8, mask_zero=True), L.GRU(4),
                                         L.Dense(2, activation="softmax")]), rng)
    path = tmp_path / "model.keras"
    model.save(path)
    ids = _ids(rng)
    np.testing.assert_allclose(nn.from_keras(str(path)).predict(ids), model.predict(ids, verbose=0),
                               rtol=1e-4, atol=1e-5)


def test_converted_model_trains_and_saves(rng, tmp_path):
    model = _perturbed(keras.Sequential([_inputs(), L.Embedding(V, 8, mask_zero=True), L.LSTM(5),
                                         L.Dense(2, activation="softmax")]), rng)
    converted = nn.from_keras(model)
    converted.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    ids, y = _ids(rng), rng.integers(0, 2, N)
    before = converted.evaluate(ids, y)
    converted.fit(ids, y, epochs=3, batch_size=4, seed=5, verbose=0)
    assert converted.evaluate(ids, y) != before
    converted.save(tmp_path / "m.npz")
    np.testing.assert_allclose(nn.load_model(tmp_path / "m.npz").predict(ids), converted.predict(ids))


@pytest.mark.parametrize("layers, match", [
    (lambda: [L.Embedding(V, 8), L.LSTM(4, activation="relu")], "activation='relu'"),
    (lambda: [L.Embedding(V, 8), L.LSTM(4, go_backwards=True)], "go_backwards"),
    (lambda: [L.Embedding(V, 8), L.Bidirectional(L.LSTM(4), merge_mode="sum")], "merge_mode"),
    (lambda: [L.Embedding(V, 8), L.Conv1D(4, 3, padding="valid")], "padding='valid'"),
    (lambda: [L.Embedding(V, 8), L.Conv1D(4, 3, strides=2, padding="same")], "strides"),
    (lambda: [L.Embedding(V, 8), L.LSTM(4), L.Dense(2, activation="gelu")], "activation='gelu'"),
    (lambda: [L.Embedding(V, 8), L.Flatten()], "no seqkern.nn equivalent"),
])
def test_unsupported_layers_raise_naming_them(layers, match):
    model = keras.Sequential([_inputs()] + layers())
    with pytest.raises(ValueError, match=match):
        nn.from_keras(model)


def test_not_a_model_raises():
    with pytest.raises(TypeError, match="from_keras"):
        nn.from_keras(42)


def test_recurrent_dropout_carries_over(rng):
    # Keras's recurrent_dropout acts in training only: predictions are unchanged, and the nn
    # layers train with the same rate (the reset-before GRU, whose kernels take no mask, without).
    model = _perturbed(keras.Sequential([_inputs(), L.Embedding(V, 8, mask_zero=True),
                                         L.Bidirectional(L.LSTM(5, recurrent_dropout=0.2, return_sequences=True)),
                                         L.GRU(4, recurrent_dropout=0.1, return_sequences=True),
                                         L.GRU(3, reset_after=False, recurrent_dropout=0.3),
                                         L.Dense(2, activation="softmax")]), rng)
    ours = nn.from_keras(model)
    assert [getattr(layer, "recurrent_dropout", None) for layer in ours.layers[1:4]] == [0.2, 0.1, 0.0]
    ids = _ids(rng)
    np.testing.assert_allclose(ours.predict(ids), np.asarray(model.predict(ids, verbose=0)), rtol=1e-4, atol=1e-5)
