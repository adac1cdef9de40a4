"""Scoring Dask collections with a :class:`seqkern.nn.Predictor`.

    import dask.bag as db, dask.dataframe as dd
    from seqkern.nn import Predictor
    from seqkern.dask import predict_bag, predict_dataframe

    pred = Predictor.load("sst2.npz")
    scores = predict_bag(db.read_text("corpus-*.txt").map(str.rstrip), pred)   # (label, proba) per text
    table = predict_dataframe(dd.read_csv("reviews-*.csv"), pred, text_column="review")

The predictor enters the task graph once (as one ``dask.delayed`` key, or a future the caller
got from ``client.scatter(pred, broadcast=True)``), not once per partition: a worker receives
it once, rebuilds the model on its first partition and scores the rest with it. Each partition
is scored in batches grouped by length, in input order. Results do not depend on how many
workers run them: a partition's rows are computed the same way wherever it lands.

Needs ``dask`` (``dask[dataframe]`` for :func:`predict_dataframe`): ``pip install 'seqkern[dask]'``.
"""

from __future__ import annotations

import secrets

import numpy as np

try:
    import dask
    from dask.delayed import Delayed
except ImportError as e:  # pragma: no cover - exercised only without dask
    raise ImportError("seqkern.dask needs dask: pip install 'seqkern[dask]' "
                      "(or pip install 'dask[dataframe]' distributed)") from e

from .nn.predict import Predictor

__all__ = ["predict_bag", "predict_dataframe", "shipped"]


def shipped(predictor):
    """``predictor`` as one graph key: a Delayed or a distributed Future is returned as it is,
    a :class:`Predictor` is wrapped in ``dask.delayed`` (one key, so one copy per worker)."""
    if isinstance(predictor, Delayed) or type(predictor).__name__ == "Future":
        return predictor
    if not isinstance(predictor, Predictor):
        raise TypeError(f"predictor must be a seqkern.nn.Predictor (or a Delayed/Future of one), "
                        f"got {type(predictor).__name__}")
    return dask.delayed(predictor, name=f"seqkern-predictor-{secrets.token_hex(8)}", traverse=False)


def _score_texts(texts, predictor, batch_size):
    texts = list(texts)
    labels, proba = predictor.predict_texts([str(t) for t in texts], batch_size=batch_size)
    return [(lab, row) for lab, row in zip(labels, proba)]


def predict_bag(bag, predictor, batch_size: int | None = None):
    """A bag of ``(label, proba)`` (proba: the (C,) probabilities) for a bag of texts, element
    for element."""
    import dask.bag as db

    if not isinstance(bag, db.Bag):
        raise TypeError(f"predict_bag: bag must be a dask.bag.Bag of str, got {type(bag).__name__}")
    return bag.map_partitions(_score_texts, shipped(predictor), batch_size)


def _score_frame(frame, predictor, text_column, batch_size, columns, dtype):
    import pandas as pd

    if text_column not in frame.columns:
        raise KeyError(f"predict_dataframe: text_column {text_column!r} is not a column (columns: {list(frame.columns)})")
    if len(frame) == 0:
        proba = np.empty((0, len(columns)), dtype=dtype)
        labels = []
    else:
        labels, proba = predictor.predict_texts([str(t) for t in frame[text_column]], batch_size=batch_size)
    out = pd.DataFrame({"label": pd.Series(labels, index=frame.index, dtype=object)})
    for j, name in enumerate(columns):
        out[name] = proba[:, j].astype(dtype, copy=False)
    return out


def predict_dataframe(df, predictor, text_column: str = "text", batch_size: int | None = None):
    """A Dask DataFrame with the index of ``df`` and the columns ``label`` and ``p_<label>`` (one
    per class), scoring the texts in ``df[text_column]``."""
    import dask.dataframe as dd
    import pandas as pd

    if not isinstance(df, dd.DataFrame):
        raise TypeError(f"predict_dataframe: df must be a dask.dataframe.DataFrame, got {type(df).__name__}")
    if text_column not in df.columns:
        raise KeyError(f"predict_dataframe: text_column {text_column!r} is not a column of df "
                       f"(columns: {list(df.columns)})")
    if isinstance(predictor, Predictor):
        columns, dtype = predictor.columns(), predictor.model.dtype
    else:
        raise TypeError("predict_dataframe: predictor must be a seqkern.nn.Predictor (it names the output columns)")
    meta = pd.DataFrame({"label": pd.Series([], dtype=object),
                         **{name: pd.Series([], dtype=dtype) for name in columns}})
    return df.map_partitions(_score_frame, shipped(predictor), text_column, batch_size, columns, dtype, meta=meta)
