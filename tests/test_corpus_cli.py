"""``python -m seqkern predict``: output format, ids, partitions, errors, bounded memory, and a
resumed run after ``kill -9`` that ends byte-identical to an uninterrupted one."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from predict_support import LABELS, make_model, read_scores, texts, write_corpus

import seqkern
from seqkern import nn
from seqkern.score import main, partition_bounds

# Where the seqkern these tests import lives (the source tree in development, site-packages in CI).
PYTHON_DIR = str(Path(seqkern.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model") / "m.npz")


def _child_env():
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


def _predict(*args) -> int:
    return main([str(a) for a in args] + ["--no-progress"])


def test_scores_every_line_in_order(tmp_path, model_file):
    corpus = write_corpus(tmp_path / "c.txt", 700)
    out = tmp_path / "s.tsv"
    assert _predict("--model", model_file, "--input", tmp_path / "c.txt", "--output", out,
                    "--partition-size", 2000) == 0
    header, ids, labels, proba = read_scores(out)
    assert header == ["id", "label"] + [f"p_{lab}" for lab in LABELS]
    assert ids == list(range(1, 701))
    expected = nn.Predictor.load(model_file).predict_proba(corpus)
    np.testing.assert_allclose(proba, expected, atol=6e-7, rtol=0)
    # The label is the argmax before rounding; near-ties may print equal probabilities.
    assert np.mean([a == LABELS[k] for a, k in zip(labels, expected.argmax(axis=1))]) > 0.99
    assert not (tmp_path / "s.tsv.parts").exists()


def test_output_does_not_depend_on_partitioning_except_batches(tmp_path, model_file):
    """Partitions of any size cover every line once: the same ids and labels either way."""
    write_corpus(tmp_path / "c.txt", 400, seed=3)
    for size in (300, 5000, 10**9):
        assert _predict("--model", model_file, "--input", tmp_path / "c.txt", "--output", tmp_path / f"{size}.tsv",
                        "--partition-size", size) == 0
    ref = read_scores(tmp_path / f"{10**9}.tsv")
    for size in (300, 5000):
        got = read_scores(tmp_path / f"{size}.tsv")
        assert got[1] == ref[1]
        np.testing.assert_allclose(got[3], ref[3], atol=2e-6)


def test_partition_bounds_cover_each_line_once(tmp_path):
    path = tmp_path / "c.txt"
    path.write_bytes(b"a\nbb\n\nccccccccccc\nd")
    data = path.read_bytes()
    for size in range(1, len(data) + 2):
        bounds = partition_bounds(str(path), size)
        assert bounds[0][0] == 0 and bounds[-1][1] == len(data)
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
        for start, _end in bounds:
            assert start == 0 or data[start - 1:start] == b"\n"
    assert partition_bounds(str(tmp_path / "c.txt"), 10**6) == [(0, len(data))]


def test_tsv_column_header_and_no_trailing_newline(tmp_path, model_file):
    corpus = texts(50, seed=4)
    lines = ["id\ttext\tother"] + [f"r{i}\t{t}\t0" for i, t in enumerate(corpus)]
    (tmp_path / "c.tsv").write_bytes(("\r\n".join(lines)).encode())
    out = tmp_path / "s.tsv"
    assert _predict("--model", model_file, "--input", tmp_path / "c.tsv", "--text-column", 1, "--header",
                    "--output", out, "--partition-size", 300) == 0
    _, ids, _, proba = read_scores(out)
    assert ids == list(range(2, 52))  # line numbers of the input; the header is line 1
    np.testing.assert_allclose(proba, nn.Predictor.load(model_file).predict_proba(corpus), atol=2e-6)


def test_empty_input_gives_the_header_only(tmp_path, model_file):
    (tmp_path / "empty.txt").write_bytes(b"")
    assert _predict("--model", model_file, "--input", tmp_path / "empty.txt", "--output", tmp_path / "s.tsv") == 0
    assert (tmp_path / "s.tsv").read_text() == "id\tlabel\t" + "\t".join(f"p_{lab}" for lab in LABELS) + "\n"


def test_errors_name_the_argument(tmp_path, model_file, capsys):
    write_corpus(tmp_path / "c.tsv", 20, tsv=True)
    write_corpus(tmp_path / "c.txt", 20)
    out = tmp_path / "s.tsv"
    cases = [
        (["--model", tmp_path / "absent.npz", "--input", tmp_path / "c.txt"], "--model"),
        (["--model", model_file, "--input", tmp_path / "absent.txt"], "--input"),
        (["--model", model_file, "--input", tmp_path / "c.tsv", "--text-column", 5], "--text-column 5 needs at least 6"),
        (["--model", model_file, "--input", tmp_path / "c.txt", "--text-column", 1], "needs TSV input"),
        (["--model", model_file, "--input", tmp_path / "c.txt", "--batch-size", 0], "--batch-size must be >= 1"),
        (["--model", make_model(tmp_path / "nv.npz", vocab=False), "--input", tmp_path / "c.txt"], "no vocabulary"),
    ]
    for args, msg in cases:
        assert _predict(*args, "--output", out) == 2
        assert msg in capsys.readouterr().err
        assert not out.exists()
    (tmp_path / "bad.txt").write_bytes(b"fine\nnot \xff utf-8\n")
    assert _predict("--model", model_file, "--input", tmp_path / "bad.txt", "--output", out) == 2
    assert "the line at byte 5 is not valid UTF-8" in capsys.readouterr().err
    assert _predict("--model", model_file, "--input", tmp_path / "c.txt", "--output", tmp_path / "no" / "s.tsv") == 2
    assert "does not exist" in capsys.readouterr().err


def test_model_without_labels_says_so(tmp_path, capsys):
    write_corpus(tmp_path / "c.txt", 10)
    model = make_model(tmp_path / "nl.npz", labels=None)
    assert _predict("--model", model, "--input", tmp_path / "c.txt", "--output", tmp_path / "s.tsv") == 0
    assert "names no labels" in capsys.readouterr().err
    header, _, labels, _ = read_scores(tmp_path / "s.tsv")
    assert header[2:] == ["p_0", "p_1", "p_2"] and set(labels) <= {"0", "1", "2"}


def test_workers_without_dask_say_what_is_needed(tmp_path, model_file, monkeypatch, capsys):
    write_corpus(tmp_path / "c.txt", 10)
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert _predict("--model", model_file, "--input", tmp_path / "c.txt", "--output", tmp_path / "s.tsv",
                    "--workers", 2) == 2
    assert "runs on Dask, which is not installed" in capsys.readouterr().err


def test_other_run_parts_are_refused_then_restarted(tmp_path, model_file, capsys):
    write_corpus(tmp_path / "c.txt", 200)
    out = tmp_path / "s.tsv"
    parts = tmp_path / "s.tsv.parts"
    parts.mkdir()
    (parts / "manifest.json").write_text(json.dumps({"version": 1, "input_size": 1}))
    (parts / "part-00000.tsv").write_text("#lines\t1\n0\tneg\t1\t0\t0\n")
    assert _predict("--model", model_file, "--input", tmp_path / "c.txt", "--output", out) == 2
    err = capsys.readouterr().err
    assert "holds parts of another run" in err and "--restart" in err
    assert _predict("--model", model_file, "--input", tmp_path / "c.txt", "--output", out, "--restart") == 0
    assert read_scores(out)[1] == list(range(1, 201))


def test_a_second_concurrent_run_is_refused(tmp_path, model_file, capsys):
    import fcntl

    write_corpus(tmp_path / "c.txt", 10)
    parts = tmp_path / "s.tsv.parts"
    parts.mkdir()
    with open(parts / "lock", "w") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        fh.write("12345")
        fh.flush()
        assert _predict("--model", model_file, "--input", tmp_path / "c.txt", "--output", tmp_path / "s.tsv") == 2
    assert "another run (pid 12345)" in capsys.readouterr().err
    assert not (tmp_path / "s.tsv").exists()


def test_resume_after_kill_9_is_byte_identical(tmp_path, model_file):
    write_corpus(tmp_path / "c.txt", 12_000, seed=7)
    args = ["--model", model_file, "--input", tmp_path / "c.txt", "--partition-size", 8000, "--threads", 1]
    ref = tmp_path / "ref.tsv"
    assert _predict(*args, "--output", ref) == 0
    out = tmp_path / "s.tsv"
    parts = tmp_path / "s.tsv.parts"
    cmd = [sys.executable, "-m", "seqkern", "predict", *map(str, args), "--output", str(out), "--no-progress"]
    proc = subprocess.Popen(cmd, env=_child_env())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if parts.exists() and len(list(parts.glob("part-*.tsv"))) >= 3:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = sorted(p.name for p in parts.glob("part-*.tsv"))
    n_parts = len(partition_bounds(str(tmp_path / "c.txt"), 8000))
    assert 3 <= len(done) < n_parts and not out.exists()
    rerun = subprocess.run(cmd, env=_child_env(), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert out.read_bytes() == ref.read_bytes()
    assert not parts.exists()
    with open(out, "rb") as fh:
        assert sum(1 for _ in fh) == 12_001


def _peak_rss_kib(args) -> int:
    code = ("import resource, sys; from seqkern.score import main; rc = main(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(rc)")
    res = subprocess.run([sys.executable, "-c", code, *map(str, args), "--no-progress"], env=_child_env(),
                         capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return int(res.stdout.split()[-1])


def test_memory_is_bounded_by_the_partition_not_the_input(tmp_path, model_file):
    """A 48 MB corpus (long words, so the kernels have little to do) scored in 256 KiB partitions
    peaks at about the RSS of scoring a tiny file: memory does not grow with the input."""
    rng = np.random.default_rng(0)
    line = (" ".join("x" * 390 + str(i) for i in range(10)) + "\n").encode()
    block = b"".join(line[:-1] + (b" w%d\n" % k) for k in rng.integers(0, 300, size=1000))
    big = tmp_path / "big.txt"
    with open(big, "wb") as fh:
        for _ in range(48 * 1024 * 1024 // len(block) + 1):
            fh.write(block)
    small = tmp_path / "small.txt"
    small.write_bytes(block[: 256 * 1024].rsplit(b"\n", 1)[0] + b"\n")
    common = ["--model", model_file, "--partition-size", 256 * 1024, "--threads", 1]
    base = _peak_rss_kib(common + ["--input", small, "--output", tmp_path / "small.tsv"])
    peak = _peak_rss_kib(common + ["--input", big, "--output", tmp_path / "big.tsv"])
    size_kib = big.stat().st_size // 1024
    assert size_kib > 48 * 1024
    assert peak - base < 16 * 1024, f"peak RSS {peak} KiB vs {base} KiB for a tiny file ({size_kib} KiB input)"
