"""Training speed of the SST-2 model (Embedding -> BiLSTM -> attention pooling -> Dense, softmax
cross-entropy, Adam) in seqkern.nn against the same model written in PyTorch, in one run.

    python -m seqkern.nn.speed [--batch 32] [--steps 20] [--embed 150] [--hidden 100]

Both train on the same batches: token ids with SST-2-like lengths (uniform in 4..40, mean 22),
bucketed into batches of similar length; the same sizes, batch and optimizer. PyTorch runs the
LSTM over packed sequences (``pack_padded_sequence``), which is what the lengths require; a row
without packing (padding computed, reverse direction wrong for short rows) is given for
reference. The figure is training tokens per second (real tokens, not padding), median over
``repeats`` passes of ``steps`` batches, the libraries alternating.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from .._runtime import get_num_threads, set_num_threads
from . import layers as L
from .model import Sequential
from .optim import Adam

__all__ = ["make_batches", "seqkern_model", "torch_model", "make_runners", "train_speed", "main"]


def make_batches(n_batches, batch, vocab, seed=0, min_len=4, max_len=40):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(min_len, max_len + 1, size=n_batches * batch)
    order = np.argsort(lengths, kind="stable")  # bucketed, as fit() does
    out = []
    for i in range(n_batches):
        idx = order[i * batch : (i + 1) * batch]
        lens = lengths[idx]
        T = int(lens.max())
        ids = rng.integers(2, vocab, size=(batch, T))
        ids[np.arange(T)[None, :] >= lens[:, None]] = 0
        out.append((ids, lens.astype(np.int64), rng.integers(0, 2, size=batch)))
    rng.shuffle(out)
    return out


def seqkern_model(vocab, embed, hidden, attn, seed=0) -> Sequential:
    rng = np.random.default_rng(seed)
    m = Sequential([
        L.Embedding(vocab, embed, seed=rng),
        L.LSTM(embed, hidden, bidirectional=True, return_sequences=True, seed=rng),
        L.AttentionPool(2 * hidden, attn, seed=rng),
        L.Dense(2 * hidden, 2, activation="softmax", seed=rng),
    ])
    return m.compile(Adam(1e-3), "sparse_categorical_crossentropy")


def torch_model(vocab, embed, hidden, attn, packed=True):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(vocab, embed, padding_idx=0)
            self.lstm = torch.nn.LSTM(embed, hidden, bidirectional=True)
            self.proj = torch.nn.Linear(2 * hidden, attn)
            self.w_s = torch.nn.Parameter(torch.randn(attn) * 0.1)
            self.out = torch.nn.Linear(2 * hidden, 2)

        def forward(self, ids_tm, lengths):
            x = self.emb(ids_tm)  # (T, B, E)
            if packed:
                pk = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, enforce_sorted=False)
                h, _ = self.lstm(pk)
                h, _ = torch.nn.utils.rnn.pad_packed_sequence(h, total_length=x.shape[0])
            else:
                h, _ = self.lstm(x)
            scores = torch.tanh(self.proj(h)) @ self.w_s  # (T, B)
            valid = torch.arange(x.shape[0])[:, None] < lengths[None, :]
            alpha = torch.softmax(scores.masked_fill(~valid, float("-inf")), dim=0)
            context = (alpha.unsqueeze(-1) * h).sum(0)
            return self.out(context)

    net = Net()
    return net, torch.optim.Adam(net.parameters(), lr=1e-3)


def make_runners(batch=32, steps=20, vocab=15000, embed=100, hidden=100, attn=100, with_torch=True,
                 seed=0):
    """(tokens, {name: callable}): each callable trains its model on the same ``steps`` batches,
    one pass; ``tokens`` counts the real (non-padding) tokens of a pass."""
    batches = make_batches(steps, batch, vocab, seed=seed)
    tokens = int(sum(b[1].sum() for b in batches))
    runners = {}
    sk = seqkern_model(vocab, embed, hidden, attn, seed=seed)

    def run_seqkern():
        for ids, lens, y in batches:
            sk.train_on_batch(ids, y, lengths=lens)

    runners["seqkern.nn"] = run_seqkern
    if with_torch:
        try:
            import torch
        except ImportError:
            torch = None
        if torch is not None:
            tb = [(torch.from_numpy(ids.T.copy()), torch.from_numpy(lens), torch.from_numpy(y))
                  for ids, lens, y in batches]
            for packed in (True, False):
                net, opt = torch_model(vocab, embed, hidden, attn, packed=packed)

                def run_torch(net=net, opt=opt):
                    for ids, lens, y in tb:
                        opt.zero_grad()
                        loss = torch.nn.functional.cross_entropy(net(ids, lens), y)
                        loss.backward()
                        opt.step()

                runners["torch" if packed else "torch (no packing)"] = run_torch
    return tokens, runners


def train_speed(batch=32, steps=20, repeats=3, vocab=15000, embed=100, hidden=100, attn=100, threads=None,
                with_torch=True, seed=0):
    """Training tokens/s of seqkern.nn and PyTorch on the same batches; returns a list of row
    dicts {"impl", "tokens_per_s", "ms_per_batch"} (PyTorch rows only when it is importable)."""
    if threads:
        set_num_threads(int(threads))
        if with_torch:
            try:
                import torch

                torch.set_num_threads(int(threads))
            except ImportError:
                pass
    tokens, runners = make_runners(batch, steps, vocab, embed, hidden, attn, with_torch, seed)
    times = {k: [] for k in runners}
    for f in runners.values():  # warm-up
        f()
    for _ in range(repeats):
        for k, f in runners.items():
            time.sleep(0.3)  # let the other library's threads stop spinning
            t0 = time.perf_counter()
            f()
            times[k].append(time.perf_counter() - t0)
    rows = []
    for k, ts in times.items():
        med = float(np.median(ts))
        rows.append({"impl": k, "tokens_per_s": tokens / med, "ms_per_batch": 1e3 * med / steps})
    base = rows[0]["tokens_per_s"]
    for r in rows:
        r["seqkern_speedup"] = base / r["tokens_per_s"]
    return rows


def _torch_threads():
    try:
        import torch
    except ImportError:
        return None
    return torch.get_num_threads()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m seqkern.nn.speed", description=__doc__.split("\n\n")[0])
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--vocab", type=int, default=15000)
    p.add_argument("--embed", type=int, default=100)
    p.add_argument("--hidden", type=int, default=100)
    p.add_argument("--attn", type=int, default=100)
    p.add_argument("--threads", type=int, default=None, help="threads for both (default: each library's own)")
    a = p.parse_args(argv)
    rows = train_speed(a.batch, a.steps, a.repeats, a.vocab, a.embed, a.hidden, a.attn, a.threads)
    print(f"training speed, BiLSTM + attention: batch {a.batch}, embedding {a.embed}, hidden {a.hidden} x 2, "
          f"attention {a.attn}, vocabulary {a.vocab}; median of {a.repeats} x {a.steps} batches; "
          f"seqkern threads {get_num_threads()}" + (f", torch threads {_torch_threads()}" if _torch_threads() else ""))
    print(f"{'impl':<20} {'tokens/s':>10} {'ms/batch':>9} {'seqkern x':>10}")
    for r in rows:
        print(f"{r['impl']:<20} {r['tokens_per_s']:>10,.0f} {r['ms_per_batch']:>9.1f} {r['seqkern_speedup']:>10.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
