"""``python -m seqkern.torch.bench``: seqkern.torch against torch.nn in one run.

Three tables, every ratio from timings taken in the same run (> 1 means seqkern.torch is faster):

- inference: ``seqkern.torch.LSTM`` against ``torch.nn.LSTM`` and against the NumPy API
  (``seqkern.lstm_forward`` on packed ``LSTMWeights``) on the same weights and inputs, under
  ``torch.no_grad()``, medians over ``--repeat`` repeats taken in turns (see :func:`interleaved`);
- the per-call overhead of the torch op over the NumPy API on a tiny shape (microseconds);
- training tokens/s of a small SST-2-like classifier (Embedding -> bidirectional LSTM -> Linear,
  packed sequences, Adam) with ``seqkern.torch.LSTM`` and with ``torch.nn.LSTM``, the same
  initial weights and batches, the two models stepping in turns, and both loss curves.

One thread for both libraries by default (``--threads``); a short pause between items lets the
machine settle. ``--json out.json`` writes the rows.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import numpy as np
import torch

import seqkern
from seqkern.bench.report import cpu_model

from . import LSTM
from .modules import _seqkern

INFERENCE_SHAPES = [  # (name, T, D, H, bidirectional)
    ("T=64 D=128 H=256", 64, 128, 256, False),
    ("SST-2 T=64 D=100 H=100 bidir", 64, 100, 100, True),
]
BATCHES = (1, 4, 8)


def _pause(s: float) -> None:
    if s > 0:
        time.sleep(s)


def interleaved(fns: dict, repeat: int, min_repeat_s: float = 0.02) -> dict:
    """Median seconds per call of each of ``fns`` (label -> callable), timed in turns: every repeat
    times each function once (a batch of calls when they are fast), so a change in the machine's
    load or clock during the run falls on all of them alike. Two untimed calls each first."""
    number = {}
    for label, fn in fns.items():
        fn()
        t0 = time.perf_counter()
        fn()
        number[label] = max(1, math.ceil(min_repeat_s / max(time.perf_counter() - t0, 1e-7)))
    samples = {label: [] for label in fns}
    for _ in range(repeat):
        for label, fn in fns.items():
            n = number[label]
            t0 = time.perf_counter()
            for _ in range(n):
                fn()
            samples[label].append((time.perf_counter() - t0) / n)
    return {label: statistics.median(v) for label, v in samples.items()}


def inference_rows(repeat: int, pause: float) -> list[dict]:
    rows = []
    for name, T, D, H, bidir in INFERENCE_SHAPES:
        torch.manual_seed(0)
        ref = torch.nn.LSTM(D, H, bidirectional=bidir).eval()
        mine = LSTM(D, H, bidirectional=bidir).eval()
        mine.load_state_dict(ref.state_dict())
        packed = []
        for s in ("", "_reverse") if bidir else ("",):
            sd = {k: v.numpy() for k, v in ref.state_dict().items()}
            packed.append(seqkern.LSTMWeights(sd["weight_ih_l0" + s], sd["weight_hh_l0" + s],
                                              sd["bias_ih_l0" + s] + sd["bias_hh_l0" + s]))
        for B in BATCHES:
            x = torch.randn(T, B, D)
            xn = x.numpy()

            def numpy_api():
                y = [seqkern.lstm_forward(xn, packed[0], need_cache=False).y]
                if bidir:
                    y.append(seqkern.lstm_forward(np.ascontiguousarray(xn[::-1]), packed[1], need_cache=False).y[::-1])
                return np.concatenate(y, 2) if bidir else y[0]

            with torch.no_grad():
                torch.testing.assert_close(mine(x)[0], ref(x)[0], rtol=1e-4, atol=1e-5)
                _pause(pause)
                times = interleaved({"torch": lambda: ref(x), "seqkern.torch": lambda: mine(x),
                                     "numpy api": numpy_api}, repeat)
            rows.append({"table": "inference", "shape": name, "B": B,
                         "torch_ms": times["torch"] * 1e3, "seqkern_torch_ms": times["seqkern.torch"] * 1e3,
                         "numpy_api_ms": times["numpy api"] * 1e3,
                         "x_torch": times["torch"] / times["seqkern.torch"],
                         "torch_minus_numpy_us": (times["seqkern.torch"] - times["numpy api"]) * 1e6})
    return rows


def overhead_rows(repeat: int, pause: float) -> list[dict]:
    T, B, D, H = 1, 1, 4, 4
    torch.manual_seed(0)
    x, w_ih, w_hh, b = torch.randn(T, B, D), torch.randn(4 * H, D), torch.randn(4 * H, H), torch.randn(4 * H)
    w = seqkern.LSTMWeights(w_ih.numpy(), w_hh.numpy(), b.numpy())
    xn = x.numpy()
    module = LSTM(D, H)
    calls = (
        ("numpy api lstm_forward (no cache)", lambda: seqkern.lstm_forward(xn, w, need_cache=False)),
        ("numpy api lstm_forward (cache)", lambda: seqkern.lstm_forward(xn, w)),
        ("torch.ops.seqkern.lstm", lambda: _seqkern.lstm(x, w_ih, w_hh, b, None, None, None, None, None)),
        ("torch.ops.seqkern.lstm_inference",
         lambda: _seqkern.lstm_inference(x, w_ih, w_hh, b, None, None, None, None, None)),
        ("seqkern.torch.LSTM module", lambda: module(x)),
    )
    with torch.no_grad():
        _pause(pause)
        times = interleaved(dict(calls), repeat, min_repeat_s=0.05)
    base = times["numpy api lstm_forward (cache)"]
    return [{"table": "overhead", "call": label, "shape": f"T={T} B={B} D={D} H={H}", "us": t * 1e6,
             "over_numpy_us": (t - base) * 1e6} for label, t in times.items()]


class SST2Model(torch.nn.Module):
    """Embedding -> bidirectional LSTM -> Linear on the final states (the SST-2 example's shape)."""

    def __init__(self, lstm_class, vocab=5000, dim=100, hidden=100):
        super().__init__()
        self.emb = torch.nn.Embedding(vocab, dim)
        self.lstm = lstm_class(dim, hidden, bidirectional=True)
        self.out = torch.nn.Linear(2 * hidden, 2)

    def forward(self, tokens, lengths):
        x = torch.nn.utils.rnn.pack_padded_sequence(self.emb(tokens), lengths, enforce_sorted=False)
        _, (h, _) = self.lstm(x)
        return self.out(torch.cat([h[0], h[1]], 1))


def training_rows(steps: int, batch: int, pause: float) -> list[dict]:
    g = torch.Generator()
    g.manual_seed(0)
    T = 64
    batches = []
    for _ in range(steps + 2):
        lengths = torch.randint(8, T + 1, (batch,), generator=g)
        tokens = torch.randint(1, 5000, (T, batch), generator=g)
        batches.append((tokens, lengths, torch.randint(0, 2, (batch,), generator=g)))
    tokens_per_step = [int(b[1].sum()) for b in batches[2:]]
    torch.manual_seed(0)
    ref = SST2Model(torch.nn.LSTM)
    runs = {}
    for label, cls in (("torch", torch.nn.LSTM), ("seqkern.torch", LSTM)):
        model = SST2Model(cls)
        model.load_state_dict(ref.state_dict())
        runs[label] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), [], [])
    _pause(pause)
    # The two models take turns, step by step, so that the machine's state falls on both alike.
    for i, (tokens, lengths, labels) in enumerate(batches):
        for model, opt, losses, seconds in runs.values():
            t0 = time.perf_counter()
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(tokens, lengths), labels)
            loss.backward()
            opt.step()
            if i >= 2:  # two warm-up steps
                seconds.append(time.perf_counter() - t0)
            losses.append(float(loss.detach()))
    results = {label: (sum(tokens_per_step) / sum(r[3]), r[2]) for label, r in runs.items()}
    tps_t, loss_t = results["torch"]
    tps_s, loss_s = results["seqkern.torch"]
    return [{"table": "training", "model": f"SST-2-like Embedding(5000,100) -> biLSTM(100) -> Linear, B={batch} T<={T}",
             "steps": steps, "torch_tokens_s": tps_t, "seqkern_torch_tokens_s": tps_s, "x_torch": tps_s / tps_t,
             "final_loss_torch": loss_t[-1], "final_loss_seqkern_torch": loss_s[-1],
             "max_loss_diff": max(abs(a - b) for a, b in zip(loss_t, loss_s))}]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m seqkern.torch.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=7, help="timed repeats per item (median)")
    ap.add_argument("--threads", type=int, default=1, help="threads for seqkern and torch (default 1)")
    ap.add_argument("--pause", type=float, default=0.3, help="seconds of rest before each timed item")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per model")
    ap.add_argument("--batch", type=int, default=32, help="training batch size")
    ap.add_argument("--only", choices=["inference", "overhead", "training"], action="append",
                    help="run only these tables (repeatable)")
    ap.add_argument("--json", help="write the rows to this file")
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    seqkern.set_num_threads(a.threads)
    tables = a.only or ["inference", "overhead", "training"]
    print(f"cpu: {cpu_model()}  threads: {a.threads}  isa: {seqkern.get_isa()}  "
          f"torch {torch.__version__}  numpy {np.__version__}")
    rows = []
    if "inference" in tables:
        print("\ninference (no_grad), ms; x_torch = torch.nn.LSTM / seqkern.torch.LSTM")
        print(f"  {'shape':30s} {'B':>3s} {'torch':>9s} {'seqkern.torch':>14s} {'numpy api':>10s} {'x_torch':>8s} "
              f"{'torch-numpy':>12s}")
        for r in inference_rows(a.repeat, a.pause):
            rows.append(r)
            print(f"  {r['shape']:30s} {r['B']:3d} {r['torch_ms']:9.3f} {r['seqkern_torch_ms']:14.3f} "
                  f"{r['numpy_api_ms']:10.3f} {r['x_torch']:8.2f} {r['torch_minus_numpy_us']:9.1f} us")
    if "overhead" in tables:
        print("\nper-call time on a tiny shape (T=1 B=1 D=4 H=4), no_grad, us")
        for r in overhead_rows(a.repeat, a.pause):
            rows.append(r)
            print(f"  {r['call']:36s} {r['us']:8.2f} us  ({r['over_numpy_us']:+.2f} us over the NumPy API with cache)")
    if "training" in tables:
        for r in training_rows(a.steps, a.batch, a.pause):
            rows.append(r)
            print(f"\ntraining: {r['model']}, {r['steps']} timed steps, Adam")
            print(f"  torch.nn.LSTM       {r['torch_tokens_s']:10.0f} tokens/s  final loss {r['final_loss_torch']:.6f}")
            print(f"  seqkern.torch.LSTM  {r['seqkern_torch_tokens_s']:10.0f} tokens/s  final loss "
                  f"{r['final_loss_seqkern_torch']:.6f}")
            print(f"  x_torch {r['x_torch']:.2f}   largest loss difference over all steps {r['max_loss_diff']:.2e}")
    if a.json:
        with open(a.json, "w", encoding="utf-8") as f:
            json.dump({"cpu": cpu_model(), "threads": a.threads, "isa": seqkern.get_isa(), "rows": rows}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
