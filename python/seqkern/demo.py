"""``python -m seqkern demo``: train an LSTM + attention text classifier on the seqkern kernels.

Without arguments it trains on a built-in synthetic task (generated with a fixed seed, no
download) that needs long-range memory: every sentence names a topic word within its first three
words, and later mentions every topic equally often, so only the *order* of the words tells the
topic. A bag-of-words model or attention without the LSTM (``--model bow`` / ``--model attn``)
cannot do better than chance (25%); the LSTM can.

With ``--train FILE --test FILE`` it trains on ``text<TAB>label`` files (a header line is
skipped; labels may be integers or strings) and prints the test accuracy.
"""

from __future__ import annotations

import argparse
import math
import sys
import time

import numpy as np

from . import nn
from ._runtime import get_num_threads, set_num_threads
from .nn._files import check_writable
from .text import LabelEncoder, Vocab, read_tsv, tokenize

TOPICS = {
    "sports": ("football", "tennis", "hockey"),
    "music": ("guitar", "piano", "violin"),
    "science": ("physics", "biology", "chemistry"),
    "food": ("pasta", "sushi", "curry"),
}
FILLER = (
    "the a an and but so then yesterday today my our their friend neighbour teacher said told me "
    "about that this was is very quite really rather long short new old good bad story news talk "
    "class trip weekend morning evening city town park house after before during while we they "
    "people always never often sometimes maybe think know saw heard liked loved hated enjoyed "
    "again too also just only still other many few some every"
).split()


def synthetic_task(n: int, seed: int, min_len: int = 30, max_len: int = 120):
    """``n`` sentences and their topic labels (strings). The topic word sits at position 0-2;
    after position 5 every topic, including the true one, gets more mentions so that each topic
    appears exactly twice: word counts carry no information, word order does."""
    rng = np.random.default_rng(seed)
    names = list(TOPICS)
    texts, labels = [], []
    for _ in range(n):
        topic = names[rng.integers(len(names))]
        length = int(rng.integers(min_len, max_len + 1))
        words = list(rng.choice(FILLER, size=length))
        start = int(rng.integers(0, 3))
        words[start] = rng.choice(TOPICS[topic])
        later = [topic] + [t for t in names if t != topic for _ in range(2)]
        slots = rng.choice(np.arange(6, length), size=len(later), replace=False)
        for t, pos in zip(later, slots):
            words[int(pos)] = rng.choice(TOPICS[t])
        texts.append(" ".join(words))
        labels.append(topic)
    return texts, labels


def build_model(kind: str, vocab_size: int, n_classes: int, embed: int, hidden: int, *,
                bidirectional: bool = False, dropout: float = 0.0, seed: int = 0) -> nn.Sequential:
    """``lstm-attn`` (default), ``lstm`` (final state, no attention), ``attn`` (attention over the
    embeddings: no recurrence) or ``bow`` (mean of the embeddings)."""
    rng = np.random.default_rng(seed)
    layers: list = [nn.Embedding(vocab_size, embed, padding_idx=0, seed=rng)]
    if dropout:
        layers.append(nn.Dropout(dropout, seed=rng))
    width = embed
    if kind in ("lstm-attn", "lstm"):
        lstm = nn.LSTM(embed, hidden, bidirectional=bidirectional, return_sequences=kind == "lstm-attn", seed=rng)
        layers.append(lstm)
        width = lstm.output_size
    if kind in ("lstm-attn", "attn"):
        layers.append(nn.AttentionPool(width, hidden, seed=rng))
    elif kind == "bow":
        layers.append(nn.MeanPool())
    elif kind != "lstm":
        raise ValueError(f"unknown model {kind!r}")
    if dropout:
        layers.append(nn.Dropout(dropout, seed=rng))
    layers.append(nn.Dense(width, n_classes, activation="softmax", seed=rng))
    return nn.Sequential(layers)


def _number(kind, low, high=math.inf, *, low_open=False, high_open=False):
    """An argparse type: ``kind`` (int or float) within [low, high] (an end is open when its
    flag says so). Anything else is a usage error (exit code 2) that shows the value."""
    what = "an integer" if kind is int else "a number"
    left, right = "(" if low_open else "[", ")" if high_open or high == math.inf else "]"
    span = f"{left}{low}, {'inf' if high == math.inf else high}{right}"

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {what} in {span}, got {text!r}") from None
        inside = (value > low if low_open else value >= low) and (value < high if high_open else value <= high)
        if not (math.isfinite(value) and inside):
            raise argparse.ArgumentTypeError(f"must be {what} in {span}, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


_COUNT = _number(int, 1)


def _save_path(text: str) -> str:
    """--save: the model's file name, checked to be writable before any training."""
    try:
        return check_writable(text)
    except OSError as e:
        raise argparse.ArgumentTypeError(f"cannot write a model file there ({text!r}): {e.strerror or e}") from None


def _parser():
    p = argparse.ArgumentParser(prog="python -m seqkern demo", description=__doc__.split("\n\n")[0])
    p.add_argument("--train", help="training file, text<TAB>label lines")
    p.add_argument("--test", help="test file, same format")
    p.add_argument("--model", default="lstm-attn", choices=("lstm-attn", "lstm", "attn", "bow"))
    p.add_argument("--epochs", type=_COUNT, default=None, help="default 8 (synthetic) or 10 (files)")
    p.add_argument("--batch-size", type=_COUNT, default=32)
    p.add_argument("--embed", type=_COUNT, default=None, help="embedding size (default 32 / 100)")
    p.add_argument("--hidden", type=_COUNT, default=None, help="LSTM units (default 64 / 100)")
    p.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help="bidirectional LSTM (default: on for files, off for the synthetic task)")
    p.add_argument("--dropout", type=_number(float, 0, 1, high_open=True), default=None,
                   help="dropout rate (default 0 / 0.5)")
    p.add_argument("--lr", type=_number(float, 0, low_open=True), default=None,
                   help="Adam learning rate (default 0.005 / 0.002)")
    p.add_argument("--n-train", type=_COUNT, default=4000, help="synthetic training sentences")
    p.add_argument("--min-count", type=_COUNT, default=1, help="vocabulary: minimum token count")
    p.add_argument("--max-vocab", type=_number(int, 2), default=50000, help="vocabulary: maximum size")
    p.add_argument("--seed", type=_number(int, 0), default=0)
    p.add_argument("--save", type=_save_path,
                   help="write the trained model (.npz with its vocabulary and labels; .npz is appended "
                        "unless the name ends with it); its folder is checked before training")
    p.add_argument("--threads", type=_COUNT, default=1,
                   help="kernel threads (default 1: these small models gain little from more, and lose much "
                        "when the cores are busy with other work)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    previous = get_num_threads()
    set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        set_num_threads(previous)


def _run(args) -> int:
    files = args.train is not None
    if files != (args.test is not None):
        print("demo: give both --train and --test (or neither for the synthetic task)", file=sys.stderr)
        return 2
    if files:
        try:
            tr_texts, tr_labels = read_tsv(args.train)
            te_texts, te_labels = read_tsv(args.test)
        except (OSError, ValueError) as e:
            print(f"demo: {e}", file=sys.stderr)
            return 2
        print(f"data: {len(tr_texts)} training and {len(te_texts)} test lines")
        defaults = dict(epochs=10, embed=100, hidden=100, bidirectional=True, dropout=0.5, lr=0.002)
    else:
        tr_texts, tr_labels = synthetic_task(args.n_train, seed=1234)
        te_texts, te_labels = synthetic_task(1000, seed=4321)
        print("synthetic task: the topic (sports, music, science, food) is named by one of the first three")
        print("words; later words mention every topic equally often, so only word order tells the topic.")
        print(f"  e.g. '{' '.join(tr_texts[0].split()[:14])} ...' -> {tr_labels[0]}")
        defaults = dict(epochs=8, embed=32, hidden=64, bidirectional=False, dropout=0.0, lr=0.005)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if not tr_texts or not te_texts:
        print("demo: empty training or test data", file=sys.stderr)
        return 2

    tr_tok = [tokenize(t) for t in tr_texts]
    vocab = Vocab.build(tr_tok, min_count=args.min_count, max_size=args.max_vocab)
    labels = LabelEncoder.fit(tr_labels)
    try:
        y_te = labels.transform(te_labels)
    except ValueError as e:
        print(f"demo: {e}", file=sys.stderr)
        return 2
    x_tr, y_tr = [vocab.encode(t) for t in tr_tok], labels.transform(tr_labels)
    x_te = [vocab.encode(tokenize(t)) for t in te_texts]

    # Hold out 10% of the training data to pick the epoch (early stopping).
    rng = np.random.default_rng(args.seed)
    perm = rng.permutation(len(x_tr))
    n_val = max(1, len(x_tr) // 10) if len(x_tr) >= 20 else 0
    val_idx, fit_idx = perm[:n_val], perm[n_val:]
    x_fit, y_fit = [x_tr[i] for i in fit_idx], y_tr[fit_idx]
    val = ([x_tr[i] for i in val_idx], y_tr[val_idx]) if n_val else None

    model = build_model(args.model, len(vocab), len(labels.classes), args.embed, args.hidden,
                        bidirectional=args.bidirectional, dropout=args.dropout, seed=args.seed)
    model.compile(optimizer=nn.Adam(lr=args.lr, clipnorm=5.0), loss="sparse_categorical_crossentropy")
    n_params = sum(v.size for v in model.params().values())
    print(f"model: {args.model}{' (bidirectional)' if args.bidirectional and 'lstm' in args.model else ''}, "
          f"embedding {args.embed}, hidden {args.hidden}, vocabulary {len(vocab)}, "
          f"{len(labels.classes)} classes, {n_params:,d} parameters")
    t0 = time.perf_counter()
    hist = model.fit(x_fit, y_fit, epochs=args.epochs, batch_size=args.batch_size, validation_data=val,
                     verbose=0 if args.quiet else 1, seed=args.seed,
                     early_stopping=nn.EarlyStopping("val_accuracy", patience=3) if val else None)
    elapsed = time.perf_counter() - t0
    res = model.evaluate(x_te, y_te)
    tok_s = np.median(hist["tokens_per_s"])
    print(f"trained {len(hist['loss'])} epochs in {elapsed:.1f} s ({tok_s:,.0f} training tokens/s)")
    print(f"test accuracy: {res['accuracy']:.4f}  (test loss {res['loss']:.4f}, {len(x_te)} examples)")
    if not files:
        pred = labels.inverse(model.predict(x_te[:3]).argmax(axis=1))
        for text, truth, guess in zip(te_texts[:3], te_labels[:3], pred):
            words = text.split()
            print(f"  '{' '.join(words[:10])} ...' ({len(words)} words): {guess} (true: {truth})")
    if args.save:
        model.extra = {"vocab": vocab.to_json(), "classes": labels.classes}
        print(f"saved to {model.save(args.save)}")
    if not files:
        print("\ntrain on your own data (text<TAB>label lines; a header line is skipped, labels may be strings):")
        print("  python -m seqkern demo --train train.tsv --test test.tsv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
