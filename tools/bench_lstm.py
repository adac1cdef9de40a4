"""LSTM timings on a shared machine: CPU time of the calling thread, medians, peers in the same run.

    PYTHONPATH=python python3 tools/bench_lstm.py [--threads 1] [--repeats 9] [--ops fwd train step]
        [--peers torch ort] [--shapes 128,32,128,256 ...]

With one thread every time is `time.thread_time()` of the calling thread (other jobs on the
machine then cost nothing but cache pollution). With more threads the process CPU time and the
wall time are both shown: CPU time counts the work of every thread, wall time the speed-up.
Each repeat times every implementation once, in turn (so load swings hit all of them alike),
with the same setups as `python -m seqkern bench` (seqkern.bench). The matmul rate is NumPy's
float32 1024^3 product measured the same way in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

import seqkern
from seqkern import bench

SHAPES = [(128, 32, 128, 256), (256, 1, 64, 128), (64, 64, 256, 512), (512, 16, 128, 128)]


def timer(threads: int):
    if threads == 1:
        return time.thread_time
    return time.process_time


def measure(impls: dict, repeats: int, threads: int, inner: dict) -> dict:
    clock = timer(threads)
    for f in impls.values():
        f()  # warm-up
    cpu = {k: [] for k in impls}
    wall = {k: [] for k in impls}
    for _ in range(repeats):
        for k, f in impls.items():
            n = inner.get(k, 1)
            c0, w0 = clock(), time.perf_counter()
            for _ in range(n):
                f()
            cpu[k].append((clock() - c0) / n)
            wall[k].append((time.perf_counter() - w0) / n)
            if threads > 1:
                time.sleep(0.05)  # let spinning peer threads go idle
    return {k: (statistics.median(cpu[k]), statistics.median(wall[k])) for k in impls}


def matmul_rate(threads: int, repeats: int) -> float:
    n = 1024
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    r = measure({"mm": lambda: a @ a}, repeats, threads, {})["mm"]
    t = r[0] if threads == 1 else r[1]
    return 2 * n**3 / t / 1e9


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--ops", nargs="+", default=["fwd", "train", "step"])
    p.add_argument("--peers", nargs="*", default=["torch", "ort"])
    p.add_argument("--shapes", nargs="*", default=None)
    args = p.parse_args()
    shapes = [tuple(int(v) for v in s.split(",")) for s in args.shapes] if args.shapes else SHAPES
    mods, _ = bench.import_peers(True)
    ctx = bench.Context(threads=args.threads)
    if "torch" in args.peers:
        ctx.torch = mods.get("torch")
    if "ort" in args.peers and "onnxruntime" in mods and "onnx" in mods:
        ctx.ort, ctx.onnx = mods["onnxruntime"], mods["onnx"]
    control = bench.ThreadControl(ctx.torch)
    control.set(args.threads)
    try:
        rate = matmul_rate(args.threads, args.repeats)
        what = "thread CPU time" if args.threads == 1 else "process CPU time / wall time"
        print(f"isa {seqkern.get_isa()} threads {args.threads} ({what}); numpy matmul {rate:.1f} GFLOP/s")
        for op in args.ops:
            rows = [(1, 128, 256)] if op == "step" else shapes
            for shape in rows:
                if op == "step":
                    B, D, H = shape
                    d = dict(B=B, D=D, H=H)
                    impls = bench.setup_lstm_step(d, ctx)
                    flops = bench.lstm_flops(1, B, D, H)
                    inner = {k: 200 for k in impls}
                else:
                    T, B, D, H = shape
                    d = dict(T=T, B=B, D=D, H=H)
                    setup = bench.setup_lstm_forward if op == "fwd" else bench.setup_lstm_train
                    impls = setup(d, ctx)
                    impls.pop("numpy", None)
                    flops = bench.lstm_flops(T, B, D, H) * (1 if op == "fwd" else 3)
                    inner = {}
                res = measure(impls, args.repeats, args.threads, inner)
                sk_cpu, sk_wall = res["seqkern"]
                t = sk_cpu if args.threads == 1 else sk_wall
                gf = flops / t / 1e9
                parts = [f"{op:5s} {str(shape):22s} seqkern {t * 1e3:9.4f} ms {gf:6.1f} GF/s {100 * gf / rate:5.1f}%"]
                if args.threads > 1:
                    parts.append(f"(cpu {sk_cpu * 1e3:.3f} ms)")
                for k, (c, w) in res.items():
                    if k == "seqkern":
                        continue
                    pt = c if args.threads == 1 else w
                    parts.append(f"{k} {pt * 1e3:.4f} ms x{pt / t:.2f}")
                print("  ".join(parts), flush=True)
    finally:
        control.restore()


if __name__ == "__main__":
    main()
