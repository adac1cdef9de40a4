"""nn.Conv1D and nn.GlobalMaxPool1D: against a direct sum and PyTorch, per-row lengths, gradients
against finite differences in float64, and in models (training, save/load, summary)."""

from __future__ import annotations

import numpy as np
import pytest

from seqkern import nn
from checks import check_grad

RNG = np.random.default_rng(7)


def _direct(x, kernel, bias, padding, d, lengths=None):
    """The convolution as a sum over taps, in float64, one row at a time on its valid steps only."""
    T, B, C = x.shape
    k, _, F = kernel.shape
    span = (k - 1) * d
    before = span if padding == "causal" else span // 2
    y = np.zeros((T, B, F))
    for b in range(B):
        L = T if lengths is None else lengths[b]
        for t in range(L):
            acc = np.array(bias, dtype=np.float64)
            for j in range(k):
                s = t + j * d - before
                if 0 <= s < L:
                    acc = acc + x[s, b].astype(np.float64) @ kernel[j].astype(np.float64)
            y[t, b] = acc
    return y


@pytest.mark.parametrize("padding", ["same", "causal"])
@pytest.mark.parametrize("k, d", [(1, 1), (2, 1), (3, 1), (4, 2), (5, 3)])
def test_matches_the_direct_sum_with_lengths(padding, k, d):
    x = RNG.standard_normal((9, 4, 5)).astype(np.float32)
    lengths = np.array([9, 6, 1, 0])
    layer = nn.Conv1D(5, 3, k, padding=padding, dilation_rate=d, seed=1)
    layer.set_params({"bias": RNG.standard_normal(3)})
    p = layer.params()
    got = layer(x, lengths=lengths)
    np.testing.assert_allclose(got, _direct(x, p["kernel"], p["bias"], padding, d, lengths), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(layer(x), _direct(x, p["kernel"], p["bias"], padding, d), rtol=1e-5, atol=1e-5)
    assert np.all(got[6:, 1] == 0) and np.all(got[:, 3] == 0)


def test_a_row_does_not_depend_on_the_batch_padding():
    layer = nn.Conv1D(4, 6, 3, activation="relu", seed=2)
    x = RNG.standard_normal((12, 3, 4)).astype(np.float32)
    x[7:, 1] = RNG.standard_normal((5, 4))  # junk past row 1's length
    got = layer(x, lengths=[12, 7, 3])
    alone = layer(np.ascontiguousarray(x[:7, 1:2]))
    np.testing.assert_allclose(got[:7, 1:2], alone, rtol=1e-6, atol=1e-6)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")  # PyTorch copies the input
@pytest.mark.parametrize("padding", ["same", "causal"])
@pytest.mark.parametrize("k, d", [(3, 1), (4, 1), (3, 2)])
def test_matches_pytorch(padding, k, d):
    # PyTorch's padding="same" splits an odd total as Keras does: the extra zero after the sequence.
    torch = pytest.importorskip("torch")
    x = RNG.standard_normal((10, 3, 6))
    layer = nn.Conv1D(6, 4, k, padding=padding, dilation_rate=d, dtype=np.float64, seed=3)
    layer.set_params({"bias": RNG.standard_normal(4)})
    p = layer.params()
    xt = torch.tensor(x.transpose(1, 2, 0))  # (B, C, T)
    w = torch.tensor(p["kernel"].transpose(2, 1, 0).copy())  # (F, C, k)
    if padding == "causal":
        xt = torch.nn.functional.pad(xt, ((k - 1) * d, 0))
        want = torch.nn.functional.conv1d(xt, w, torch.tensor(p["bias"]), dilation=d)
    else:
        want = torch.nn.functional.conv1d(xt, w, torch.tensor(p["bias"]), padding="same", dilation=d)
    np.testing.assert_allclose(layer(x), want.numpy().transpose(2, 0, 1), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("padding, activation", [("same", "tanh"), ("causal", None), ("same", "sigmoid")])
def test_gradients_match_finite_differences(padding, activation):
    x = RNG.standard_normal((7, 3, 4))
    lengths = np.array([7, 4, 2])
    kernel, bias = RNG.standard_normal((3, 4, 5)) * 0.5, RNG.standard_normal(5)
    g = RNG.standard_normal((7, 3, 5))

    def run(x, kernel, bias):
        layer = nn.Conv1D(4, 5, 3, padding=padding, dilation_rate=2, activation=activation, dtype=np.float64)
        layer.set_params({"kernel": kernel, "bias": bias})
        return layer, layer(x, lengths=lengths)

    layer, _ = run(x, kernel, bias)
    dx = layer.backward(g)
    grads = {"__g__": (g,), "x": dx, "kernel": layer.grads()["kernel"], "bias": layer.grads()["bias"]}
    check_grad(lambda **kw: run(**kw)[1], {"x": x, "kernel": kernel, "bias": bias}, grads, rng=RNG, name="Conv1D")
    assert np.all(dx[4:, 1] == 0)


def test_global_max_pool():
    x = RNG.standard_normal((6, 4, 3))
    lengths = np.array([6, 2, 0, 1])
    pool = nn.GlobalMaxPool1D(dtype=np.float64)
    out = pool(x, lengths=lengths)
    for b, L in enumerate(lengths):
        np.testing.assert_array_equal(out[b], x[:L, b].max(axis=0) if L else np.zeros(3))
    g = RNG.standard_normal((4, 3))
    dx = pool.backward(g)
    for b, L in enumerate(lengths):
        for f in range(3):
            want = np.zeros(6)
            if L:
                want[np.argmax(x[:L, b, f])] = g[b, f]
            np.testing.assert_array_equal(dx[:, b, f], want)
    check_grad(lambda x: nn.GlobalMaxPool1D(dtype=np.float64)(x, lengths=lengths), {"x": x},
               {"__g__": (g,), "x": dx}, rng=RNG, name="GlobalMaxPool1D")
    assert pool(np.zeros((0, 2, 3))).shape == (2, 3)


def _keyword_task(n, seed):
    """Label 1 when the bigram (5, 6) occurs, in random order among other words: a CNN's task."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for _ in range(n):
        seq = list(rng.integers(7, 30, rng.integers(6, 20)))
        label = int(rng.random() < 0.5)
        if label:
            i = int(rng.integers(0, len(seq) - 1))
            seq[i:i + 2] = [5, 6]
        elif rng.random() < 0.5:  # the two words apart or reversed: not the bigram
            seq[0], seq[-1] = 6, 5
        xs.append(seq)
        ys.append(label)
    return xs, np.array(ys)


def test_a_cnn_learns_a_bigram_and_survives_save_and_load(tmp_path):
    x_tr, y_tr = _keyword_task(600, 1)
    x_te, y_te = _keyword_task(200, 2)
    model = nn.Sequential([
        nn.Embedding(30, 16, seed=1),
        nn.Conv1D(16, 24, 2, activation="relu", seed=2),
        nn.GlobalMaxPool1D(),
        nn.Dense(24, 2, activation="softmax", seed=3),
    ])
    model.compile(optimizer=nn.Adam(lr=0.01), loss="sparse_categorical_crossentropy")
    model.fit(x_tr, y_tr, epochs=15, batch_size=32, verbose=0, seed=5)
    acc = model.evaluate(x_te, y_te)["accuracy"]
    assert acc > 0.95, acc
    again = nn.load_model(model.save(tmp_path / "cnn"))
    np.testing.assert_array_equal(again.predict(x_te), model.predict(x_te))
    text = model.summary(print_fn=lambda s: None)
    assert "Conv1D" in text and "(None, None, 24)" in text and "GlobalMaxPool1D" in text


def test_conv_then_lstm_trains_with_gradients_through_both():
    x_tr, y_tr = _keyword_task(300, 3)
    model = nn.Sequential([
        nn.Embedding(30, 8, seed=1),
        nn.Conv1D(8, 8, 3, padding="causal", activation="tanh", seed=2),
        nn.LSTM(8, 16, seed=3),
        nn.Dense(16, 2, activation="softmax", seed=4),
    ])
    model.compile(optimizer=nn.Adam(lr=0.01), loss="sparse_categorical_crossentropy")
    before = model.params()["1.kernel"].copy()
    hist = model.fit(x_tr, y_tr, epochs=4, batch_size=32, verbose=0, seed=5)
    assert hist["loss"][-1] < hist["loss"][0]
    assert not np.array_equal(before, model.params()["1.kernel"])


def test_errors_name_the_argument():
    with pytest.raises(ValueError, match="Conv1D: padding must be 'same' or 'causal'"):
        nn.Conv1D(4, 4, 3, padding="valid")
    with pytest.raises(ValueError, match="Conv1D: kernel_size must be >= 1, got 0"):
        nn.Conv1D(4, 4, 0)
    with pytest.raises(ValueError, match="Conv1D: filters must be an integer"):
        nn.Conv1D(4, 2.5, 3)
    with pytest.raises(ValueError, match="Conv1D: activation must be one of"):
        nn.Conv1D(4, 4, 3, activation="gelu")
    with pytest.raises(ValueError, match=r"Conv1D: x must have shape \(T, B, 4\), got \(5, 2, 3\)"):
        nn.Conv1D(4, 4, 3)(np.zeros((5, 2, 3), np.float32))
    with pytest.raises(ValueError, match="GlobalMaxPool1D: x must be a sequence"):
        nn.GlobalMaxPool1D()(np.zeros((5, 3), np.float32))
