"""Sequence labelling: TimeDistributed(Dense) gradients against float64 finite differences, a
tagger's masked per-token loss and accuracy (padding never counts), training, saving, the CoNLL
reader and examples/tagger.py on small files written here."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
from checks import check_grad, check_model_grad

from seqkern import nn
from seqkern.text import pad_sequences, read_conll

F64 = np.float64
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "tagger.py"


@pytest.mark.parametrize("activation", [None, "tanh", "softmax"])
def test_time_distributed_dense_grad(rng, activation):
    layer = nn.TimeDistributed(nn.Dense(4, 3, activation=activation, dtype=F64, seed=1))
    layer.set_params({"bias": rng.standard_normal(3)})
    x = rng.standard_normal((5, 2, 4))
    out = layer.forward(x)
    assert out.shape == (5, 2, 3)
    np.testing.assert_allclose(out[3, 1], layer.layer.forward(x[3, 1][None], cache=False)[0], rtol=1e-14)
    g = rng.standard_normal(out.shape)
    layer.zero_grad()
    dx = layer.backward(g)
    inputs = {"x": x, **{k: v.copy() for k, v in layer.params().items()}}
    grads = {"__g__": (g,), "x": dx, **{k: v.copy() for k, v in layer.grads().items()}}

    def f(x, **p):
        saved = {k: v.copy() for k, v in layer.params().items()}
        layer.set_params(p)
        res = layer.forward(x, cache=False)
        layer.set_params(saved)
        return res

    check_grad(f, inputs, grads, rng=rng, name=f"TimeDistributed(Dense[{activation}])")


def _tagger(dtype=F64, V=12, C=4, seed=0):
    rng = np.random.default_rng(seed)
    return nn.Sequential([
        nn.Embedding(V, 5, dtype=dtype, seed=rng),
        nn.LSTM(5, 4, bidirectional=True, return_sequences=True, dtype=dtype, seed=rng),
        nn.TimeDistributed(nn.Dense(8, C, activation="softmax", dtype=dtype, seed=rng)),
    ]).compile("adam", "sparse_categorical_crossentropy")


def test_tagger_model_grad(rng):
    model = _tagger()
    assert model.per_token
    lengths = np.array([6, 2, 4])
    x = rng.integers(1, 12, size=(3, 6))
    x[np.arange(6)[None, :] >= lengths[:, None]] = 0
    y = rng.integers(0, 4, size=(3, 6))
    def loss_of(model, x, y, lengths):
        return model._loss(model.forward(x, lengths=lengths, logits=True, cache=False), y, lengths, None)[0]

    check_model_grad(model, x, y, lengths, loss_of, rng=rng, name="tagger")


def test_padding_never_counts(rng):
    model = _tagger()
    seqs = [list(rng.integers(1, 12, size=n)) for n in (5, 2, 3)]
    tags = [list(rng.integers(0, 4, size=len(s))) for s in seqs]
    ids, lengths = pad_sequences(seqs)
    y = pad_sequences(tags)[0]
    a = model.evaluate(seqs, tags)
    y_other = y.copy()
    y_other[np.arange(5)[None, :] >= lengths[:, None]] = 3  # other targets at the padding
    b = model.evaluate(ids, y_other, lengths=lengths)
    assert a == pytest.approx(b)
    # Accuracy by hand over the 10 real tokens.
    probs = model.predict(seqs)
    assert probs.shape == (3, 5, 4)
    assert np.all(probs[1, 2:] == 0), "predict gives zeros past a row's length"
    hits = sum(int(probs[i, t].argmax() == tags[i][t]) for i in range(3) for t in range(len(seqs[i])))
    assert a["accuracy"] == pytest.approx(hits / 10)
    # The loss by hand: the mean over the real tokens of -log p(tag).
    nll = [-np.log(probs[i, t, tags[i][t]]) for i in range(3) for t in range(len(seqs[i]))]
    assert a["loss"] == pytest.approx(np.mean(nll))
    # Each sentence alone gives the probabilities it gets in the batch.
    for i, s in enumerate(seqs):
        np.testing.assert_allclose(model.predict([s])[0], probs[i, : len(s)], rtol=1e-12)


def _tag_task(rng, n=120):
    """Tag = the word's class (ids 2-5 -> 0, 6-9 -> 1), except that a word after id 10 gets tag 2."""
    seqs, tags = [], []
    for _ in range(n):
        s = list(rng.integers(2, 11, size=int(rng.integers(3, 9))))
        t = [2 if i and s[i - 1] == 10 else (0 if w < 6 else 1) for i, w in enumerate(s)]
        seqs.append(s)
        tags.append(t)
    return seqs, tags


def test_tagger_learns_and_round_trips(tmp_path, rng):
    seqs, tags = _tag_task(rng)
    model = _tagger(dtype=np.float32, V=11, C=3)
    model.compile(nn.Adam(0.05), "sparse_categorical_crossentropy", metrics=("accuracy", "f1"))
    hist = model.fit(seqs, tags, epochs=15, batch_size=16, validation_split=0.2, verbose=0, seed=0)
    # Word classes alone give about 0.91; the rest needs the previous word.
    assert hist["val_accuracy"][-1] > 0.97, hist["val_accuracy"]
    assert 0 < hist["val_f1"][-1] <= 1
    loaded = nn.load_model(model.save(tmp_path / "tagger"))
    assert isinstance(loaded.layers[-1], nn.TimeDistributed)
    np.testing.assert_array_equal(loaded.predict(seqs[:5]), model.predict(seqs[:5]))


def test_token_targets_must_match_the_tokens(rng):
    model = _tagger()
    with pytest.raises(ValueError, match=r"fit: y\[1\] has 1 labels but x\[1\] has 2 tokens"):
        model.fit([[1, 2], [3, 4]], [[0, 1], [2]], verbose=0)
    with pytest.raises(ValueError, match=r"fit: y: class ids must be in \[0, 4\), got \[0, 7\]"):
        model.fit([[1, 2], [3, 4]], [[0, 1], [7, 0]], verbose=0)
    with pytest.raises(ValueError, match=r"evaluate: y must hold one label per token, \(N, T\) with T >= the longest row"):
        model.evaluate(np.array([[1, 2, 3]]), np.array([[0, 1]]))
    with pytest.raises(ValueError, match="class_weight weighs one label a row"):
        model.fit([[1, 2]], [[0, 1]], class_weight={0: 2.0}, verbose=0)


CONLL = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC

# a comment line
Peter\tNNP\tB-NP\tB-PER
Blackburn\tNNP\tI-NP\tI-PER
-DOCSTART- -X- -X- O
Brussels NNP B-NP B-LOC


"""


def test_read_conll(tmp_path):
    path = tmp_path / "a.conll"
    path.write_text(CONLL.replace("\n", "\r\n", 2))
    sents, tags = read_conll(str(path))
    assert sents == [["EU", "rejects", "German"], ["Peter", "Blackburn"], ["Brussels"]]
    assert tags == [["B-ORG", "O", "B-MISC"], ["B-PER", "I-PER"], ["B-LOC"]]
    _, pos = read_conll(str(path), column=1)
    assert pos == [["NNP", "VBZ", "JJ"], ["NNP", "NNP"], ["NNP"]]
    sents, _ = read_conll(str(path), comment=None)
    assert sents[1] == ["#", "Peter", "Blackburn"]


def test_read_conll_u(tmp_path):
    path = tmp_path / "b.conllu"
    rows = ["# sent_id = 1", "1-2\tdu\t_\t_", "1\tde\tde\tADP", "2\tle\tle\tDET", "3\tchat\tchat\tNOUN", ""]
    path.write_text("\n".join(rows) + "\n")
    sents, tags = read_conll(str(path), column=3, token_column=1)
    assert sents == [["de", "le", "chat"]] and tags == [["ADP", "DET", "NOUN"]]


def test_read_conll_errors(tmp_path):
    path = tmp_path / "bad.conll"
    path.write_text("EU B-ORG\nrejects\n")
    with pytest.raises(ValueError, match=r"read_conll: .*bad.conll line 2 has 1 field\(s\); .* needs 2: 'rejects'"):
        read_conll(str(path))
    path.write_bytes(b"EU B-ORG\n\xff O\n")
    with pytest.raises(ValueError, match="line 2 is not valid UTF-8"):
        read_conll(str(path))
    with pytest.raises(TypeError, match="read_conll: column must be an integer"):
        read_conll(str(path), column="3")


def _write_conll(path, seqs, tags, words):
    with open(path, "w") as fh:
        for s, t in zip(seqs, tags):
            fh.writelines(f"{words[w]} {'ABC'[g]}\n" for w, g in zip(s, t))
            fh.write("\n")


def test_tagger_example(tmp_path, rng, capsys):
    spec = importlib.util.spec_from_file_location("tagger_example", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    words = [f"w{i}" for i in range(11)]
    seqs, tags = _tag_task(rng, 160)
    _write_conll(tmp_path / "train.conll", seqs[:120], tags[:120], words)
    _write_conll(tmp_path / "test.conll", seqs[120:], tags[120:], words)
    code = example.main(["--train", str(tmp_path / "train.conll"), "--test", str(tmp_path / "test.conll"),
                         "--epochs", "15", "--hidden", "16", "--embed", "16", "--lr", "0.05", "--patience", "15", "--quiet",
                         "--save", str(tmp_path / "t.npz")])
    assert code == 0
    out = capsys.readouterr().out
    assert "3 tags" in out and "validation: token accuracy" in out
    acc = float(out.split("test: token accuracy ")[1].split(",")[0])
    assert acc > 0.97, out
    assert nn.load_model(tmp_path / "t.npz").extra["tags"] == ["A", "B", "C"]
