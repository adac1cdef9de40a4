"""nn.Predictor: raw texts in, label names and probabilities out, in input order; streaming;
pickling as raw weights."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from predict_support import LABELS, make_model, texts

from seqkern import nn
from seqkern.text import Vocab, tokenize


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model") / "m.npz")


@pytest.fixture(scope="module")
def predictor(model_file):
    return nn.Predictor.load(model_file)


def test_predict_texts_matches_the_model_on_encoded_ids(predictor, model_file):
    model = nn.load_model(model_file)
    vocab = Vocab.from_json(model.extra["vocab"])
    corpus = texts(300)
    labels, proba = predictor.predict_texts(corpus)
    ids = [vocab.encode(tokenize(t)) or [vocab.unk_id] for t in corpus]
    expected = model.predict(ids)
    np.testing.assert_array_equal(proba, expected)
    assert labels == [LABELS[k] for k in expected.argmax(axis=1)]
    np.testing.assert_allclose(proba.sum(axis=1), 1, rtol=1e-5)
    assert predictor.labels_known and predictor.labels == LABELS
    # Other batches: the same values up to the rounding of other GEMM block shapes.
    np.testing.assert_allclose(predictor.predict_proba(corpus, batch_size=7), proba, rtol=1e-5, atol=1e-7)


def test_empty_text_and_empty_input(predictor):
    labels, proba = predictor.predict_texts(["", "   ", "w1"])
    assert len(labels) == 3 and proba.shape == (3, 3)
    np.testing.assert_array_equal(proba[0], proba[1])  # no token: scored as one <unk>
    labels, proba = predictor.predict_texts([])
    assert labels == [] and proba.shape == (0, 3)


def test_stream_keeps_input_order_and_values(predictor):
    corpus = texts(1000, seed=5)
    _, proba = predictor.predict_texts(corpus)
    gen = (t for t in corpus)  # a one-pass iterator
    out = list(predictor.stream(gen, batch_size=16, window=4))
    got = np.stack([p for _, p in out])
    assert [lab for lab, _ in out] == [LABELS[k] for k in got.argmax(axis=1)]
    np.testing.assert_allclose(got, proba, rtol=1e-5, atol=1e-7)
    # With one window holding everything, the batches are those of predict_texts: equal values.
    whole = np.stack([p for _, p in predictor.stream(iter(corpus), batch_size=256, window=4)])
    np.testing.assert_array_equal(whole, proba)
    assert list(predictor.stream([])) == []


def test_stream_is_lazy(predictor):
    consumed = []

    def source():
        for i, t in enumerate(texts(10_000, seed=2)):
            consumed.append(i)
            yield t

    first = next(iter(predictor.stream(source(), batch_size=8, window=2)))
    assert first[0] in LABELS
    assert len(consumed) <= 16


def test_pickle_is_the_raw_weights_and_scores_identically(predictor):
    corpus = texts(200, seed=3)
    _, proba = predictor.predict_texts(corpus)
    blob = pickle.dumps(predictor, protocol=5)
    weights = sum(v.nbytes for v in predictor.model.params().values())
    vocab_bytes = sum(len(t) for t in predictor.vocab.itos)
    assert weights <= len(blob) <= 1.1 * (weights + vocab_bytes) + 4096
    clone = pickle.loads(blob)
    assert clone._model is None  # rebuilt on first use, not at unpickling
    labels2, proba2 = clone.predict_texts(corpus)
    np.testing.assert_array_equal(proba2, proba)
    assert clone.labels == predictor.labels
    # Pickling an unpickled predictor (before and after its first use) gives the same bytes' worth.
    again = pickle.loads(pickle.dumps(pickle.loads(blob)))
    np.testing.assert_array_equal(again.predict_proba(corpus), proba)


def test_missing_labels_fall_back_to_class_ids(tmp_path):
    pred = nn.Predictor.load(make_model(tmp_path / "nolabels.npz", labels=None))
    assert not pred.labels_known and pred.labels == ["0", "1", "2"]
    assert "class ids" in repr(pred)


def test_sigmoid_output_gives_two_columns(tmp_path):
    v = Vocab(["a", "b"])
    model = nn.Sequential([nn.Embedding(len(v), 4, seed=0), nn.LSTM(4, 4, seed=1),
                           nn.Dense(4, 1, activation="sigmoid", seed=2)])
    pred = nn.Predictor(model, v, ["no", "yes"])
    _, proba = pred.predict_texts(["a b", "b"])
    p = model.predict([[2, 3], [3]]).reshape(-1)
    np.testing.assert_allclose(proba, np.stack([1 - p, p], axis=1))


def test_errors(tmp_path, predictor):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        nn.Predictor.load(tmp_path / "absent.npz")
    with pytest.raises(ValueError, match="has no vocabulary"):
        nn.Predictor.load(make_model(tmp_path / "novocab.npz", vocab=False))
    with pytest.raises(TypeError, match="one str"):
        predictor.predict_texts("just one text")
    with pytest.raises(TypeError, match=r"texts\[1\] must be a str"):
        predictor.predict_texts(["ok", 3])
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        predictor.predict_proba(["a"], batch_size=0)
    v = Vocab(["a"])
    with pytest.raises(ValueError, match="must start with an Embedding"):
        nn.Predictor(nn.Sequential([nn.Dense(3, 2, activation="softmax")]), v)
    with pytest.raises(ValueError, match="must end with a Dense layer"):
        nn.Predictor(nn.Sequential([nn.Embedding(3, 2), nn.LSTM(2, 2)]), v)
    with pytest.raises(ValueError, match="labels must name the model's 2 classes"):
        nn.Predictor(nn.Sequential([nn.Embedding(3, 2), nn.LSTM(2, 2), nn.Dense(2, 2, activation="softmax")]),
                     v, ["x"])


def test_score_batch_for_tables(predictor):
    corpus = texts(20, seed=9)
    _, proba = predictor.predict_texts(corpus)
    out = predictor.score_batch({"text": np.array(corpus, dtype=object), "n": np.arange(20)})
    np.testing.assert_array_equal(out["n"], np.arange(20))
    np.testing.assert_array_equal(np.stack([out[c] for c in predictor.columns()], axis=1), proba)
    with pytest.raises(KeyError, match="'review' is not a column"):
        predictor.score_batch({"text": np.array(corpus)}, text_column="review")


def test_sst2_model_scores_sentences(tmp_path):
    from pathlib import Path

    data = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "sst2" / "dev.tsv"
    if not data.exists():
        pytest.skip(f"SST-2 not found at {data}")
    from seqkern.text import read_tsv

    sents, _ = read_tsv(str(data))
    v = Vocab.build([tokenize(t) for t in sents])
    model = nn.Sequential([nn.Embedding(len(v), 8, seed=0), nn.LSTM(8, 8, bidirectional=True, seed=1),
                           nn.Dense(16, 2, activation="softmax", seed=2)])
    model.extra = {"vocab": v.to_json(), "classes": ["0", "1"]}
    pred = nn.Predictor.load(model.save(tmp_path / "sst2"))
    labels, proba = pred.predict_texts(sents)
    assert len(labels) == len(sents) and set(labels) <= {"0", "1"}
