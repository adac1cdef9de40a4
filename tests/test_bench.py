"""The benchmark's machinery on tiny shapes: structure of the report and the JSON, never timings."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

import seqkern
from seqkern import bench

ROW_KEYS = {"op", "shape", "dims", "isa", "threads", "ms", "flops", "gflops", "bytes", "gbps",
            "pct_matmul", "impl_ms", "ratios", "repeats", "calls_per_repeat"}


@pytest.fixture(autouse=True)
def _no_openvino_under_asan(monkeypatch):
    # OpenVINO's CPU plugin aborts while compiling a model under the preloaded ASan runtime of
    # tools/sanitize.sh (inside compile_model, before any seqkern code runs): there the benchmark
    # runs without it. The plain suite runs it.
    if os.environ.get("SEQKERN_SANITIZED"):
        # import_peers reads the mapping in seqkern.bench.peers, the module that defines it.
        monkeypatch.setattr(bench.peers, "PEER_MODULES", {k: v for k, v in bench.PEER_MODULES.items() if k != "openvino"})


def run_json(tmp_path, *args: str) -> dict:
    path = tmp_path / "bench.json"
    assert bench.main(["--smoke", "--threads", "2", "--json", str(path), *args]) == 0
    return json.loads(path.read_text())


def positive(x) -> bool:
    return isinstance(x, float) and math.isfinite(x) and x > 0


def test_smoke_json_covers_every_entry(tmp_path, capsys):
    doc = run_json(tmp_path, "--no-peers")
    out = capsys.readouterr().out

    assert {"machine", "versions", "isa_info", "threads", "matmul", "rows", "skipped",
            "errors"} <= doc.keys()
    assert doc["threads"] == 2
    assert doc["isa_info"]["current"] == seqkern.get_isa()
    assert {"cpu", "logical_cpus", "platform"} <= doc["machine"].keys()
    assert {"numpy", "torch", "onnxruntime", "seqkern"} <= doc["versions"].keys()
    assert positive(doc["matmul"]["gflops"]["2"]) and positive(doc["matmul"]["gflops"]["1"])
    assert doc["errors"] == []

    entries = bench.build_entries(smoke=True)
    scaled = [e for e in entries if e.scaling]
    assert len(doc["rows"]) == len(entries) + len(scaled)
    assert doc["skipped"] == []

    for row in doc["rows"]:
        assert ROW_KEYS <= row.keys()
        assert row["isa"] == seqkern.get_isa()
        assert positive(row["ms"]) and row["impl_ms"]["seqkern"] == row["ms"]
        assert all(positive(r) for r in row["ratios"].values())
        assert sum(row[k] is not None for k in ("gflops", "gbps", "tokens_per_s")) == 1
        if row["threads"] == 2:
            # every kernel has a NumPy baseline; the training row compares with PyTorch only
            assert ("numpy" in row["ratios"]) == (row["op"] != "nn_train_sst2_model")
            assert "torch" not in row["ratios"] and "ort" not in row["ratios"]
        assert row["op"] in out
    for e in scaled:
        rows = [r for r in doc["rows"] if (r["op"], r["shape"]) == (e.op, e.shape)]
        assert sorted(r["threads"] for r in rows) == [1, 2]
        assert positive(next(r for r in rows if r["threads"] == 2)["ratios"]["1thr"])


def test_peers_columns(tmp_path, capsys):
    pytest.importorskip("torch")
    doc = run_json(tmp_path, "--op", "softmax")
    assert doc["rows"] and doc["errors"] == []
    ort = all(doc["versions"][k][0].isdigit() for k in ("onnxruntime", "onnx"))
    for row in doc["rows"]:
        assert positive(row["ratios"]["torch"])
        if row["op"] == "softmax" and ort:
            assert positive(row["ratios"]["ort"])
    assert "xtorch" in capsys.readouterr().out


def test_op_filter_and_all_isas(tmp_path):
    doc = run_json(tmp_path, "--no-peers", "--op", "softmax_backward", "--all-isas")
    assert {r["op"] for r in doc["rows"]} == {"softmax_backward"}
    others = set(seqkern.available_isas()) - {seqkern.get_isa()}
    for row in doc["rows"]:
        assert others <= row["ratios"].keys()


def test_op_matching():
    assert bench.op_matches("lstm_forward", "lstm")
    assert bench.op_matches("lstm_forward+backward", "lstm_forward")
    assert bench.op_matches("lstm_forward+backward", "lstm_backward")
    assert not bench.op_matches("lstm_forward", "lstm_backward")
    assert not bench.op_matches("softmax_backward", "softmax_forward")
    assert bench.op_matches("attention_pool_forward", "attention_pool")
    assert not bench.op_matches("additive_attention_forward", "attention")


def test_unknown_op_is_an_error(capsys):
    assert bench.main(["--smoke", "--op", "nonesuch"]) == 2
    assert "no op matches nonesuch" in capsys.readouterr().err


def test_quick_is_a_subset():
    full = {(e.op, e.shape) for e in bench.build_entries()}
    quick = bench.build_entries(quick=True)
    assert quick and {(e.op, e.shape) for e in quick} < full
    assert all(e.quick for e in quick)


def test_flop_formulas():
    T, B, D, H = 128, 32, 128, 256
    assert bench.lstm_flops(T, B, D, H) == 2 * T * B * (4 * H) * (D + H)
    assert bench.attention_flops(8, 8, 512, 512, 64) == 4 * 8 * 8 * 512 * 512 * 64
    entries = {(e.op, e.shape): e for e in bench.build_entries()}
    fwd = entries[("lstm_forward", "T=128 B=32 D=128 H=256")]
    train = entries[("lstm_forward+backward", "T=128 B=32 D=128 H=256")]
    assert train.flops == 3 * fwd.flops


def test_time_call_counts_calls():
    calls = []
    t = bench.time_call(lambda: calls.append(1), repeats=5, warmup=2, min_repeat_s=0.0)
    assert (t.repeats, t.number, len(calls)) == (5, 1, 7)
    calls.clear()
    # Every call counts as slow here: at most 3 repeats, never more than asked.
    t = bench.time_call(lambda: calls.append(1), repeats=7, warmup=2, min_repeat_s=0.0,
                        slow_s=0.0)
    assert (t.repeats, len(calls)) == (3, 5)
    assert bench.time_call(lambda: None, repeats=2, warmup=1, slow_s=0.0).repeats == 2


def test_format_table_columns():
    row = {"op": "softmax", "shape": "(4, 8) axis=-1", "isa": "avx512", "threads": 2,
           "ms": 0.5, "gflops": None, "gbps": 1.25, "pct_matmul": None,
           "ratios": {"torch": 2.0, "numpy": 4.0}}
    head, line = bench.format_table([row])
    assert head.split()[-2:] == ["xnumpy", "xtorch"]  # NumPy first, then the peers
    assert "500.0 us" in line and "1.2 GB/s" in line and line.split()[-2:] == ["4.00", "2.00"]


def test_plot_needs_matplotlib(tmp_path, capsys):
    path = tmp_path / "ratios.png"
    assert bench.main(["--smoke", "--no-peers", "--op", "softmax", "--plot", str(path)]) == 0
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "matplotlib is not installed" in capsys.readouterr().err
        assert not path.exists()
    else:
        assert path.stat().st_size > 0


def test_thread_settings_restored():
    before = seqkern.get_num_threads()
    bench.main(["--smoke", "--no-peers", "--op", "softmax", "--threads", "1"])
    assert seqkern.get_num_threads() == before


def test_module_entry_point():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [os.path.dirname(os.path.dirname(seqkern.__file__)), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-m", "seqkern", "bench", "--smoke", "--no-peers", "--op", "softmax"],
        capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "softmax" in proc.stdout and "xnumpy" in proc.stdout
    assert "[ 1/" in proc.stderr  # progress, one line per item


def test_header_names_isa_caches_and_load(capsys):
    assert bench.main(["--smoke", "--no-peers", "--op", "softmax", "--threads", "1"]) == 0
    out = capsys.readouterr().out
    c = seqkern.cache_sizes()
    assert f"seqkern ISA: {seqkern.get_isa()}" in out
    assert f"L2 {bench.cache_line(c).split('L2 ')[1]}" in out and "load average" in out
    assert "check: every peer's result is compared" in out


def test_cache_line_sizes():
    line = bench.cache_line({"l1d": 32 << 10, "l2": 512 << 10, "l3": 32 << 20, "source": "sysfs"})
    assert line == "L1d 32 KiB, L2 512 KiB, L3 32 MiB (sysfs)"


def test_primary_takes_the_first_float_array():
    y = np.ones((2, 3), np.float32)
    assert bench.check.primary((y, np.zeros(2), "cache")) is y
    assert bench.check.primary([None, (np.arange(3), y)]) is y  # ints are skipped
    assert bench.check.primary(None) is None and bench.check.primary(1.5) is None


def test_disagreement():
    dis = bench.check.disagreement
    y = np.linspace(-1, 1, 24, dtype=np.float32).reshape(2, 3, 4)
    assert dis(y, y[:, None]) is None  # ONNX's direction axis is dropped
    assert dis(y, y + 1e-5) is None
    assert "max difference" in dis(y, y + 0.1)
    assert "values where seqkern gives" in dis(y, y[0])
    bad = y.copy()
    bad[0, 0, 0] = np.nan
    assert dis(y, bad) == "non-finite values in other places"


def test_check_drops_a_peer_that_disagrees():
    y = np.arange(6, dtype=np.float32)
    impls = {"seqkern": lambda: (y, "cache"), "numpy": lambda: y + 1e-6, "torch": lambda: y[::-1].copy(),
             "ort": lambda: None}
    res = bench.Results()
    entry = bench.Entry("softmax", {"x": (6,), "axis": -1}, bench.setup_softmax)
    bench.check_peers(impls, entry, res)
    assert set(impls) == {"seqkern", "numpy", "ort"}
    assert len(res.errors) == 1 and "torch disagrees with seqkern" in res.errors[0]
    assert res.unchecked == [f"softmax {entry.shape}: ort"]


def test_peers_agree_with_seqkern(tmp_path):
    # With every installed peer: the smoke suite's check passes for all of them (a wrong adapter,
    # e.g. ONNX's gate order, would show up here as an error).
    pytest.importorskip("torch")
    doc = run_json(tmp_path, "--op", "lstm")
    assert doc["check"] is True and doc["errors"] == []
    for row in doc["rows"]:
        if row["threads"] == 2:
            assert "torch" in row["ratios"]
