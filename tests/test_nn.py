"""seqkern.nn: layer and whole-model gradients against float64 finite differences, training,
save/load, PyTorch weight import, the demo's TSV path and an SST-2 smoke test."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from checks import assert_close, check_grad, check_model_grad

import seqkern
from seqkern import nn
from seqkern.text import pad_sequences

F64 = np.float64
# ../shared/datasets/sst2 relative to the repository (or to a folder above it); SEQKERN_SST2 overrides.
SST2 = next((p / "shared" / "datasets" / "sst2" for p in Path(__file__).resolve().parents
             if (p / "shared" / "datasets" / "sst2").is_dir()), Path("absent"))
SST2 = Path(os.environ.get("SEQKERN_SST2", SST2))


def _layer_check(layer, x, rng, lengths=None, training=False, reseed=None, name=""):
    """check_grad of every parameter of ``layer`` (and of a float input) at (x, lengths)."""
    def run(xx):
        if reseed is not None:
            layer._gen = np.random.default_rng(reseed)
        return layer.forward(xx, lengths=lengths, training=training)

    out = run(x)
    g = rng.standard_normal(out.shape)
    layer.zero_grad()
    dx = layer.backward(g)
    inputs = {k: v.copy() for k, v in layer.params().items()}
    grads = {"__g__": (g,), **{k: v.copy() for k, v in layer.grads().items()}}
    if dx is not None:
        inputs["x"], grads["x"] = x, dx

    def f(**kw):
        saved = {k: v.copy() for k, v in layer.params().items()}
        layer.set_params({k: v for k, v in kw.items() if k != "x"})
        out = run(kw.get("x", x))
        layer.set_params(saved)
        return out

    check_grad(f, inputs, grads, rng=rng, name=name)
    return out


def test_embedding_grad_and_padding(rng):
    emb = nn.Embedding(7, 5, padding_idx=0, dtype=F64, seed=1)
    assert np.all(emb.params()["weight"][0] == 0)
    # The padding row is frozen by design, so the finite-difference check uses ids without it.
    out = _layer_check(emb, np.array([[1, 2, 2, 5], [3, 6, 4, 4], [6, 6, 6, 1]]), rng, name="Embedding")
    ids = np.array([[1, 2, 2, 0], [3, 6, 0, 0], [6, 6, 6, 1]])
    assert out.shape == (4, 3, 5)  # time-major
    np.testing.assert_array_equal(out[1, 0], emb.params()["weight"][2])
    emb.zero_grad()
    emb.forward(ids)
    emb.backward(np.ones((4, 3, 5)))
    g = emb.grads()["weight"]
    assert np.all(g[0] == 0), "the padding row must not receive a gradient"
    np.testing.assert_array_equal(g[6], np.full(5, 4.0))
    with pytest.raises(ValueError, match="ids must be in"):
        emb.forward(np.array([[7]]))


def test_embedding_word_dropout():
    emb = nn.Embedding(50, 3, word_dropout=0.3, seed=0)
    ids = np.tile(np.r_[np.arange(2, 50), [0, 0]], (40, 1))
    w = emb.params()["weight"]
    np.testing.assert_array_equal(emb.forward(ids, training=False), w[ids.T])
    out = emb.forward(ids, training=True)
    dropped = np.all(out == w[1], axis=2) & (ids.T != 1)
    assert 0.2 < dropped[:-2].mean() < 0.4, "about 30% of the words become <unk>"
    assert not dropped[-2:].any(), "padding stays padding"


@pytest.mark.parametrize("activation", [None, "relu", "tanh", "sigmoid", "softmax"])
def test_dense_grad(rng, activation):
    d = nn.Dense(6, 4, activation=activation, dtype=F64, seed=2)
    d.set_params({"bias": rng.standard_normal(4)})
    x = rng.standard_normal((3, 5, 6))
    _layer_check(d, x, rng, name=f"Dense[{activation}]")


def test_dropout(rng):
    d = nn.Dropout(0.5, dtype=F64, seed=3)
    x = rng.standard_normal((40, 30))
    np.testing.assert_array_equal(d.forward(x, training=False), x)
    y = d.forward(x, training=True)
    kept = y != 0
    assert 0.35 < kept.mean() < 0.65
    np.testing.assert_allclose(y[kept], 2 * x[kept])
    np.testing.assert_array_equal(d.backward(np.ones_like(x)), 2.0 * kept)


def test_meanpool_grad(rng):
    x = rng.standard_normal((6, 3, 4))
    _layer_check(nn.MeanPool(dtype=F64), x, rng, lengths=np.array([6, 2, 0]), name="MeanPool")


@pytest.mark.parametrize(
    "num_layers,bidirectional,peephole,return_sequences,use_lengths",
    [
        (1, False, False, True, False),
        (1, False, True, False, True),
        (1, True, False, False, True),
        (2, True, True, True, True),
        (2, False, False, False, False),
    ],
)
def test_lstm_grad(rng, num_layers, bidirectional, peephole, return_sequences, use_lengths):
    lstm = nn.LSTM(3, 4, num_layers, bidirectional, peephole=peephole, return_sequences=return_sequences,
                   dtype=F64, seed=4)
    # Random biases and peepholes, so that no term of the gradient hides behind a zero.
    lstm.set_params({k: rng.uniform(-0.5, 0.5, v.shape) for k, v in lstm.params().items()
                     if k.startswith(("bias", "peephole"))})
    T, B = 5, 3
    x = rng.standard_normal((T, B, 3))
    lengths = np.array([5, 2, 0]) if use_lengths else None
    out = _layer_check(lstm, x, rng, lengths=lengths, name="LSTM")
    assert out.shape == ((T, B, lstm.output_size) if return_sequences else (B, lstm.output_size))
    if use_lengths and return_sequences:
        assert np.all(out[2:, 1] == 0) and np.all(out[:, 2] == 0)


def test_lstm_dropout_between_layers_grad(rng):
    lstm = nn.LSTM(3, 4, 2, True, dropout=0.4, return_sequences=True, dtype=F64, seed=5)
    x = rng.standard_normal((4, 2, 3))
    a = lstm.forward(x, training=False)
    b = lstm.forward(x, training=True)
    assert not np.allclose(a, b)
    _layer_check(lstm, x, rng, lengths=np.array([4, 3]), training=True, reseed=11, name="LSTM dropout")


def test_lstm_reverse_direction_matches_reversed_input(rng):
    """The reverse direction equals a forward LSTM over each sequence reversed within its length."""
    bi = nn.LSTM(3, 4, bidirectional=True, return_sequences=True, dtype=F64, seed=6)
    fw = nn.LSTM(3, 4, return_sequences=True, dtype=F64, seed=7)
    fw.set_params({k: bi.params()[k + "_reverse"] for k in fw.params()})
    x = rng.standard_normal((6, 2, 3))
    lengths = np.array([6, 4])
    y = bi.forward(x, lengths=lengths)
    for b, n in enumerate(lengths):
        yr = fw.forward(x[:n, b : b + 1][::-1].copy())
        np.testing.assert_allclose(y[:n, b, 4:], yr[::-1, 0], rtol=1e-12, atol=1e-12)


def test_lstm_init():
    lstm = nn.LSTM(5, 8, seed=0)
    p = lstm.params()
    H = 8
    np.testing.assert_array_equal(p["bias_l0"][H : 2 * H], 1.0)
    assert np.all(p["bias_l0"][:H] == 0) and np.all(p["bias_l0"][2 * H :] == 0)
    w = p["w_hh_l0"].astype(F64)  # (4H, H) with orthonormal columns
    np.testing.assert_allclose(w.T @ w, np.eye(H), atol=1e-5)
    assert np.abs(p["w_ih_l0"]).max() <= np.sqrt(6 / (5 + 4 * H))
    assert p["w_ih_l0"].dtype == np.float32


def test_attention_pool_grad(rng):
    att = nn.AttentionPool(5, 3, dtype=F64, seed=8)
    att.set_params({"b": rng.standard_normal(3)})
    h = rng.standard_normal((6, 3, 5))
    out = _layer_check(att, h, rng, lengths=np.array([6, 1, 3]), name="AttentionPool")
    assert out.shape == (3, 5)
    assert np.all(att.alpha[3:, 2] == 0) and np.allclose(att.alpha.sum(axis=0), 1)


def _text_model(dtype=F64, bidirectional=True, peephole=False, seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential([
        nn.Embedding(12, 4, dtype=dtype, seed=rng),
        nn.LSTM(4, 5, bidirectional=bidirectional, peephole=peephole, return_sequences=True, dtype=dtype, seed=rng),
        nn.AttentionPool(10 if bidirectional else 5, 4, dtype=dtype, seed=rng),
        nn.Dense(10 if bidirectional else 5, 3, activation="softmax", dtype=dtype, seed=rng),
    ])


def _model_check(model, x, y, lengths, rng, name):
    def loss_of(model, x, y, lengths):
        out = model.forward(x, lengths=lengths, logits=model._fused())
        return model.loss(out, y)[0]

    check_model_grad(model, x, y, lengths, loss_of, rng=rng, name=name)


@pytest.mark.parametrize("bidirectional,peephole", [(True, False), (False, True)])
def test_text_model_grad(rng, bidirectional, peephole):
    model = _text_model(bidirectional=bidirectional, peephole=peephole).compile("adam", "sparse_categorical_crossentropy")
    x = rng.integers(1, 12, size=(4, 6))
    lengths = np.array([6, 3, 1, 5])
    x[np.arange(6)[None, :] >= lengths[:, None]] = 0
    _model_check(model, x, rng.integers(0, 3, size=4), lengths, rng, "text model")


def test_regression_model_grad(rng):
    """An LSTM on float features (batch-major input), final state -> Dense(1), MSE."""
    model = nn.Sequential([nn.LSTM(2, 6, num_layers=2, dtype=F64, seed=1), nn.Dense(6, 1, dtype=F64, seed=2)])
    model.compile(nn.SGD(0.1), "mse")
    x = rng.standard_normal((3, 7, 2))
    _model_check(model, x, rng.standard_normal((3, 1)), np.array([7, 4, 6]), rng, "regression model")


def test_binary_crossentropy_grad(rng):
    model = nn.Sequential([nn.Embedding(9, 3, dtype=F64, seed=1), nn.MeanPool(dtype=F64),
                           nn.Dense(3, 1, activation="sigmoid", dtype=F64, seed=2)])
    model.compile("adam", "binary_crossentropy")
    x = rng.integers(1, 9, size=(5, 4))
    _model_check(model, x, rng.integers(0, 2, size=(5, 1)), None, rng, "binary model")


def test_losses_match_definitions(rng):
    z = rng.standard_normal((4, 3))
    y = np.array([0, 2, 1, 2])
    loss, g = nn.SoftmaxCrossEntropy()(z.copy(), y)
    p = np.exp(z) / np.exp(z).sum(1, keepdims=True)
    assert np.isclose(loss, -np.mean(np.log(p[np.arange(4), y])))
    loss2, g2 = nn.SoftmaxCrossEntropy()(z.copy(), np.eye(3)[y])
    assert np.isclose(loss, loss2) and np.allclose(g, g2)
    big = np.array([[1000.0, -1000.0]])
    loss, _ = nn.SoftmaxCrossEntropy()(big, np.array([1]))
    assert np.isclose(loss, 2000.0)
    loss, _ = nn.BinaryCrossEntropy()(np.array([[800.0]]), np.array([[0]]))
    assert np.isclose(loss, 800.0)


def _toy_task(rng, n=256):
    x = rng.integers(2, 12, size=(n, 8))
    y = (x[:, 0] > 6).astype(np.int64) + (x[:, 1] > 6)
    return x, y


def test_training_reduces_loss(rng):
    x, y = _toy_task(rng)
    model = _text_model(dtype=np.float32, bidirectional=False).compile(nn.Adam(0.02), "sparse_categorical_crossentropy")
    before = model.evaluate(x, y)["loss"]
    hist = model.fit(x, y, epochs=4, batch_size=32, verbose=0, seed=0)
    after = model.evaluate(x, y)["loss"]
    assert after < 0.7 * before, (before, after, hist["loss"])


@pytest.mark.parametrize("opt", [nn.SGD(0.5, momentum=0.9, nesterov=True, clipnorm=1.0, weight_decay=1e-4),
                                 nn.Adam(0.05, weight_decay=1e-3)])
def test_optimizers_minimize_quadratic(opt):
    target = np.array([[1.0, -2.0], [0.5, 3.0]])
    params = {"w": np.zeros((2, 2)), "b": np.zeros(2)}
    for _ in range(300):
        grads = {"w": 2 * (params["w"] - target), "b": 2 * (params["b"] - 1)}
        opt.step(params, grads)
    np.testing.assert_allclose(params["w"], target, atol=0.05)
    np.testing.assert_allclose(params["b"], 1.0, atol=0.05)


def test_adam_matches_formula_and_clipping():
    p = {"w": np.array([[1.0, 2.0]])}
    g = {"w": np.array([[30.0, 40.0]])}  # norm 50
    opt = nn.Adam(0.1, clipnorm=5.0)
    norm = opt.step(p, g)
    assert norm == pytest.approx(50.0)
    # After clipping to norm 5 the first Adam step moves every entry by lr (m/sqrt(v) = sign).
    np.testing.assert_allclose(p["w"], [[0.9, 1.9]], rtol=1e-6)
    sgd = nn.SGD(0.1, clipnorm=5.0)
    q = {"w": np.array([[1.0, 2.0]])}
    sgd.step(q, g)
    np.testing.assert_allclose(q["w"], [[1.0 - 0.1 * 3.0, 2.0 - 0.1 * 4.0]])


def test_optimizer_moving_average():
    opt = nn.SGD(0.1, ema=0.5)
    p = {"w": np.array([[4.0]])}
    seen = []
    for _ in range(3):
        opt.step(p, {"w": np.array([[10.0]])})
        seen.append(p["w"][0, 0])
    # e starts at the first updated value, then e = 0.5 e + 0.5 p.
    expected = 0.5 * (0.5 * seen[0] + 0.5 * seen[1]) + 0.5 * seen[2]
    assert opt.ema_params["w"][0, 0] == pytest.approx(expected)


def test_fit_with_moving_average_keeps_averaged_weights(rng):
    x, y = _toy_task(rng, 96)
    model = _text_model(dtype=np.float32, bidirectional=False).compile(nn.Adam(0.01, ema=0.9),
                                                                        "sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=2, batch_size=32, validation_data=(x, y), verbose=0)
    for k, v in model.params().items():
        np.testing.assert_array_equal(v, model.optimizer.ema_params[k])
    assert model.evaluate(x, y)["loss"] == pytest.approx(hist["val_loss"][-1])


def test_fit_with_validation_and_early_stopping(rng, capsys):
    x, y = _toy_task(rng, 128)
    model = _text_model(dtype=np.float32, bidirectional=False).compile(nn.Adam(1e-6), "sparse_categorical_crossentropy")
    hist = model.fit(x, y, epochs=10, batch_size=64, validation_data=(x[:32], y[:32]), verbose=1,
                     early_stopping=nn.EarlyStopping("val_loss", patience=1, min_delta=1.0))
    assert len(hist["loss"]) == 2, "min_delta=1 can never be met: stop after patience=1 epoch"
    assert set(hist) >= {"loss", "accuracy", "val_loss", "val_accuracy", "best_epoch"}
    assert "epoch 1/10" in capsys.readouterr().err


def test_ragged_padded_and_lengths_inputs_agree(rng):
    model = _text_model(dtype=F64).compile("adam", "sparse_categorical_crossentropy")
    seqs = [list(rng.integers(1, 12, size=n)) for n in (5, 1, 7, 3)]
    ids, lengths = pad_sequences(seqs)
    a = model.predict(seqs)
    b = model.predict(ids)
    c = model.predict(np.pad(ids, ((0, 0), (0, 4))), lengths=lengths)
    np.testing.assert_allclose(a, b, rtol=1e-12)
    np.testing.assert_allclose(a, c, rtol=1e-12)
    # Each row alone (no padding at all) gives the same probabilities: padding does not leak in.
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(model.predict(np.array([s]))[0], a[i], rtol=1e-12)


def test_save_load_round_trip(tmp_path, rng):
    model = _text_model(dtype=np.float32, peephole=True).compile("adam", "sparse_categorical_crossentropy")
    x, y = _toy_task(rng, 64)
    model.fit(x, y, epochs=1, batch_size=32, verbose=0)
    model.extra = {"classes": ["a", "b", "c"]}
    path = tmp_path / "m.npz"
    model.save(path)
    loaded = nn.load_model(path)
    for k, v in model.params().items():
        assert loaded.params()[k].dtype == v.dtype
        np.testing.assert_array_equal(loaded.params()[k], v)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))
    assert loaded.extra == {"classes": ["a", "b", "c"]}
    assert loaded.evaluate(x, y) == model.evaluate(x, y)


def test_torch_weight_import(rng):
    torch = pytest.importorskip("torch")
    V, E, H, C = 20, 6, 5, 3
    torch.manual_seed(0)
    emb = torch.nn.Embedding(V, E, padding_idx=0)
    lstm = torch.nn.LSTM(E, H, num_layers=2, bidirectional=True)
    lin = torch.nn.Linear(2 * H, C)
    lengths = np.array([7, 3, 5, 1])
    ids = rng.integers(1, V, size=(4, 7))
    ids[np.arange(7)[None, :] >= lengths[:, None]] = 0

    def torch_forward(dtype):
        m = [emb.to(dtype), lstm.to(dtype), lin.to(dtype)]
        with torch.no_grad():
            x = m[0](torch.from_numpy(ids.T.copy()))
            packed = torch.nn.utils.rnn.pack_padded_sequence(x, torch.from_numpy(lengths), enforce_sorted=False)
            _, (h_n, _) = m[1](packed)
            h = torch.cat([h_n[-2], h_n[-1]], dim=1)  # last layer: forward, reverse
            return m[2](h).numpy()

    ref32, ref64 = torch_forward(torch.float32), torch_forward(torch.float64)
    emb.float(), lstm.float(), lin.float()
    ours = nn.Sequential([nn.Embedding(V, E), nn.LSTM(E, H, num_layers=2, bidirectional=True), nn.Dense(2 * H, C)])
    ours.layers[0].load_torch(emb.state_dict())
    ours.layers[1].load_torch({k: v.numpy() for k, v in lstm.state_dict().items()})
    ours.layers[2].load_torch(lin.state_dict())
    out = ours.forward(ids, lengths=lengths)
    assert out.dtype == np.float32
    assert_close(out, ref64, ref32, name="torch import")


def test_demo_on_tsv_files(tmp_path, capsys):
    from seqkern import demo

    rows = [("good fun movie", "pos"), ("bad boring film", "neg"), ("great fun", "pos"), ("awful bad", "neg")] * 6
    train, test = tmp_path / "train.tsv", tmp_path / "test.tsv"
    train.write_text("text\tlabel\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows))
    test.write_text("sentence    label\n" + "".join(f"{t}\t{lab}\n" for t, lab in rows[:4]))
    out = tmp_path / "m.npz"
    threads = seqkern.get_num_threads()
    rc = demo.main(["--train", str(train), "--test", str(test), "--epochs", "2", "--embed", "8", "--hidden", "8",
                    "--quiet", "--save", str(out)])
    assert rc == 0
    assert seqkern.get_num_threads() == threads, "the demo restores the caller's thread count"
    text = capsys.readouterr().out
    assert "24 training and 4 test lines" in text and "test accuracy:" in text
    loaded = nn.load_model(out)
    assert loaded.extra["classes"] == ["neg", "pos"]


def test_demo_rejects_unknown_test_label(tmp_path, capsys):
    from seqkern import demo

    train, test = tmp_path / "a.tsv", tmp_path / "b.tsv"
    train.write_text("a b\t0\nc d\t1\n")
    test.write_text("a b\t2\n")
    assert demo.main(["--train", str(train), "--test", str(test), "--quiet"]) == 2
    assert "unknown label '2'" in capsys.readouterr().err


def test_synthetic_task_needs_word_order():
    from collections import Counter

    from seqkern import demo

    texts, labels = demo.synthetic_task(50, seed=0)
    owner = {w: t for t, ws in demo.TOPICS.items() for w in ws}
    for text, label in zip(texts, labels):
        words = text.split()
        counts = Counter(owner[w] for w in words if w in owner)
        assert counts == Counter({t: 2 for t in demo.TOPICS}), "every topic appears exactly twice"
        first = next(i for i, w in enumerate(words) if w in owner)
        assert first < 3 and owner[words[first]] == label
    assert demo.synthetic_task(5, seed=0) == demo.synthetic_task(5, seed=0)


@pytest.mark.skipif(not (SST2 / "sentence_train.tsv").exists(), reason="SST-2 data folder absent")
def test_sst2_smoke():
    from seqkern.text import Vocab, read_tsv, tokenize

    texts, labels = read_tsv(str(SST2 / "sentence_train.tsv"))
    test_texts, test_labels = read_tsv(str(SST2 / "sentence_test.tsv"))
    assert len(texts) == 6920 and len(test_texts) == 1821
    assert set(labels) == {"0", "1"} and set(test_labels) == {"0", "1"}
    toks = [tokenize(t) for t in texts[:256]]
    vocab = Vocab.build(toks)
    model = nn.Sequential([nn.Embedding(len(vocab), 16), nn.LSTM(16, 16, bidirectional=True, return_sequences=True),
                           nn.AttentionPool(32, 16), nn.Dense(32, 2, activation="softmax")])
    model.compile(nn.Adam(0.01), "sparse_categorical_crossentropy")
    x = [vocab.encode(t) for t in toks]
    y = np.array([int(v) for v in labels[:256]])
    hist = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    assert np.all(np.isfinite(hist["loss"]))


def _example(name):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "examples" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"example_{name}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_adding_problem_data():
    mod = _example("adding_problem")
    x, y = mod.adding_batch(np.random.default_rng(0), 64, 10)
    assert x.shape == (64, 10, 2) and y.shape == (64, 1)
    marks = x[:, :, 1]
    assert np.all(marks.sum(axis=1) == 2)
    assert np.all(marks[:, :5].sum(axis=1) == 1), "one marker in each half"
    np.testing.assert_allclose(y[:, 0], (x[:, :, 0] * marks).sum(axis=1), rtol=1e-6)


def test_training_speed_entry():
    from seqkern.nn import speed

    rows = speed.train_speed(batch=4, steps=2, repeats=1, vocab=50, embed=8, hidden=8, attn=8)
    assert rows[0]["impl"] == "seqkern.nn" and rows[0]["seqkern_speedup"] == 1.0
    assert all(r["tokens_per_s"] > 0 for r in rows)
    try:
        import torch  # noqa: F401

        assert {r["impl"] for r in rows} == {"seqkern.nn", "torch", "torch (no packing)"}
    except ImportError:
        assert len(rows) == 1


def test_predict_from_threads_matches_one_thread(rng):
    """One model, eight threads predicting (and evaluating) their own inputs at once: every
    thread gets exactly what it gets alone. The layers used to keep per-call lengths and caches
    on themselves, which mixed one thread's batch shapes into another's call."""
    import sys
    import threading

    model = _text_model(dtype=np.float32).compile("adam", "sparse_categorical_crossentropy")
    inputs = [[list(rng.integers(1, 12, size=n)) for n in rng.integers(1, 30, size=40)] for _ in range(8)]
    labels = [rng.integers(0, 3, size=40) for _ in range(8)]
    alone = [(model.predict(x, batch_size=7), model.evaluate(x, y, batch_size=7)) for x, y in zip(inputs, labels)]
    got = [[] for _ in inputs]
    errors = []
    start = threading.Barrier(len(inputs))

    def run(i):
        try:
            start.wait()
            for _ in range(5):
                got[i].append((model.predict(inputs[i], batch_size=7), model.evaluate(inputs[i], labels[i], batch_size=7)))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        threads = [threading.Thread(target=run, args=(i,)) for i in range(len(inputs))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
    finally:
        sys.setswitchinterval(old)
    assert not errors, errors[0]
    for i, runs in enumerate(got):
        assert len(runs) == 5
        for probs, metrics in runs:
            np.testing.assert_array_equal(probs, alone[i][0], err_msg=f"thread {i}")
            assert metrics == alone[i][1], f"thread {i}"
