"""A sequence tagger (part-of-speech, chunks, named entities) with seqkern.nn: BiLSTM with a
per-token softmax, trained on a CoNLL-format file.

    python examples/tagger.py --train train.conll --dev dev.conll --test test.conll
    python examples/tagger.py --train en_ewt-ud-train.conllu --column 3      # CoNLL-U: UPOS
    python examples/tagger.py --train eng.train --save ner.npz                # CoNLL-2003: NER (last field)

One token a line, sentences separated by blank lines; ``--column`` picks the tag's field (-1,
the default, is the last). Without ``--dev`` the last 10% of the training sentences are held out
to pick the epoch. Reports token accuracy (padding never counts) and the macro F1 over the tags.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from seqkern import nn
from seqkern.text import LabelEncoder, Vocab, read_conll


def build(vocab_size, n_tags, embed, hidden, dropout, word_dropout, seed):
    rng = np.random.default_rng(seed)
    return nn.Sequential([
        nn.Embedding(vocab_size, embed, padding_idx=0, scale=0.1, word_dropout=word_dropout, seed=rng),
        nn.Dropout(dropout, seed=rng),
        nn.LSTM(embed, hidden, bidirectional=True, return_sequences=True, seed=rng),
        nn.Dropout(dropout, seed=rng),
        nn.TimeDistributed(nn.Dense(2 * hidden, n_tags, activation="softmax", seed=rng)),
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--train", required=True, help="CoNLL file to train on")
    p.add_argument("--dev", help="CoNLL file to pick the epoch on (default: the last 10%% of --train)")
    p.add_argument("--test", help="CoNLL file to report on")
    p.add_argument("--column", type=int, default=-1, help="the tag's field (default -1: the last)")
    p.add_argument("--token-column", type=int, default=0)
    p.add_argument("--lower", action="store_true", help="lower-case the tokens")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--embed", type=int, default=64)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.3)
    p.add_argument("--word-dropout", type=float, default=0.05, help="replace words by <unk> in training")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--min-count", type=int, default=1)
    p.add_argument("--patience", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--save", help="write the model here (.npz), with its vocabulary and tag names")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    def read(path):
        try:
            sents, tags = read_conll(path, args.column, token_column=args.token_column)
        except (OSError, ValueError) as e:
            raise SystemExit(f"tagger: {e}") from None
        if args.lower:
            sents = [[t.lower() for t in s] for s in sents]
        return sents, tags

    tr_s, tr_t = read(args.train)
    if not tr_s:
        print(f"tagger: {args.train} holds no sentences", file=sys.stderr)
        return 2
    vocab = Vocab.build(tr_s, min_count=args.min_count)
    tagset = LabelEncoder(sorted({t for ts in tr_t for t in ts}))

    def encode(sents, tags, path):
        try:
            return [vocab.encode(s) for s in sents], [tagset.transform(t) for t in tags]
        except ValueError as e:
            raise SystemExit(f"tagger: {path}: {e}") from None

    x_tr, y_tr = encode(tr_s, tr_t, args.train)
    fit_kw = {}
    if args.dev:
        x_dv, y_dv = encode(*read(args.dev), args.dev)
        fit_kw["validation_data"] = (x_dv, y_dv)
    elif len(x_tr) >= 10:
        fit_kw["validation_split"] = 0.1
    print(f"{len(x_tr)} training sentences ({sum(map(len, x_tr))} tokens), vocabulary {len(vocab)}, "
          f"{len(tagset.classes)} tags")

    model = build(len(vocab), len(tagset.classes), args.embed, args.hidden, args.dropout, args.word_dropout, args.seed)
    model.compile(nn.Adam(args.lr, clipnorm=5.0), "sparse_categorical_crossentropy", metrics=("accuracy", "f1"))
    stop = nn.EarlyStopping("val_accuracy", patience=args.patience) if fit_kw else None
    t0 = time.perf_counter()
    hist = model.fit(x_tr, y_tr, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
                     verbose=0 if args.quiet else 1, early_stopping=stop, **fit_kw)
    took = time.perf_counter() - t0
    if "val_accuracy" in hist:
        best = hist.get("best_epoch", [len(hist["loss"]) - 1])[0]
        print(f"validation: token accuracy {hist['val_accuracy'][best]:.4f}, macro F1 {hist['val_f1'][best]:.4f} "
              f"(epoch {best + 1}, {took:.1f} s)")
    if args.test:
        x_te, y_te = encode(*read(args.test), args.test)
        res = model.evaluate(x_te, y_te)
        print(f"test: token accuracy {res['accuracy']:.4f}, macro F1 {res['f1']:.4f} over {sum(map(len, x_te))} tokens")
    if args.save:
        model.extra = {"vocab": vocab.to_json(), "tags": tagset.classes, "lower": args.lower}
        print(f"saved {model.save(args.save)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
