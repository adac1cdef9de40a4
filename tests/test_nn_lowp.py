"""seqkern.nn with low-precision recurrent weights: ``model.quantize("int8" | "bf16" | None)``.

A quantized layer computes exactly what the kernels give for weights objects of that format built
from its parameters; bf16 is the float32 model on bfloat16-rounded weights bit for bit; saving and
loading keep the format; quantize(None) gives the float32 results back; a quantized model does not
train.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import seqkern as sk
from seqkern import nn
from seqkern.demo import build_model, synthetic_task
from seqkern.reference import lowp
from seqkern.text import LabelEncoder, Vocab, tokenize

RNG = np.random.default_rng(7)


def _model(cell="LSTM", bidirectional=True, layers=2, seed=0):
    rng = np.random.default_rng(seed)
    kw = {"nonlinearity": "tanh"} if cell == "SimpleRNN" else {}
    rec = getattr(nn, cell)(12, 16, layers, bidirectional, return_sequences=True, seed=rng, **kw)
    return nn.Sequential([nn.Embedding(50, 12, seed=rng), rec, nn.AttentionPool(rec.output_size, 8, seed=rng),
                          nn.Dense(rec.output_size, 3, activation="softmax", seed=rng)])


def _batch(n=9, T=11):
    return RNG.integers(1, 50, (n, T)), RNG.integers(2, T + 1, n)


@pytest.mark.parametrize("fmt", ["int8", "bf16"])
def test_layer_runs_the_format_s_weights(fmt):
    layer = nn.LSTM(10, 24, peephole=True, return_sequences=True, seed=3).quantize(fmt)
    assert layer.weight_format == fmt
    x = RNG.standard_normal((7, 5, 10)).astype(np.float32)
    lengths = np.array([7, 3, 5, 1, 6])
    got = layer.forward(x, lengths=lengths, cache=False)
    p = layer.params()
    w = sk.LSTMWeights(p["w_ih_l0"], p["w_hh_l0"], p["bias_l0"], p["peephole_l0"], dtype=fmt)
    want = sk.lstm_forward(x, w, lengths=lengths, need_cache=False).y
    np.testing.assert_array_equal(got, want)
    if fmt == "int8":
        ref = lowp.lstm_forward_int8(x, w, lengths=lengths).y
        np.testing.assert_allclose(got, ref, rtol=0, atol=0.02)  # see test_lowp: one quantum at most


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
def test_bf16_model_is_the_float_model_on_rounded_weights(cell):
    model = _model(cell)
    x, lengths = _batch()
    rounded = _model(cell)
    rec = rounded.layers[1]
    rec.set_params({k: lowp.round_bfloat16(v) if k.startswith("w_") else v for k, v in rec.params().items()})
    model.quantize("bf16")
    np.testing.assert_array_equal(model.predict(x, lengths=lengths), rounded.predict(x, lengths=lengths))


@pytest.mark.parametrize("cell", ["LSTM", "GRU", "SimpleRNN"])
@pytest.mark.parametrize("fmt", ["int8", "bf16"])
def test_save_load_quantize_none(tmp_path, cell, fmt):
    model = _model(cell)
    x, lengths = _batch()
    float_out = model.predict(x, lengths=lengths)
    quantized = model.quantize(fmt).predict(x, lengths=lengths)
    assert not np.array_equal(quantized, float_out)
    path = model.save(tmp_path / "m")
    loaded = nn.load_model(path)
    assert loaded.layers[1].weight_format == fmt
    np.testing.assert_array_equal(loaded.predict(x, lengths=lengths), quantized)
    y = np.zeros(len(x), np.int64)
    for m in (model, loaded):
        m.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert loaded.evaluate(x, y, lengths=lengths)["loss"] == model.evaluate(x, y, lengths=lengths)["loss"]
    assert f"[{fmt}]" in model.summary(print_fn=None)
    np.testing.assert_array_equal(model.quantize(None).predict(x, lengths=lengths), float_out)
    np.testing.assert_array_equal(loaded.quantize("float32").predict(x, lengths=lengths), float_out)
    # A float model's file has no format entry (files written before it load unchanged).
    assert "weight_format" not in model.get_config()["layers"][1]


def test_new_parameters_are_converted_again():
    model = _model().quantize("int8")
    x, lengths = _batch()
    before = model.predict(x, lengths=lengths)
    other = _model(seed=5)
    model.layers[1].set_params(other.layers[1].params())
    other.layers[1].quantize("int8")
    model.layers[0].set_params(other.layers[0].params())
    model.layers[2].set_params(other.layers[2].params())
    model.layers[3].set_params(other.layers[3].params())
    after = model.predict(x, lengths=lengths)
    assert not np.array_equal(before, after)
    np.testing.assert_array_equal(after, other.predict(x, lengths=lengths))


def test_a_quantized_model_does_not_train():
    model = _model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    x, lengths = _batch()
    y = RNG.integers(0, 3, len(x))
    model.quantize("int8")
    with pytest.raises(ValueError, match="does not train"):
        model.fit(x, y, lengths=lengths, epochs=1)
    with pytest.raises(ValueError, match="no backward"):
        model.layers[1].backward(np.zeros((11, 9, 32), np.float32))
    model.quantize(None)
    model.fit(x, y, lengths=lengths, epochs=1)


def test_quantize_errors_name_the_argument():
    model = _model()
    with pytest.raises(ValueError, match="weight_format must be"):
        model.quantize("int4")
    with pytest.raises(ValueError, match="float32 layer"):
        nn.LSTM(4, 8, dtype=np.float64).quantize("int8")
    with pytest.raises(ValueError, match="no recurrent layer"):
        nn.Sequential([nn.Embedding(10, 4), nn.MeanPool(), nn.Dense(4, 2)]).quantize("bf16")
    with pytest.raises(ValueError, match="weight_format must be"):
        nn.GRU(4, 8, weight_format="fp8")


def test_predictor_and_pickle_keep_the_format():
    texts, labels = synthetic_task(60, seed=3, min_len=20, max_len=30)
    toks = [tokenize(t) for t in texts]
    vocab = Vocab.build(toks)
    enc = LabelEncoder.fit(labels)
    model = build_model("lstm-attn", len(vocab), len(enc.classes), 16, 16, seed=1).quantize("int8")
    pred = nn.Predictor(model, vocab)
    got = pred.predict_proba(texts)
    again = pickle.loads(pickle.dumps(pred)).predict_proba(texts)
    np.testing.assert_array_equal(got, again)
    ids = [vocab.encode(t) for t in toks]
    np.testing.assert_allclose(got, model.predict(ids), rtol=0, atol=1e-6)


def test_int8_keeps_the_demo_task_accuracy():
    # The synthetic demo task (word order decides the label): the quantized model's test
    # accuracy stays within two points of the float32 model's, after the same training (its batch
    # order seeded: unseeded, 12 epochs sometimes left the float32 model short of learning the task).
    tr_texts, tr_labels = synthetic_task(600, seed=11, min_len=20, max_len=40)
    te_texts, te_labels = synthetic_task(300, seed=12, min_len=20, max_len=40)
    vocab = Vocab.build([tokenize(t) for t in tr_texts])
    enc = LabelEncoder.fit(tr_labels)
    x_tr = [vocab.encode(tokenize(t)) for t in tr_texts]
    x_te = [vocab.encode(tokenize(t)) for t in te_texts]
    model = build_model("lstm-attn", len(vocab), len(enc.classes), 24, 32, seed=2)
    model.compile(optimizer=nn.Adam(lr=0.01), loss="sparse_categorical_crossentropy")
    model.fit(x_tr, enc.transform(tr_labels), epochs=20, batch_size=32, verbose=0, seed=5)
    y_te = enc.transform(te_labels)
    acc = {}
    for fmt in (None, "bf16", "int8"):
        acc[fmt] = float(np.mean(model.quantize(fmt).predict(x_te).argmax(axis=1) == y_te))
    assert acc[None] > 0.9, acc  # it learnt the task, so the comparison means something
    assert abs(acc["int8"] - acc[None]) <= 0.02, acc
    assert abs(acc["bf16"] - acc[None]) <= 0.01, acc
