"""SST-2 sentiment from scratch with seqkern.nn: a BiLSTM + attention classifier.

Trains on ``sentence_train.tsv`` (6,920 sentences), picks the epoch on ``dev.tsv`` (the SST dev
split, 872 sentences) and reports accuracy on ``sentence_test.tsv`` (1,821 sentences). No
pretrained embeddings. Regularization: word dropout (words replaced by <unk>), dropout on the
embeddings and before the classifier, and a moving average of the weights (``--ema``) for
evaluation.

    python examples/sst2.py                      # data in ../shared/datasets/sst2 (from the repo)
    python examples/sst2.py --data /path/to/sst2
    python examples/sst2.py --train a.tsv --dev b.tsv --test c.tsv
    python examples/sst2.py --runs 5             # five seeds: each model, and their average

Each trained model is also evaluated with its LSTM weights in bf16 and in int8
(``model.quantize``), beside its float32 accuracy.

The data is read where it lies; nothing is copied.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from seqkern import nn
from seqkern.text import Vocab, read_tsv, tokenize


QUANTIZED = ("bf16", "int8")  # the formats each trained model is also evaluated in


def default_data_dir() -> Path | None:
    """``shared/datasets/sst2`` next to the repository (or next to a folder above it)."""
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "datasets" / "sst2"
        if cand.is_dir():
            return cand
    return None


def build(vocab_size, embed, hidden, attn, dropout, emb_dropout, word_dropout, seed):
    rng = np.random.default_rng(seed)
    return nn.Sequential([
        nn.Embedding(vocab_size, embed, padding_idx=0, scale=0.1, word_dropout=word_dropout, seed=rng),
        nn.Dropout(emb_dropout, seed=rng),
        nn.LSTM(embed, hidden, bidirectional=True, return_sequences=True, seed=rng),
        nn.AttentionPool(2 * hidden, attn, seed=rng),
        nn.Dropout(dropout, seed=rng),
        nn.Dense(2 * hidden, 2, activation="softmax", seed=rng),
    ])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", help="folder with sentence_train.tsv, dev.tsv, sentence_test.tsv")
    p.add_argument("--train"), p.add_argument("--dev"), p.add_argument("--test")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--embed", type=int, default=100)
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--attn", type=int, default=100, help="attention size")
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--emb-dropout", type=float, default=0.5)
    p.add_argument("--word-dropout", type=float, default=0.25, help="replace words by <unk> in training")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.0)
    p.add_argument("--ema", type=float, default=0.995,
                   help="evaluate with moving averages of the weights (0: off)")
    p.add_argument("--min-count", type=int, default=1)
    p.add_argument("--patience", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--runs", type=int, default=1,
                   help="train this many models (seeds seed, seed+1, ...); report each and their ensemble")
    p.add_argument("--save", help="write the (first) model here (.npz)")
    p.add_argument("--quiet", action="store_true")
    args = p.parse_args(argv)

    data = Path(args.data) if args.data else default_data_dir()
    paths = {}
    for name, fname in (("train", "sentence_train.tsv"), ("dev", "dev.tsv"), ("test", "sentence_test.tsv")):
        given = getattr(args, name)
        paths[name] = Path(given) if given else (data / fname if data else None)
        if paths[name] is None or not paths[name].exists():
            print(f"sst2: {name} file not found ({paths[name]}); pass --data or --{name}", file=sys.stderr)
            return 2
    tr_x, tr_y = read_tsv(str(paths["train"]))
    dv_x, dv_y = read_tsv(str(paths["dev"]))
    te_x, te_y = read_tsv(str(paths["test"]))
    tr_tok = [tokenize(t) for t in tr_x]
    vocab = Vocab.build(tr_tok, min_count=args.min_count)

    def enc(texts):
        return [vocab.encode(tokenize(t)) for t in texts]

    x_tr, x_dv, x_te = [vocab.encode(t) for t in tr_tok], enc(dv_x), enc(te_x)
    y_tr, y_dv, y_te = (np.array([int(v) for v in ys]) for ys in (tr_y, dv_y, te_y))
    print(f"SST-2: {len(x_tr)} train / {len(x_dv)} dev / {len(x_te)} test sentences, vocabulary {len(vocab)}")

    t_all = time.perf_counter()
    probs, accs = [], []
    quantized = {fmt: [] for fmt in QUANTIZED}
    for run in range(args.runs):
        seed = args.seed + run
        model = build(len(vocab), args.embed, args.hidden, args.attn, args.dropout, args.emb_dropout,
                      args.word_dropout, seed)
        opt = nn.Adam(lr=args.lr, clipnorm=5.0, weight_decay=args.weight_decay, ema=args.ema or None)
        model.compile(opt, "sparse_categorical_crossentropy")
        if run == 0:
            print(f"BiLSTM + attention: embedding {args.embed}, hidden {args.hidden} x 2, attention {args.attn}, "
                  f"{sum(v.size for v in model.params().values()):,d} parameters")
        t0 = time.perf_counter()

        def report(model, epoch, logs, t0=t0):
            print(f"epoch {epoch + 1}: train loss {logs['loss']:.4f}  dev accuracy {logs['val_accuracy']:.4f}  "
                  f"{time.perf_counter() - t0:.1f} s", flush=True)

        hist = model.fit(x_tr, y_tr, epochs=args.epochs, batch_size=args.batch_size,
                         validation_data=(x_dv, y_dv),
                         early_stopping=nn.EarlyStopping("val_accuracy", patience=args.patience),
                         verbose=0 if args.quiet else 1, seed=seed, callbacks=[report] if args.quiet else ())
        elapsed = time.perf_counter() - t0
        res = model.evaluate(x_te, y_te)
        best = hist["best_epoch"][0] + 1
        print(f"seed {seed}: trained {len(hist['loss'])} epochs in {elapsed:.1f} s "
              f"({np.median(hist['tokens_per_s']):,.0f} training tokens/s); best dev epoch {best} "
              f"(dev accuracy {hist['val_accuracy'][best - 1]:.4f})")
        print(f"seed {seed}: test accuracy: {res['accuracy']:.4f} on {len(x_te)} sentences", flush=True)
        p_float = model.predict(x_te)
        for fmt in QUANTIZED:  # the same model with low-precision recurrent weights
            p_q = model.quantize(fmt).predict(x_te)
            acc = float(np.mean(p_q.argmax(axis=1) == y_te))
            quantized[fmt].append(acc)
            print(f"seed {seed}: test accuracy with {fmt} LSTM weights: {acc:.4f} "
                  f"({100 * (acc - res['accuracy']):+.2f} points; probabilities moved by at most "
                  f"{np.abs(p_q - p_float).max():.1e}, {int(np.sum(p_q.argmax(1) != p_float.argmax(1)))} "
                  f"predictions changed)", flush=True)
        model.quantize(None)
        probs.append(p_float)
        accs.append(res["accuracy"])
        if args.save and run == 0:
            model.extra = {"vocab": vocab.to_json(), "classes": ["0", "1"]}
            model.save(args.save)
    if args.runs > 1:
        ens = float(np.mean(np.mean(probs, axis=0).argmax(axis=1) == y_te))
        print(f"{args.runs} runs in {time.perf_counter() - t_all:.1f} s: single-model test accuracy mean "
              f"{np.mean(accs):.4f} (min {np.min(accs):.4f}, max {np.max(accs):.4f}); "
              f"ensemble (mean probability) {ens:.4f}")
        for fmt, qs in quantized.items():
            print(f"{fmt} LSTM weights: test accuracy mean {np.mean(qs):.4f} "
                  f"({100 * (np.mean(qs) - np.mean(accs)):+.2f} points)")
    return 0

if __name__ == "__main__":
    sys.exit(main())
