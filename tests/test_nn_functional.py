"""The functional API: Dot, Add, Concatenate and the masked Softmax against float64 finite
differences, and an RNN-attention classifier written the Keras way (LSTM over the input,
query/key/value Dense layers, Dot scores, Softmax, Dot context, softmax Dense): its gradient
against finite differences, padding that never leaks in, training with fit, save and load."""

from __future__ import annotations

import numpy as np
import pytest
from checks import check_grad, check_model_grad

from seqkern import nn

F64 = np.float64


def _merge_check(layer, xs, rng, lengths=None, name=""):
    out = layer.forward(xs, lengths=lengths)
    g = rng.standard_normal(out.shape)
    ds = layer.backward(g)
    names = [f"x{i}" for i in range(len(xs))]
    check_grad(lambda **kw: layer.forward([kw[n] for n in names], lengths=lengths, cache=False),
               dict(zip(names, xs)), {"__g__": (g,), **dict(zip(names, ds))}, rng=rng, name=name)
    return out


@pytest.mark.parametrize("sa,sb,axes,expected", [
    ((3, 4), (3, 5, 4), (1, 2), "ba,bta->bt"),        # query against every key: scores
    ((3, 5), (3, 5, 4), (1, 1), "bt,bta->ba"),        # weights over the values: a context
    ((3, 5, 4), (3, 6, 4), (2, 2), "bsa,bta->bst"),   # self-attention scores
    ((3, 5, 6), (3, 6, 4), (-1, 1), "bst,bta->bsa"),
    ((3, 4), (3, 4), 1, "ba,ba->b"),
])
def test_dot_values_and_grad(rng, sa, sb, axes, expected):
    a, b = rng.standard_normal(sa), rng.standard_normal(sb)
    layer = nn.Dot(axes=axes, dtype=F64)
    out = _merge_check(layer, [a, b], rng, name=f"Dot{axes}")
    np.testing.assert_allclose(out, np.einsum(expected, a, b), rtol=1e-13)
    assert layer.output_shape([(None,) + sa[1:], (None,) + sb[1:]]) == (None,) + out.shape[1:]


def test_add_and_concatenate_grad(rng):
    xs = [rng.standard_normal((2, 3, 4)) for _ in range(3)]
    np.testing.assert_allclose(_merge_check(nn.Add(dtype=F64), xs, rng, name="Add"), sum(xs))
    ys = [rng.standard_normal((2, 3, w)) for w in (1, 4, 2)]
    out = _merge_check(nn.Concatenate(dtype=F64), ys, rng, name="Concatenate")
    assert out.shape == (2, 3, 7)
    _merge_check(nn.Concatenate(axis=1, dtype=F64), xs, rng, name="Concatenate axis 1")


@pytest.mark.parametrize("shape,axis", [((4, 6), -1), ((4, 5, 6), -1), ((4, 6, 3), 1)])
def test_masked_softmax_values_and_grad(rng, shape, axis):
    layer = nn.Softmax(axis=axis, time_axis=True, dtype=F64)
    x = rng.standard_normal(shape)
    lengths = np.array([6, 1, 3, 0])
    y = layer.forward(x, lengths=lengths)
    ax = axis % len(shape)
    steps = np.moveaxis(y, ax, 1)  # (B, T, ...)
    for b, n in enumerate(lengths):
        assert np.all(steps[b, n:] == 0), "no weight past a row's length"
        if n:
            np.testing.assert_allclose(steps[b, :n].sum(axis=0), 1.0, rtol=1e-13)
            ref = np.exp(np.moveaxis(x, ax, 1)[b, :n])
            np.testing.assert_allclose(steps[b, :n], ref / ref.sum(axis=0), rtol=1e-12)
    g = rng.standard_normal(shape)
    check_grad(lambda x: layer.forward(x, lengths=lengths, cache=False), {"x": x},
               {"__g__": (g,), "x": (layer.forward(x, lengths=lengths), layer.backward(g))[1]}, rng=rng,
               name="masked Softmax")
    plain = nn.Softmax(axis=axis, time_axis=False, dtype=F64).forward(x, lengths=lengths)
    np.testing.assert_allclose(np.moveaxis(plain, ax, 1).sum(axis=1), 1.0, rtol=1e-13)


def attention_classifier(V=12, E=6, H=5, A=4, C=3, dtype=F64, bidirectional=False, seed=0):
    rng = np.random.default_rng(seed)
    ids = nn.Input(shape=(None,), dtype="int64")
    x = nn.Embedding(V, E, dtype=dtype, seed=rng)(ids)
    h, h_n, _ = nn.LSTM(E, H, bidirectional=bidirectional, return_sequences=True, return_state=True,
                        dtype=dtype, seed=rng)(x)
    W = 2 * H if bidirectional else H
    # The query: the final state (B, H), or for two directions (states (B, 2, H)) the mean step.
    query_from = nn.MeanPool(dtype=dtype)(h) if bidirectional else h_n
    q = nn.Dense(W, A, dtype=dtype, seed=rng)(query_from)
    k = nn.Dense(W, A, dtype=dtype, seed=rng)(h)
    v = nn.Dense(W, A, dtype=dtype, seed=rng)(h)
    alpha = nn.Softmax(dtype=dtype)(nn.Dot(axes=(1, 2), dtype=dtype)([q, k]))
    context = nn.Dot(axes=(1, 1), dtype=dtype)([alpha, v])
    out = nn.Dense(A, C, activation="softmax", dtype=dtype, seed=rng)(context)
    return nn.Model(ids, out)


@pytest.mark.parametrize("bidirectional", [False, True])
def test_attention_classifier_grad(rng, bidirectional):
    model = attention_classifier(bidirectional=bidirectional).compile("adam", "sparse_categorical_crossentropy")
    lengths = np.array([6, 2, 4, 1])
    x = rng.integers(1, 12, size=(4, 6))
    x[np.arange(6)[None, :] >= lengths[:, None]] = 0
    y = rng.integers(0, 3, size=4)
    def loss_of(model, x, y, lengths):
        return model.loss(model.forward(x, lengths=lengths, logits=True, cache=False), y)[0]

    check_model_grad(model, x, y, lengths, loss_of, rng=rng, name="attention classifier")


def test_padding_never_leaks_in(rng):
    model = attention_classifier().compile()
    seqs = [list(rng.integers(1, 12, size=n)) for n in (5, 1, 3)]
    probs = model.predict(seqs)
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(model.predict([s])[0], probs[i], rtol=1e-12)


def _task(rng, n=200):
    x = rng.integers(2, 12, size=(n, 7))
    return x, (x[:, 0] > 6).astype(np.int64) + (x[:, 1] > 6)


def test_attention_classifier_trains_saves_and_loads(tmp_path, rng):
    model = attention_classifier(E=8, H=8, A=6, dtype=np.float32).compile(nn.Adam(0.02),
                                                                       "sparse_categorical_crossentropy")
    x, y = _task(rng)
    hist = model.fit(x, y, epochs=10, batch_size=32, validation_split=0.2, verbose=0, seed=0)
    assert hist["val_accuracy"][-1] > 0.85, hist["val_accuracy"]
    text = model.summary(print_fn=None)
    assert "Dot" in text and "(None, None)" in text and "Softmax" in text
    loaded = nn.load_model(model.save(tmp_path / "attn"))
    assert isinstance(loaded, nn.Model)
    np.testing.assert_array_equal(loaded.predict(x[:20]), model.predict(x[:20]))
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_graph_errors():
    ids = nn.Input(shape=(None,), dtype="int64")
    emb = nn.Embedding(5, 3)
    e = emb(ids)
    with pytest.raises(ValueError, match="Embedding: this layer is already called in a graph; shared layers"):
        emb(ids)
    with pytest.raises(TypeError, match="Dense: takes one tensor, not a list"):
        nn.Dense(3, 2)([e, e])
    with pytest.raises(TypeError, match="Add: takes a list of tensors"):
        nn.Add()(e)
    with pytest.raises(ValueError, match=r"Dot: axes \(2, 2\) have sizes 3 and 4"):
        nn.Dot(axes=2)([e, nn.Dense(3, 4)(e)])
    with pytest.raises(TypeError, match="Embedding: its input must be token ids"):
        nn.Embedding(5, 3)(nn.Input(shape=(None, 2)))
    with pytest.raises(TypeError, match="Model: inputs must be one tensor from nn.Input"):
        nn.Model(e, e)
    with pytest.raises(TypeError, match=r"Input: shape must be a tuple"):
        nn.Input(shape=5)
