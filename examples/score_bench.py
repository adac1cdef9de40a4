"""Corpus-scoring throughput of the SST-2-shaped model with ``python -m seqkern predict``.

The model is the one ``examples/sst2.py`` trains (Embedding(V, 100) -> BiLSTM H = 100 ->
attention pooling (100) -> Dense softmax over 2 classes), randomly initialized: scoring costs the
same whatever the weights. The corpus is SST-2's training sentences repeated to ``--lines`` lines
(generated sentences of SST-2's lengths when the data set is absent). Reported:

- sentences/s of the command in this process, one kernel thread (``--workers 1 --threads 1``);
- sentences/s with ``--workers N`` (a LocalCluster of N single-threaded processes), end to end
  (cluster start included) and on a cluster already running (``--scheduler``);
- what a partition costs the scheduler (round trip of a task that carries a partition's bytes
  and does nothing) and the I/O rates (reading partitions, writing the parts and the output), the
  inputs of the scaling model in the README.

    python examples/score_bench.py                   # 200,000 lines, 1 and 2 workers
    python examples/score_bench.py --lines 20000 --workers 2
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import seqkern
from seqkern import nn
from seqkern.score import main as predict_main
from seqkern.score import partition_bounds, read_partition
from seqkern.text import Vocab, read_tsv, tokenize


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def sst2_sentences() -> list[str] | None:
    for parent in Path(__file__).resolve().parents:
        cand = parent / "shared" / "datasets" / "sst2" / "sentence_train.tsv"
        if cand.is_file():
            return read_tsv(str(cand))[0]
    return None


def generated_sentences(n: int, seed: int = 0) -> list[str]:
    """Sentences of 3-52 words (mean about 19, as SST-2) over a 15,000-word vocabulary."""
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(15000)]
    lengths = np.clip(rng.gamma(4.0, 4.8, size=n).astype(int), 3, 52)
    return [" ".join(rng.choice(words, size=k)) for k in lengths]


def build_model(vocab: Vocab, layers: int, seed: int = 0) -> nn.Sequential:
    rng = np.random.default_rng(seed)
    return nn.Sequential([
        nn.Embedding(len(vocab), 100, padding_idx=0, scale=0.1, seed=rng),
        nn.LSTM(100, 100, num_layers=layers, bidirectional=True, return_sequences=True, seed=rng),
        nn.AttentionPool(200, 100, seed=rng),
        nn.Dense(200, 2, activation="softmax", seed=rng),
    ])


def timed_predict(args: list[str]) -> float:
    t0 = time.perf_counter()
    rc = predict_main(args + ["--no-progress"])
    if rc != 0:
        raise SystemExit(f"score_bench: predict {' '.join(args)} failed ({rc})")
    return time.perf_counter() - t0


def scheduler_overhead(client, payload: bytes, n: int = 100) -> float:
    """Median-free mean round trip (s) of ``n`` do-nothing tasks carrying ``payload``, two in
    flight per worker, as the predict command submits them."""
    from distributed import as_completed

    def noop(data):
        return len(data)

    workers = max(1, len(client.scheduler_info()["workers"]))
    t0 = time.perf_counter()
    pending = iter(range(n))
    ac = as_completed()
    for _ in range(2 * workers):
        k = next(pending, None)
        if k is not None:
            ac.add(client.submit(noop, payload, pure=False))
    for fut in ac:
        fut.result()
        k = next(pending, None)
        if k is not None:
            ac.add(client.submit(noop, payload, pure=False))
    return (time.perf_counter() - t0) / n


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--lines", type=int, default=200_000)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--layers", type=int, default=1, help="BiLSTM layers (examples/sst2.py: 1)")
    p.add_argument("--partition-size", type=int, default=1 << 20)
    p.add_argument("--dir", help="folder for the corpus and outputs (default: a temporary folder)")
    args = p.parse_args(argv)

    sents = sst2_sentences()
    source = "SST-2 sentence_train.tsv repeated"
    if sents is None:
        sents, source = generated_sentences(20000), "generated sentences (SST-2 not found)"
    vocab = Vocab.build([tokenize(s) for s in sents])
    model = build_model(vocab, args.layers)
    model.extra = {"vocab": vocab.to_json(), "classes": ["0", "1"]}

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        model_path = model.save(os.path.join(tmp, "sst2_shaped.npz"))
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as fh:
            for i in range(args.lines):
                fh.write(sents[i % len(sents)] + "\n")
        size = os.path.getsize(corpus)
        tokens = sum(len(s.split()) for s in sents) / len(sents)
        print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs); seqkern ISA {seqkern.get_isa()}")
        print(f"model: Embedding({len(vocab)}, 100) -> {args.layers}-layer BiLSTM H=100 -> attention pool 100 "
              f"-> Dense 2 softmax, {sum(v.size for v in model.params().values()):,d} parameters")
        print(f"corpus: {args.lines:,d} lines, {size / 1e6:.1f} MB, {tokens:.1f} tokens/line ({source}); "
              f"partitions of {args.partition_size:,d} bytes: {len(partition_bounds(corpus, args.partition_size))}")

        base = ["--model", model_path, "--input", corpus, "--partition-size", str(args.partition_size)]
        t1 = timed_predict(base + ["--output", os.path.join(tmp, "s1.tsv"), "--threads", "1"])
        r1 = args.lines / t1
        print(f"1 worker (this process, 1 thread):    {t1:7.1f} s  {r1:9,.0f} sentences/s")

        try:
            from distributed import Client, LocalCluster
        except ImportError:
            print("distributed is not installed: no multi-worker rows (pip install 'seqkern[dask]')")
            return 0
        n = args.workers
        te = timed_predict(base + ["--output", os.path.join(tmp, "se.tsv"), "--workers", str(n)])
        print(f"{n} workers (--workers {n}, end to end):  {te:7.1f} s  {args.lines / te:9,.0f} sentences/s "
              f"({args.lines / te / r1:.2f}x one worker)")
        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
        client = Client(cluster)
        start = time.perf_counter() - t0
        try:
            ts = timed_predict(base + ["--output", os.path.join(tmp, "ss.tsv"), "--scheduler",
                                       cluster.scheduler_address])
            rs = args.lines / ts
            print(f"{n} workers (running cluster):         {ts:7.1f} s  {rs:9,.0f} sentences/s "
                  f"({rs / r1:.2f}x one worker); cluster start {start:.1f} s")
            with open(os.path.join(tmp, "s1.tsv"), "rb") as a, open(os.path.join(tmp, "ss.tsv"), "rb") as b:
                same = a.read() == b.read()
            print(f"outputs of 1 and {n} workers identical: {same}")
            payload = read_partition(corpus, 0, min(size, args.partition_size))
            over = scheduler_overhead(client, payload)
            over_small = scheduler_overhead(client, b"x")
            print(f"scheduler: {over * 1e3:.1f} ms per task carrying one {len(payload) / 1e6:.1f} MB partition, "
                  f"{over_small * 1e3:.1f} ms per empty task ({n} workers, {2 * n} in flight)")
        finally:
            client.close()
            cluster.close()
        t0 = time.perf_counter()
        nbytes = 0
        for s, e in partition_bounds(corpus, args.partition_size):
            data = read_partition(corpus, s, e)
            nbytes += len(data)
            data.split(b"\n")
        tr = time.perf_counter() - t0
        out_size = os.path.getsize(os.path.join(tmp, "s1.tsv"))
        print(f"I/O: reading partitions {nbytes / tr / 1e6:,.0f} MB/s (page cache); the output is "
              f"{out_size / args.lines:.0f} bytes/line ({out_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
