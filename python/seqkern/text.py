"""Text utilities for the models in ``seqkern.nn``: tokenizing, a vocabulary, labelled TSV files,
tagged CoNLL files, and padding/bucketing of variable-length batches.

Everything here is plain Python and NumPy. The batching functions return, for every batch, the
padded ids *and* the true lengths, so the LSTM and attention kernels skip the padding instead of
computing over it.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Iterable, Sequence

import numpy as np

__all__ = [
    "tokenize",
    "Vocab",
    "LabelEncoder",
    "read_tsv",
    "read_conll",
    "pad_sequences",
    "bucket_batches",
]


def _index(i, n: int, where: str) -> int:
    """``i`` as an index into a table of ``n`` entries: an integer (not a bool, not a float) in
    [0, n); a negative id is an error, never counted from the end."""
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, (int, np.integer)):
        raise TypeError(f"{where}: ids must be integers, got {i!r}")
    if not 0 <= i < n:
        raise ValueError(f"{where}: id {i} is out of range [0, {n})")
    return int(i)


def tokenize(text: str, lower: bool = True) -> list[str]:
    """Split ``text`` on whitespace (and lower-case it unless ``lower=False``)."""
    return (text.lower() if lower else text).split()


class Vocab:
    """Token <-> id map. Id 0 is the padding token, id 1 the unknown token.

    Build it with :meth:`Vocab.build` from tokenized texts; ``encode`` maps tokens to ids (unknown
    tokens to ``unk_id``), ``decode`` maps ids back.
    """

    pad_id = 0
    unk_id = 1

    def __init__(self, tokens: Sequence[str], pad: str = "<pad>", unk: str = "<unk>"):
        self.pad, self.unk = pad, unk
        self.itos = [pad, unk] + [t for t in tokens if t not in (pad, unk)]
        self.stoi = {t: i for i, t in enumerate(self.itos)}
        if len(self.stoi) != len(self.itos):
            raise ValueError("Vocab: tokens must be unique")

    @classmethod
    def build(
        cls,
        texts: Iterable[Sequence[str]],
        min_count: int = 1,
        max_size: int | None = None,
        pad: str = "<pad>",
        unk: str = "<unk>",
    ) -> "Vocab":
        """Vocabulary of the tokens seen at least ``min_count`` times in ``texts`` (lists of
        tokens), most frequent first (ties in order of first appearance), at most ``max_size``
        entries including the padding and unknown tokens."""
        counts: Counter = Counter()
        for toks in texts:
            counts.update(toks)
        # Counter.most_common keeps first-seen order among equal counts: deterministic.
        kept = [t for t, c in counts.most_common() if c >= min_count and t not in (pad, unk)]
        if max_size is not None:
            kept = kept[: max(0, int(max_size) - 2)]
        return cls(kept, pad=pad, unk=unk)

    def __len__(self) -> int:
        return len(self.itos)

    def __contains__(self, token: str) -> bool:
        return token in self.stoi

    def encode(self, tokens: Sequence[str]) -> list[int]:
        get, unk = self.stoi.get, self.unk_id
        return [get(t, unk) for t in tokens]

    def decode(self, ids: Iterable[int]) -> list[str]:
        """Tokens of ``ids``, padding dropped; an id outside [0, len) raises ValueError."""
        n = len(self.itos)
        return [self.itos[k] for k in (_index(i, n, "Vocab.decode") for i in ids) if k != self.pad_id]

    def to_json(self) -> str:
        return json.dumps({"pad": self.pad, "unk": self.unk, "tokens": self.itos[2:]})

    @classmethod
    def from_json(cls, s: str) -> "Vocab":
        d = json.loads(s)
        return cls(d["tokens"], pad=d["pad"], unk=d["unk"])


class LabelEncoder:
    """Maps labels (integers or strings) to class ids 0..C-1 and back.

    Integer-like labels keep their numeric order (``"0", "1"`` -> 0, 1); other labels are sorted
    as strings.
    """

    def __init__(self, classes: Sequence[str]):
        self.classes = [str(c) for c in classes]
        self.index = {c: i for i, c in enumerate(self.classes)}

    @classmethod
    def fit(cls, labels: Iterable) -> "LabelEncoder":
        uniq = sorted({str(lab).strip() for lab in labels})
        try:
            uniq.sort(key=lambda s: int(s))
        except ValueError:
            pass
        return cls(uniq)

    def transform(self, labels: Iterable) -> np.ndarray:
        out = []
        for lab in labels:
            key = str(lab).strip()
            if key not in self.index:
                raise ValueError(f"LabelEncoder: unknown label {key!r}; known: {self.classes}")
            out.append(self.index[key])
        return np.asarray(out, dtype=np.int64)

    def inverse(self, ids: Iterable[int]) -> list[str]:
        """Labels of class ``ids``; an id outside [0, number of classes) raises ValueError."""
        n = len(self.classes)
        return [self.classes[_index(i, n, "LabelEncoder.inverse")] for i in ids]


_HEADER_LABELS = {"label", "labels", "class", "classes", "target", "y", "sentiment", "category"}


def read_tsv(path: str) -> tuple[list[str], list[str]]:
    """Read ``text<TAB>label`` lines. Returns ``(texts, labels)`` with labels as strings.

    The label is the field after the last tab. The first line is taken as a header and skipped
    when it has no tab, or when its label field is a column name (``label``, ``class``, ...), or
    when every other label is an integer and the first one is not. Blank lines are ignored;
    any other line without a tab is an error naming the line.

    Lines end at "\n" or "\r\n" only: a lone carriage return is part of its line (``str.splitlines``
    and Python's text mode would split there). The file is UTF-8; an invalid byte raises
    ValueError naming the file, the line and the byte's column.
    """
    lines = _utf8_lines(path, "read_tsv")
    rows = []
    for i, ln in enumerate(lines):
        if not ln.strip():
            continue
        parts = ln.rsplit("\t", 1)
        rows.append((i, parts))
    if not rows:
        return [], []

    def is_int(s: str) -> bool:
        try:
            int(s.strip())
            return True
        except ValueError:
            return False

    first_line, first = rows[0]
    header = (
        len(first) < 2
        or first[1].strip().lower() in _HEADER_LABELS
        or (
            len(rows) > 1
            and not is_int(first[1])
            and all(len(p) == 2 and is_int(p[1]) for _, p in rows[1:])
        )
    )
    if header:
        rows = rows[1:]
    texts, labels = [], []
    for i, parts in rows:
        if len(parts) < 2:
            raise ValueError(f"read_tsv: {path} line {i + 1} has no tab: {lines[i][:60]!r}")
        texts.append(parts[0].strip())
        labels.append(parts[1].strip())
    return texts, labels


def _utf8_lines(path: str, fn: str) -> list[str]:
    """The lines of a UTF-8 file split at "\n" (a trailing "\r" dropped); an invalid byte raises
    ValueError naming the file, the line and the byte's column."""
    with open(path, "rb") as fh:
        raw = fh.read().split(b"\n")
    lines = []
    for i, b in enumerate(raw):
        try:
            lines.append(b.removesuffix(b"\r").decode("utf-8"))
        except UnicodeDecodeError as e:
            raise ValueError(f"{fn}: {path} line {i + 1} is not valid UTF-8 (byte {e.start + 1} of the line: "
                             f"{e.object[e.start:e.start + 1]!r}): {e.reason}") from None
    return lines


def read_conll(path: str, column: int = -1, *, token_column: int = 0,
               comment: str | None = "#") -> tuple[list[list[str]], list[list[str]]]:
    """Read a CoNLL-format file: one token a line with its fields, sentences separated by blank
    lines. Returns ``(sentences, tags)``: for every sentence its tokens (field ``token_column``)
    and its tags (field ``column``; -1, the default, is the last field: the named-entity tag of
    CoNLL-2003, ``3`` its UPOS in CoNLL-U).

    Fields are separated by tabs when the line has one, else by runs of spaces. ``-DOCSTART-``
    lines end a sentence and are skipped. A line that starts with ``comment`` before a
    sentence's first token is a comment (CoNLL-U's ``# sent_id = ...``); ``comment=None`` reads
    every line as a token. CoNLL-U's multiword-token lines (ids like ``3-4``) and empty nodes
    (``5.1``) are skipped. A line with too few fields raises ValueError naming the file and the
    line; the file is UTF-8 (an invalid byte is an error naming the line).
    """
    for name, value in (("column", column), ("token_column", token_column)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"read_conll: {name} must be an integer, got {value!r}")
    lines = _utf8_lines(path, "read_conll")
    need = max(token_column, column) + 1 if column >= 0 else max(token_column + 1, -column + 1)
    sentences, tags = [], []
    toks, tgs = [], []

    def close():
        if toks:
            sentences.append(list(toks))
            tags.append(list(tgs))
            toks.clear()
            tgs.clear()

    for i, line in enumerate(lines):
        if not line.strip():
            close()
            continue
        if comment is not None and not toks and line.startswith(comment):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if fields[0] == "-DOCSTART-":
            close()
            continue
        if "\t" in line and ("-" in fields[0][1:] or "." in fields[0]) and fields[0][:1].isdigit():
            continue  # CoNLL-U multiword token or empty node
        if len(fields) < need:
            raise ValueError(f"read_conll: {path} line {i + 1} has {len(fields)} field(s); reading the token from "
                             f"field {token_column} and the tag from field {column} needs {need}: {line[:60]!r}")
        toks.append(fields[token_column].strip())
        tgs.append(fields[column].strip())
    close()
    return sentences, tags


def pad_sequences(
    seqs: Sequence[Sequence[int]], maxlen: int | None = None, pad_value: int = 0, dtype=np.int64
) -> tuple[np.ndarray, np.ndarray]:
    """Pad (at the end) or truncate (keeping the start) integer sequences to one length.

    Returns ``(ids, lengths)``: ids (N, T) with T = ``maxlen`` or the longest sequence, and
    lengths (N,) int64, the number of real tokens per row (at most T).
    """
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    T = int(lengths.max(initial=0)) if maxlen is None else int(maxlen)
    lengths = np.minimum(lengths, T)
    ids = np.full((len(seqs), T), pad_value, dtype=dtype)
    for r, s in enumerate(seqs):
        n = lengths[r]
        if n:
            ids[r, :n] = np.asarray(s[:n], dtype=dtype)
    return ids, lengths


def bucket_batches(
    lengths: Sequence[int],
    batch_size: int,
    *,
    shuffle: bool = True,
    rng: np.random.Generator | None = None,
    pool: int = 50,
) -> list[np.ndarray]:
    """Split row indices into batches of rows with similar lengths.

    With ``shuffle``, rows are shuffled, cut into pools of ``pool`` batches, each pool is sorted
    by length and cut into batches, and the batch order is shuffled: batches differ from epoch to
    epoch but each holds rows of near-equal length, so little padding is computed. Without
    ``shuffle``, rows are sorted by length (stable) and cut in order.
    """
    lengths = np.asarray(lengths)
    n = len(lengths)
    if batch_size < 1:
        raise ValueError(f"bucket_batches: batch_size must be >= 1, got {batch_size}")
    if not shuffle:
        order = np.argsort(lengths, kind="stable")
        return [order[i : i + batch_size] for i in range(0, n, batch_size)]
    rng = np.random.default_rng() if rng is None else rng
    perm = rng.permutation(n)
    chunk = batch_size * max(1, int(pool))
    batches = []
    for s in range(0, n, chunk):
        part = perm[s : s + chunk]
        part = part[np.argsort(lengths[part], kind="stable")]
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    order = rng.permutation(len(batches))
    return [batches[i] for i in order]
