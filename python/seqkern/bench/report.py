"""The benchmark's report: machine information, the summary table, the ratio plot and the row
(one dict per timed entry, as printed and written to the JSON)."""

from __future__ import annotations

import os
import platform

import numpy as np

from .peers import PEERS
from .suite import Entry
from .timing import Timing


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    blas = "?"
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]["name"]
    except Exception:  # older NumPy: no dict mode
        pass
    try:
        load = list(os.getloadavg())
    except (AttributeError, OSError):  # not on every platform
        load = [0.0, 0.0, 0.0]
    return {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": usable,
            "platform": platform.platform(), "numpy_blas": blas, "load": load}


def cache_line(cache: dict) -> str:
    """``L1d 32 KiB, L2 512 KiB, L3 32 MiB (sysfs)``: the sizes the kernels block for."""
    def size(n: int) -> str:
        return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10} KiB"
    return f"L1d {size(cache['l1d'])}, L2 {size(cache['l2'])}, L3 {size(cache['l3'])} ({cache['source']})"


def fmt_time(ms: float) -> str:
    return f"{ms * 1e3:.1f} us" if ms < 1 else f"{ms:.2f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}" if r < 10 else f"{r:.1f}"


def ratio_keys(rows: list[dict]) -> list[str]:
    keys = [k for k in PEERS if any(k in r["ratios"] for r in rows)]
    return keys + sorted({k for r in rows for k in r["ratios"]} - set(keys))


def format_table(rows: list[dict]) -> list[str]:
    """The summary table: one line per row, ratio columns for every baseline that appears."""
    keys = ratio_keys(rows)
    head = ["op", "shape", "isa", "thr", "time", "rate", "%mm"] + ["x" + k for k in keys]
    body = []
    for r in rows:
        rate = (f"{r['gflops']:.1f} GFLOP/s" if r["gflops"] is not None
                else f"{r['gbps']:.1f} GB/s" if r["gbps"] is not None
                else f"{r['tokens_per_s'] / 1e3:.1f} ktok/s" if r["tokens_per_s"] is not None else "-")
        pct = "-" if r["pct_matmul"] is None else f"{r['pct_matmul']:.0f}%"
        body.append([r["op"], r["shape"], r["isa"], str(r["threads"]), fmt_time(r["ms"]), rate,
                     pct] + [fmt_ratio(r["ratios"].get(k)) for k in keys])
    widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]
    left = 2  # op and shape are left-aligned, numbers right-aligned

    def join(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [join(head)] + [join(b) for b in body]


def plot_ratios(rows: list[dict], path: str, title: str = "") -> None:
    """Horizontal bars of every row's ratios, log scale, with the break-even line at 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["ratios"]]
    keys = ratio_keys(rows)
    labels = [f"{r['op']} {r['shape']} ({r['threads']}t)" for r in rows]
    height = 0.8 / max(1, len(keys))
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.3 * len(rows) * max(1, len(keys)) ** 0.5))
    for j, key in enumerate(keys):
        ys = [i + j * height for i, r in enumerate(rows) if key in r["ratios"]]
        xs = [r["ratios"][key] for r in rows if key in r["ratios"]]
        ax.barh(ys, xs, height=height, label="x" + key)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("baseline time / seqkern time (> 1: seqkern faster)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def make_row(entry: Entry, isa: str, threads: int, times: dict[str, Timing],
             matmul: dict[int, float]) -> dict:
    ms = {k: t.seconds * 1e3 for k, t in times.items()}
    s = times["seqkern"].seconds
    gflops = entry.flops / s / 1e9 if entry.flops else None
    rate = matmul.get(threads)
    return {
        "op": entry.op, "shape": entry.shape,
        "dims": {k: list(v) if isinstance(v, tuple) else v for k, v in entry.dims.items()},
        "isa": isa, "threads": threads, "ms": ms["seqkern"],
        "flops": entry.flops or None, "gflops": gflops,
        "bytes": entry.bytes or None, "gbps": entry.bytes / s / 1e9 if entry.bytes else None,
        "tokens_per_s": entry.tokens / s if entry.tokens else None,
        "pct_matmul": 100 * gflops / rate if gflops and rate else None,
        "impl_ms": ms,
        "ratios": {k: v / ms["seqkern"] for k, v in ms.items() if k != "seqkern"},
        "repeats": times["seqkern"].repeats, "calls_per_repeat": times["seqkern"].number,
    }
