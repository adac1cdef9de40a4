"""``Predictor``: a text classifier (model, vocabulary, label names) that scores raw strings.

    pred = Predictor.load("sst2.npz")           # saved with model.extra = {"vocab": ..., "classes": ...}
    labels, proba = pred.predict_texts(["a charming journey", "bleak and desperate"])
    for label, p in pred.stream(open("corpus.txt"), batch_size=256):
        ...

Texts are split with :func:`seqkern.text.tokenize` and encoded with the model's vocabulary
(unknown words map to ``<unk>``; a text with no token is scored as one ``<unk>``). Batches group
texts of similar length, so the kernels compute little padding; results always come back in
input order.

A predictor pickles as its layers' config, the raw parameter arrays, the vocabulary and the
label names: about the bytes of the weights, nothing else. The model is rebuilt from them on
the first prediction after unpickling (once per process, under a lock), so a Dask or Ray worker
that receives it pays the rebuild once and scores from then on. Prediction keeps no state on the
model, so threads may share one predictor.
"""

from __future__ import annotations

import itertools
import os
import threading
from typing import Iterable, Iterator, Sequence

import numpy as np

from ..text import Vocab, tokenize
from .layers import Dense, Embedding, layer_from_config
from .model import Sequential, _count

__all__ = ["Predictor"]


class Predictor:
    """Scores raw texts with a :class:`Sequential` text classifier.

    Parameters
    ----------
    model : Sequential
        A model whose first layer is an :class:`Embedding` (token ids in) and whose last layer
        is a :class:`Dense` with a softmax (C classes) or a single sigmoid unit (2 classes).
    vocab : Vocab
        The vocabulary the model was trained with.
    labels : sequence of str, optional
        The class names, in class-id order. When None the names are the class ids
        (``"0"``, ``"1"``, ...) and ``labels_known`` is False.
    lower : bool
        Lower-case texts before splitting them, as :func:`seqkern.text.tokenize` does by default.
    batch_size : int
        Rows per kernel call (the default of every method).
    """

    def __init__(self, model: Sequential, vocab: Vocab, labels: Sequence[str] | None = None, *,
                 lower: bool = True, batch_size: int = 256):
        if not isinstance(model, Sequential) or not model.layers:
            raise TypeError(f"Predictor: model must be a non-empty seqkern.nn.Sequential, got {type(model).__name__}")
        if not isinstance(model.layers[0], Embedding):
            raise ValueError(f"Predictor: model must start with an Embedding (token ids in), "
                             f"got {type(model.layers[0]).__name__}")
        last = model.layers[-1]
        if not isinstance(last, Dense) or last.activation not in ("softmax", "sigmoid"):
            raise ValueError("Predictor: model must end with a Dense layer with activation 'softmax' or 'sigmoid', "
                             f"got {type(last).__name__}{'' if not isinstance(last, Dense) else ' ' + repr(last.activation)}")
        if last.activation == "sigmoid" and last.units != 1:
            raise ValueError(f"Predictor: a sigmoid output must have 1 unit (2 classes), got {last.units}")
        if not isinstance(vocab, Vocab):
            raise TypeError(f"Predictor: vocab must be a seqkern.text.Vocab, got {type(vocab).__name__}")
        if len(vocab) > model.layers[0].num_embeddings:
            raise ValueError(f"Predictor: vocab has {len(vocab)} tokens but the Embedding only "
                             f"{model.layers[0].num_embeddings} rows")
        self._sigmoid = last.activation == "sigmoid"
        n_classes = 2 if self._sigmoid else last.units
        self.labels_known = labels is not None
        labels = [str(i) for i in range(n_classes)] if labels is None else [str(lab) for lab in labels]
        if len(labels) != n_classes:
            raise ValueError(f"Predictor: labels must name the model's {n_classes} classes, got {len(labels)}: {labels}")
        self.labels = labels
        self.vocab, self.lower = vocab, bool(lower)
        self.batch_size = _count(batch_size, "Predictor", "batch_size")
        self._model, self._state, self._lock = model, None, threading.Lock()

    # -- construction and pickling --------------------------------------------------------------

    @classmethod
    def load(cls, path, *, batch_size: int = 256) -> "Predictor":
        """The predictor of a model file written by ``Sequential.save`` whose ``extra`` holds the
        vocabulary (``"vocab"``: ``Vocab.to_json()``) and, optionally, the label names
        (``"classes"``, as ``examples/sst2.py`` and ``python -m seqkern demo --save`` write them).
        Without label names the class ids are used and ``labels_known`` is False."""
        path = os.fspath(path)
        if not os.path.exists(path) and not os.path.exists(path + ".npz"):
            raise FileNotFoundError(f"Predictor.load: model file {path!r} does not exist")
        model = Sequential.load(path)
        extra = model.extra if isinstance(model.extra, dict) else {}
        if not isinstance(extra.get("vocab"), str):
            raise ValueError(f"Predictor.load: {path} has no vocabulary: save the model with "
                             "model.extra = {'vocab': vocab.to_json(), 'classes': [...]}")
        try:
            vocab = Vocab.from_json(extra["vocab"])
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(f"Predictor.load: {path}: model.extra['vocab'] is not a Vocab.to_json() string: {e}") from None
        labels = extra.get("classes", extra.get("labels"))
        return cls(model, vocab, labels, batch_size=batch_size)

    def __getstate__(self):
        model = self._model
        if model is None:
            return self._state
        return {"config": [layer.get_config() for layer in model.layers],
                "params": [dict(layer.params()) for layer in model.layers],
                "vocab": self.vocab.itos[2:], "pad": self.vocab.pad, "unk": self.vocab.unk,
                "labels": self.labels, "labels_known": self.labels_known, "lower": self.lower,
                "batch_size": self.batch_size, "sigmoid": self._sigmoid}

    def __setstate__(self, state):
        self._state, self._model, self._lock = state, None, threading.Lock()
        self.vocab = Vocab(state["vocab"], pad=state["pad"], unk=state["unk"])
        self.labels, self.labels_known = list(state["labels"]), state["labels_known"]
        self.lower, self.batch_size, self._sigmoid = state["lower"], state["batch_size"], state["sigmoid"]

    @property
    def model(self) -> Sequential:
        """The model, rebuilt from the pickled weights on first use after unpickling."""
        if self._model is None:
            with self._lock:
                if self._model is None:
                    layers = []
                    for cfg, params in zip(self._state["config"], self._state["params"]):
                        layer = layer_from_config(cfg)
                        layer.set_params(params)
                        layers.append(layer)
                    self._model = Sequential(layers)
                    self._state = None
        return self._model

    # -- prediction -----------------------------------------------------------------------------

    def encode(self, texts: Iterable[str]) -> list[np.ndarray]:
        """Token ids of every text (int64 arrays; an empty text becomes one ``<unk>``)."""
        stoi, unk = self.vocab.stoi, self.vocab.unk_id
        out = []
        for i, t in enumerate(texts):
            if not isinstance(t, str):
                raise TypeError(f"Predictor: texts[{i}] must be a str, got {type(t).__name__}")
            ids = [stoi.get(w, unk) for w in tokenize(t, self.lower)]
            out.append(np.array(ids or [unk], dtype=np.int64))
        return out

    def _proba_ids(self, ids: list[np.ndarray], batch_size: int) -> np.ndarray:
        n_classes = len(self.labels)
        if not ids:
            return np.empty((0, n_classes), dtype=self.model.dtype)
        out = self.model.predict(ids, batch_size=batch_size)
        if self._sigmoid:
            p = out.reshape(-1)
            out = np.stack([1 - p, p], axis=1)
        return out

    def predict_proba(self, texts: Iterable[str], batch_size: int | None = None) -> np.ndarray:
        """Class probabilities (N, C) of every text, in input order."""
        batch_size = self.batch_size if batch_size is None else _count(batch_size, "predict_proba", "batch_size")
        if isinstance(texts, str):
            raise TypeError("predict_proba: texts must be a sequence of str, got one str")
        return self._proba_ids(self.encode(texts), batch_size)

    def predict_texts(self, texts: Iterable[str], batch_size: int | None = None) -> tuple[list[str], np.ndarray]:
        """``(labels, proba)``: the most probable label name of every text and the (N, C)
        probabilities, in input order."""
        if isinstance(texts, str):
            raise TypeError("predict_texts: texts must be a sequence of str, got one str")
        proba = self.predict_proba(texts, batch_size)
        names = self.labels
        return [names[k] for k in proba.argmax(axis=1)], proba

    def stream(self, texts: Iterable[str], batch_size: int | None = None, window: int = 32) -> Iterator[tuple[str, np.ndarray]]:
        """Score an iterable of texts of any length lazily: yields ``(label, proba)`` per text, in
        input order. At most ``window`` batches of texts are held at a time; inside a window the
        texts are grouped by length."""
        batch_size = self.batch_size if batch_size is None else _count(batch_size, "stream", "batch_size")
        window = _count(window, "stream", "window")
        if isinstance(texts, str):
            raise TypeError("stream: texts must be an iterable of str, got one str")
        it = iter(texts)
        names = self.labels
        while True:
            chunk = list(itertools.islice(it, batch_size * window))
            if not chunk:
                return
            proba = self._proba_ids(self.encode(chunk), batch_size)
            for row in proba:
                yield names[int(row.argmax())], row

    def columns(self) -> list[str]:
        """The names of the probability columns: ``p_<label>`` per class."""
        return [f"p_{lab}" for lab in self.labels]

    def score_batch(self, batch, text_column: str = "text"):
        """Score one batch of a table: a pandas DataFrame, or a dict of column arrays (Ray Data's
        ``batch_format="numpy"``), with the texts in ``text_column``. Returns the same kind of
        batch with the columns ``label`` and ``p_<label>`` added (for ``Dataset.map_batches``)."""
        try:
            texts = batch[text_column]
        except (KeyError, IndexError):
            have = list(batch.keys()) if hasattr(batch, "keys") else type(batch).__name__
            raise KeyError(f"score_batch: text_column {text_column!r} is not a column of the batch (columns: {have})") from None
        labels, proba = self.predict_texts([str(t) for t in texts])
        out = batch.copy() if hasattr(batch, "copy") else dict(batch)
        out["label"] = np.asarray(labels, dtype=object)
        for j, name in enumerate(self.columns()):
            out[name] = proba[:, j]
        return out

    def __repr__(self) -> str:
        return (f"Predictor({len(self.vocab)} tokens, labels {self.labels}"
                f"{'' if self.labels_known else ' (class ids: the model file names no labels)'})")
