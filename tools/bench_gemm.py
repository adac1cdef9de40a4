"""GFLOP/s of gemm.h (through the private _core._matmul) next to numpy.matmul, float32.

    PYTHONPATH=python python3 tools/bench_gemm.py [--threads 1 2] [--repeats 7]

Medians of --repeats timings after a warm-up; NumPy and seqkern alternate in the same run with a
short pause between libraries so that spinning BLAS/OpenMP threads do not steal the cores.
Rows marked "packed" pack B once and time `reps` products inside one call (per-product time).
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import seqkern
from seqkern import _core


def median_time(f, repeats, inner=1):
    f()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter()
        f()
        ts.append((time.perf_counter() - t) / inner)
    return float(np.median(ts))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    p.add_argument("--repeats", type=int, default=7)
    args = p.parse_args()
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # numpy then uses its default thread count
        threadpool_limits = None
    rng = np.random.default_rng(0)
    # name, M, N, K, trans_b, packed repetitions (0: plain gemm per call)
    cases = [(f"square {n}", n, n, n, False, 0) for n in (256, 512, 1024, 2048)] + [
        ("x w_ih^T T*B=4096", 4096, 1024, 128, True, 0),
        ("h w_hh^T B=32", 32, 1024, 256, True, 0),
        ("h w_hh^T B=32 packed", 32, 1024, 256, True, 200),
        ("h w_hh^T B=1 packed", 1, 1024, 256, True, 2000),
        ("h w_hh^T B=1", 1, 1024, 256, True, 0),
    ]
    print(f"isa {seqkern.get_isa()}  numpy {np.__version__}")
    print(f"{'shape':24s} {'thr':>3s} {'numpy GF/s':>11s} {'seqkern GF/s':>13s} {'ratio':>6s} {'us/call':>9s}")
    for name, m, n, k, trans_b, reps in cases:
        a = rng.standard_normal((m, k)).astype(np.float32)
        b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(np.float32)
        flops = 2.0 * m * n * k
        for th in args.threads:
            bt = b.T if trans_b else b
            if threadpool_limits is not None:
                with threadpool_limits(th):
                    tn = median_time(lambda: np.matmul(a, bt), args.repeats)
            else:
                tn = median_time(lambda: np.matmul(a, bt), args.repeats)
            time.sleep(0.3)
            if reps:
                ts = median_time(lambda: _core._matmul(a, b, False, trans_b, th, reps), args.repeats, reps)
            else:
                ts = median_time(lambda: _core._matmul(a, b, False, trans_b, th), args.repeats)
            time.sleep(0.3)
            print(f"{name:24s} {th:3d} {flops / tn / 1e9:11.1f} {flops / ts / 1e9:13.1f} {tn / ts:6.2f} {ts * 1e6:9.1f}")


if __name__ == "__main__":
    main()
