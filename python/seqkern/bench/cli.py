"""``python -m seqkern bench``'s command line: the arguments, the run over the suite (with the
``--check`` of every peer before timing) and the printed report, JSON and plot."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
import time
import zlib
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

import seqkern

from . import check
from .peers import Context, import_peers
from .report import cache_line, fmt_time, format_table, machine_info, make_row, plot_ratios
from .suite import Entry, build_entries, op_matches
from .timing import ThreadControl, Timing, matmul_rate, time_call


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m seqkern bench",
        description="Time seqkern's kernels against the NumPy reference, PyTorch and ONNX Runtime "
                    "(where installed). Ratios are baseline time / seqkern time: > 1 means seqkern "
                    "is faster.")
    p.add_argument("--quick", action="store_true", help="a small subset (under a minute)")
    p.add_argument("--op", action="append", metavar="NAME", default=[],
                   help="only these ops (repeatable): an op name such as lstm_forward, a family "
                        "such as lstm or attention, or lstm_backward for the forward+backward rows")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for seqkern and every peer (default: seqkern.get_num_threads())")
    p.add_argument("--repeats", type=int, default=None, metavar="N",
                   help="timed repeats per item (default 7)")
    p.add_argument("--json", metavar="FILE", help="write rows, machine and version info as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of the ratios (needs matplotlib)")
    p.add_argument("--no-peers", action="store_true", help="skip PyTorch, ONNX Runtime and OpenVINO")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="do not compare each peer's result with seqkern's before timing it")
    p.add_argument("--all-isas", action="store_true",
                   help="also time seqkern at every other available ISA level (x<level> columns)")
    p.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # tiny, for the tests
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def log(msg: str) -> None:
    """Progress and notes go to stderr, so stdout holds only the report."""
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Settings:
    threads: int
    repeats: int
    warmup: int
    pause: float  # seconds between items, so BLAS/OpenMP threads stop spinning
    min_repeat_s: float
    matmul_n: int
    other_isas: list[str]
    scaling: bool  # time the GEMM-bound entries at 1 thread too
    check: bool = True  # compare every peer's result with seqkern's before timing


@dataclass
class Results:
    matmul: dict[int, float] = field(default_factory=dict)  # threads -> GFLOP/s
    rows: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # "op shape: peer" whose result has no array


def check_peers(impls: dict[str, Callable], entry: Entry, res: Results) -> None:
    """--check: runs every implementation once and drops (with an error line) each peer whose
    result differs from seqkern's; a peer whose result holds no array is listed as unchecked."""
    expected = check.primary(impls["seqkern"]())
    for name in [k for k in impls if k != "seqkern"]:
        try:
            got = check.primary(impls[name]())
        except Exception as e:  # a failing peer must not stop the suite
            res.errors.append(f"{entry.op} {entry.shape}: {name}: {type(e).__name__}: {e}")
            del impls[name]
            continue
        if expected is None or got is None:
            res.unchecked.append(f"{entry.op} {entry.shape}: {name}")
            continue
        why = check.disagreement(expected, got, entry.tolerance)
        if why:
            res.errors.append(f"{entry.op} {entry.shape}: {name} disagrees with seqkern ({why}); not timed")
            log(f"  {name} disagrees with seqkern: {why}")
            del impls[name]


def run_suite(entries: list[Entry], ctx: Context, control: ThreadControl, cfg: Settings) -> Results:
    """Times every entry (and the matmul rate first), logging one line per item as it completes."""
    res = Results()
    isa = seqkern.get_isa()

    def measure_matmul(n_threads: int) -> None:
        control.set(n_threads)
        time.sleep(cfg.pause)
        res.matmul[n_threads] = matmul_rate(cfg.matmul_n, cfg.repeats, cfg.warmup)
        log(f"matmul float32 {cfg.matmul_n}^3 (numpy), {n_threads} thread(s): "
            f"{res.matmul[n_threads]:.1f} GFLOP/s")
        control.set(cfg.threads)

    def timed(name: str, fn: Callable, entry: Entry) -> Timing | None:
        time.sleep(cfg.pause)
        try:
            return time_call(fn, cfg.repeats, cfg.warmup, cfg.min_repeat_s)
        except Exception as e:  # a failing peer must not stop the suite
            res.errors.append(f"{entry.op} {entry.shape}: {name}: {type(e).__name__}: {e}")
            log(f"  {name} failed: {type(e).__name__}: {e}")
            return None

    measure_matmul(cfg.threads)
    if cfg.scaling and any(e.scaling for e in entries):
        measure_matmul(1)

    for index, entry in enumerate(entries, 1):
        tag = f"[{index:2d}/{len(entries)}] {entry.op} {entry.shape}"
        t0 = time.perf_counter()
        entry_ctx = replace(ctx, rng=np.random.default_rng(zlib.crc32(tag.encode())))
        try:
            impls = entry.setup(entry.dims, entry_ctx)
        except Exception as e:  # retry without peers so one peer's failure costs only its column
            res.errors.append(f"{entry.op} {entry.shape}: peer setup: {type(e).__name__}: {e}")
            log(f"  peer setup failed ({type(e).__name__}: {e}); timing without PyTorch/ORT")
            impls = entry.setup(entry.dims, replace(entry_ctx, torch=None, ort=None, onnx=None, openvino=None))
        if cfg.check:
            check_peers(impls, entry, res)
        times: dict[str, Timing] = {}
        for name, fn in impls.items():
            times[name] = timed(name, fn, entry)
        for level in cfg.other_isas:
            with seqkern.use_isa(level):
                times[level] = timed(level, impls["seqkern"], entry)
        times = {k: t for k, t in times.items() if t is not None}
        if "seqkern" not in times:
            res.skipped.append({"op": entry.op, "shape": entry.shape,
                                "reason": "the seqkern call failed"})
            continue
        row = make_row(entry, isa, cfg.threads, times, res.matmul)
        res.rows.append(row)
        parts = "  ".join(f"{k} {fmt_time(v)}" for k, v in row["impl_ms"].items())
        log(f"{tag}: {parts}  ({time.perf_counter() - t0:.1f} s)")
        if cfg.scaling and entry.scaling:
            control.set(1)
            t = timed("seqkern at 1 thread", impls["seqkern"], entry)
            control.set(cfg.threads)
            if t is not None:
                one = make_row(entry, isa, 1, {"seqkern": t}, res.matmul)
                res.rows.append(one)
                # Baseline "1thr" is seqkern itself at one thread, so x1thr is the speed-up
                # that all threads give.
                row["ratios"]["1thr"] = one["ms"] / row["ms"]
                log(f"{tag}: seqkern at 1 thread {fmt_time(one['ms'])}; {cfg.threads} threads "
                    f"are {row['ratios']['1thr']:.2f}x faster")
        del impls  # free this entry's inputs and sessions before the next one
    return res


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    threads = args.threads or seqkern.get_num_threads()
    entries = build_entries(quick=args.quick, smoke=args.smoke)
    if args.op:
        unknown = [n for n in args.op if not any(op_matches(e.op, n) for e in entries)]
        if unknown:
            ops = sorted({e.op for e in entries})
            log(f"bench: no op matches {', '.join(unknown)}; ops: {', '.join(ops)}")
            return 2
        entries = [e for e in entries if any(op_matches(e.op, n) for n in args.op)]
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            log(f"bench: --plot {args.plot}: matplotlib is not installed (pip install matplotlib);"
                " running without the plot")
            args.plot = None

    isa = seqkern.get_isa()
    cfg = Settings(
        threads=threads,
        repeats=args.repeats or (1 if args.smoke else 7),
        warmup=1 if args.smoke else 2,
        pause=0.0 if args.smoke else 0.3,
        min_repeat_s=0.0 if args.smoke else 0.005,
        matmul_n=64 if args.smoke else 1024 if args.quick else 2048,
        other_isas=[i for i in seqkern.available_isas() if i != isa] if args.all_isas else [],
        scaling=not args.quick and threads > 1,
        check=args.check,
    )
    modules, versions = import_peers(not args.no_peers)
    ctx = Context(threads=threads, torch=modules.get("torch"))
    if "onnx" in modules:
        ctx.onnx = modules["onnx"]
        ctx.ort, ctx.openvino = modules.get("onnxruntime"), modules.get("openvino")
    machine = machine_info()
    control = ThreadControl(ctx.torch)
    control.set(threads)
    info = seqkern.isa_info()

    print(f"seqkern {seqkern.__version__} benchmark: median of {cfg.repeats} repeats after "
          f"{cfg.warmup} warm-up calls; ratios = baseline time / seqkern time "
          "(> 1: seqkern faster)")
    print(f"CPU: {machine['cpu']} ({machine['usable_cpus']} usable of {machine['logical_cpus']} "
          f"logical CPUs), {machine['platform']}")
    print(f"seqkern ISA: {info['current']} (available {', '.join(info['available'])}; compiled "
          f"{', '.join(info['compiled'])}), OpenMP {'on' if info.get('openmp') else 'off'}; "
          f"threads: {threads} (seqkern, PyTorch, ONNX Runtime, OpenVINO, NumPy BLAS)")
    print(f"caches: {cache_line(info['cache'])}; load average {machine['load'][0]:.2f} "
          f"{machine['load'][1]:.2f} {machine['load'][2]:.2f} (1, 5, 15 min)")
    if machine["load"][0] > machine["usable_cpus"]:
        print(f"warning: the load average ({machine['load'][0]:.2f}) exceeds the {machine['usable_cpus']} "
              "usable CPUs: other work shares the cores, and these figures are not meaningful")
    v = {k: versions.get(k, "not used") for k in ("torch", "onnxruntime", "openvino", "onnx")}
    peers = (f"PyTorch {v['torch']}, ONNX Runtime {v['onnxruntime']}, OpenVINO {v['openvino']} "
             f"(onnx {v['onnx']})" if not args.no_peers
             else "PyTorch, ONNX Runtime and OpenVINO not used (--no-peers)")
    print(f"NumPy {versions['numpy']} ({machine['numpy_blas']}), {peers}")
    if control.blas_note:
        print("note: " + control.blas_note)
    if ("onnxruntime" in modules or "openvino" in modules) and "onnx" not in modules:
        print("note: onnx is not installed; the ONNX Runtime and OpenVINO columns need it to build their models")
    print("check: " + ("every peer's result is compared with seqkern's before timing (a peer that "
                       "disagrees is not timed)" if cfg.check else "off (--no-check)"))
    sys.stdout.flush()

    t_start = time.perf_counter()
    try:
        res = run_suite(entries, ctx, control, cfg)
    finally:
        control.restore()
    log(f"done in {time.perf_counter() - t_start:.1f} s")

    rates = ", ".join(f"{v:.1f} GFLOP/s at {k} thread{'s' if k > 1 else ''}"
                      for k, v in res.matmul.items())
    print(f"matmul float32 {cfg.matmul_n}^3 (numpy.matmul, median): {rates}; "
          "%mm = a row's GFLOP/s over this rate at the row's thread count")
    print()
    for line in format_table(res.rows):
        print(line)
    if res.skipped:
        print()
        for s in res.skipped:
            print(f"{s['op']} {s['shape']}: {s['reason']}")
    for e in res.errors:
        print("error: " + e)
    if res.unchecked:
        print("not checked (no array result to compare): " + "; ".join(res.unchecked))
    sys.stdout.flush()

    if args.json:
        doc = {
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "argv": argv, "quick": args.quick, "threads": threads,
            "repeats": cfg.repeats, "warmup": cfg.warmup,
            "machine": machine, "versions": versions, "isa_info": info,
            "matmul": {"n": cfg.matmul_n, "op": "numpy.matmul float32",
                       "gflops": {str(k): v for k, v in res.matmul.items()}},
            "rows": res.rows, "skipped": res.skipped, "errors": res.errors,
            "check": cfg.check, "unchecked": res.unchecked,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        log(f"wrote {args.json}")
    if args.plot:
        if res.rows:
            plot_ratios(res.rows, args.plot, f"seqkern {seqkern.__version__}, {isa}, {threads} "
                        f"threads, {machine['cpu']}")
            log(f"wrote {args.plot}")
        else:
            log(f"bench: --plot {args.plot}: no rows to plot")
    return 0
