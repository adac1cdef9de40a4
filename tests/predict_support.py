"""Small text classifiers and generated corpora for the scoring tests (no data set needed)."""

from __future__ import annotations

import numpy as np

from seqkern import nn
from seqkern.text import Vocab

WORDS = [f"w{i}" for i in range(300)]
LABELS = ["neg", "neu", "pos"]


def make_model(path, *, labels=LABELS, vocab=True, hidden=16, seed=0) -> str:
    """A randomly initialized BiLSTM + attention classifier saved to ``path``; returns the name."""
    rng = np.random.default_rng(seed)
    v = Vocab(WORDS)
    model = nn.Sequential([
        nn.Embedding(len(v), 16, scale=0.5, seed=rng),
        nn.LSTM(16, hidden, bidirectional=True, return_sequences=True, seed=rng),
        nn.AttentionPool(2 * hidden, seed=rng),
        nn.Dense(2 * hidden, 3 if labels is None else len(labels), activation="softmax", seed=rng),
    ])
    model.extra = {}
    if vocab:
        model.extra["vocab"] = v.to_json()
    if labels is not None:
        model.extra["classes"] = list(labels)
    return model.save(str(path))


def texts(n: int, seed: int = 1, max_len: int = 30) -> list[str]:
    """``n`` sentences of 0..max_len words, some unknown to the vocabulary, some upper-case."""
    rng = np.random.default_rng(seed)
    pool = WORDS + ["unseen", "W7", "W12"]
    return [" ".join(rng.choice(pool, size=int(rng.integers(0, max_len + 1)))) for _ in range(n)]


def write_corpus(path, n: int, *, tsv: bool = False, seed: int = 1) -> list[str]:
    """Write ``n`` lines (text, or ``id<TAB>text<TAB>x`` for TSV); returns the texts."""
    rows = texts(n, seed)
    with open(path, "w", encoding="utf-8") as fh:
        for i, t in enumerate(rows):
            fh.write(f"r{i}\t{t}\tx\n" if tsv else t + "\n")
    return rows


def read_scores(path) -> tuple[list[str], list[int], list[str], np.ndarray]:
    """(header, ids, labels, probabilities) of a ``predict`` output file."""
    with open(path, encoding="utf-8") as fh:
        header = fh.readline().rstrip("\n").split("\t")
        rows = [ln.rstrip("\n").split("\t") for ln in fh]
    ids = [int(r[0]) for r in rows]
    labels = [r[1] for r in rows]
    proba = np.array([[float(x) for x in r[2:]] for r in rows]).reshape(len(rows), len(header) - 2)
    return header, ids, labels, proba
