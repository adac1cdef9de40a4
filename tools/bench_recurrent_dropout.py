"""What recurrent dropout costs: forward+backward with a recurrent_mask over the same without,
for the LSTM, the GRU and the plain RNN, float32.

    PYTHONPATH=python python3 tools/bench_recurrent_dropout.py [--threads 1 2] [--repeats 9]

The two calls alternate in one run, with a short pause before each; printed are the medians and
the minimums of each, and the ratio of both (> 1: the mask costs that much).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import seqkern

SHAPES = [(64, 32, 100, 100), (128, 32, 128, 256), (256, 4, 64, 128)]
CELLS = {"lstm": (4, seqkern.LSTMWeights), "gru": (3, seqkern.GRUWeights), "rnn": (1, seqkern.RNNWeights)}


def measure(cell, T, B, D, H, repeats, rng):
    G, Weights = CELLS[cell]
    x = rng.standard_normal((T, B, D), dtype=np.float32)
    w = Weights(rng.standard_normal((G * H, D), dtype=np.float32) * 0.1,
                rng.standard_normal((G * H, H), dtype=np.float32) * 0.1)
    dy = rng.standard_normal((T, B, H), dtype=np.float32)
    forward, backward = getattr(seqkern, f"{cell}_forward"), getattr(seqkern, f"{cell}_backward")
    mask = seqkern.recurrent_dropout_mask(0.25, (B, H), seed=1)

    def run(m):
        backward(forward(x, w, recurrent_mask=m).cache, dy)

    times = {"plain": [], "mask": []}
    run(None)
    run(mask)
    for _ in range(repeats):
        for key, m in (("plain", None), ("mask", mask)):
            time.sleep(0.05)
            t = time.perf_counter()
            run(m)
            times[key].append(time.perf_counter() - t)
    return {k: (float(np.median(v)), min(v)) for k, v in times.items()}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1])
    ap.add_argument("--repeats", type=int, default=9)
    args = ap.parse_args(argv)
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # only NumPy's own BLAS is capped by it; the kernels do not use it
        threadpool_limits = None
    rng = np.random.default_rng(0)
    print(f"# {seqkern.get_isa()}, median and min of {args.repeats} alternating calls each")
    for n in args.threads:
        seqkern.set_num_threads(n)
        for cell in CELLS:
            for T, B, D, H in SHAPES:
                if threadpool_limits is None:
                    r = measure(cell, T, B, D, H, args.repeats, rng)
                else:
                    with threadpool_limits(n):
                        r = measure(cell, T, B, D, H, args.repeats, rng)
                (pm, p0), (mm, m0) = r["plain"], r["mask"]
                print(f"{cell} T={T} B={B} D={D} H={H} threads={n}: no mask {pm * 1e3:.2f} ms (min {p0 * 1e3:.2f}), "
                      f"mask {mm * 1e3:.2f} ms (min {m0 * 1e3:.2f}); ratio median {mm / pm:.3f}, min {m0 / p0:.3f}")


if __name__ == "__main__":
    main()
