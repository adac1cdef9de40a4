"""The adding problem (Hochreiter & Schmidhuber 1997; Arjovsky, Shah & Bengio 2016) with seqkern.nn.

Each input is a sequence of T pairs (value, marker): values uniform in [0, 1), markers 1 at two
positions (one in each half of the sequence) and 0 elsewhere; the target is the sum of the two
marked values. Predicting 1 always gives MSE 1/6 = 0.167; the task counts as solved below 0.01.

    python examples/adding_problem.py --T 100
    python examples/adding_problem.py --T 200

An LSTM with 128 units reads the sequence; a Dense layer maps its final state to the sum. Batches
are drawn fresh every step; a fixed validation set decides when to stop (``--target``) and a
separate fixed test set gives the reported MSE.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from seqkern import nn


def adding_batch(rng: np.random.Generator, batch: int, T: int, dtype=np.float32):
    """(x (batch, T, 2), y (batch, 1)): values and markers, and the sum of the two marked values."""
    x = np.zeros((batch, T, 2), dtype=dtype)
    x[:, :, 0] = rng.random((batch, T))
    half = T // 2
    first = rng.integers(0, half, size=batch)
    second = rng.integers(half, T, size=batch)
    rows = np.arange(batch)
    x[rows, first, 1] = 1
    x[rows, second, 1] = 1
    y = (x[rows, first, 0] + x[rows, second, 0]).reshape(batch, 1)
    return x, y


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--T", type=int, default=100, help="sequence length")
    p.add_argument("--hidden", type=int, default=128, help="LSTM units")
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate")
    p.add_argument("--clipnorm", type=float, default=1.0, help="clip gradients to this global norm")
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--target", type=float, default=0.01, help="stop once the validation MSE is below this")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    x_val, y_val = adding_batch(np.random.default_rng(10_000 + args.T), 1000, args.T)
    x_test, y_test = adding_batch(np.random.default_rng(20_000 + args.T), 1000, args.T)
    model = nn.Sequential([nn.LSTM(2, args.hidden, seed=rng), nn.Dense(args.hidden, 1, seed=rng)])
    model.compile(nn.Adam(lr=args.lr, clipnorm=args.clipnorm), loss="mse", metrics=())
    print(f"adding problem T={args.T}: LSTM({args.hidden}) -> Dense(1), batch {args.batch_size}, "
          f"Adam lr {args.lr}; baseline MSE 0.167, target {args.target}")
    t0 = time.perf_counter()
    running = []
    val = float("nan")
    for step in range(1, args.max_steps + 1):
        x, y = adding_batch(rng, args.batch_size, args.T)
        loss, _ = model.train_on_batch(x, y)
        running.append(loss)
        if step % args.eval_every == 0 or step == args.max_steps:
            val = model.evaluate(x_val, y_val, batch_size=500)["loss"]
            print(f"step {step:6d}  train MSE {np.mean(running):.4f}  validation MSE {val:.4f}  "
                  f"{time.perf_counter() - t0:7.1f} s", flush=True)
            running = []
            if val < args.target:
                break
    elapsed = time.perf_counter() - t0
    test = model.evaluate(x_test, y_test, batch_size=500)["loss"]
    print(f"T={args.T}: test MSE {test:.5f} after {step} steps ({step * args.batch_size:,d} sequences), "
          f"{elapsed:.1f} s")
    return 0 if test < args.target else 1


if __name__ == "__main__":
    sys.exit(main())
