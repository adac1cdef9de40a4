"""Scoring on Dask: a LocalCluster of 2 worker processes gives exactly the single-process result,
through the predict command (--scheduler, --workers) and the seqkern.dask helpers, also when a
worker is killed mid-run. Skipped when dask or distributed are not installed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("dask")
distributed = pytest.importorskip("distributed")

from predict_support import make_model, texts, write_corpus  # noqa: E402

import seqkern  # noqa: E402
from seqkern import nn  # noqa: E402
from seqkern.score import main  # noqa: E402

# Where the seqkern these tests import lives (the source tree in development, site-packages in CI).
PYTHON_DIR = str(Path(seqkern.__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def client():
    """One cluster for the module: starting worker processes is the slow part."""
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       env={"OMP_NUM_THREADS": "1"})
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("model") / "m.npz")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, model_file):
    """A generated corpus and its single-process scores (the reference every run must equal)."""
    folder = tmp_path_factory.mktemp("corpus")
    write_corpus(folder / "c.txt", 6000, seed=11)
    ref = folder / "ref.tsv"
    assert main(["--model", model_file, "--input", str(folder / "c.txt"), "--output", str(ref),
                 "--partition-size", "4000", "--threads", "1", "--no-progress"]) == 0
    return folder / "c.txt", ref.read_bytes()


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = PYTHON_DIR + os.pathsep + env.get("PYTHONPATH", "")
    return env


def test_scheduler_run_equals_the_single_process_run(client, model_file, corpus, tmp_path):
    path, ref = corpus
    out = tmp_path / "s.tsv"
    assert main(["--model", model_file, "--input", str(path), "--output", str(out), "--partition-size", "4000",
                 "--scheduler", client.scheduler.address, "--no-progress"]) == 0
    assert out.read_bytes() == ref


def test_workers_2_starts_a_local_cluster(model_file, corpus, tmp_path):
    path, ref = corpus
    out = tmp_path / "s.tsv"
    res = subprocess.run([sys.executable, "-m", "seqkern", "predict", "--model", model_file, "--input", str(path),
                          "--output", str(out), "--partition-size", "4000", "--workers", "2", "--no-progress"],
                         env=_env(), capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert out.read_bytes() == ref


def test_predict_bag_equals_the_predictor(client, model_file):
    import dask.bag as db

    from seqkern.dask import predict_bag

    pred = nn.Predictor.load(model_file)
    items = texts(2000, seed=12)
    bag = db.from_sequence(items, npartitions=4)
    parts = [items[i:i + 500] for i in range(0, 2000, 500)]
    got = predict_bag(bag, pred).compute()
    expected = np.concatenate([pred.predict_proba(p) for p in parts])
    assert [lab for lab, _ in got] == [pred.labels[k] for k in expected.argmax(axis=1)]
    np.testing.assert_array_equal(np.stack([p for _, p in got]), expected)
    # A predictor the caller scattered once is used as it is.
    [shared] = client.scatter([pred], broadcast=True)
    again = predict_bag(bag, shared).compute()
    np.testing.assert_array_equal(np.stack([p for _, p in again]), expected)
    with pytest.raises(TypeError, match="must be a dask.bag.Bag"):
        predict_bag(items, pred)


def test_predict_dataframe_keeps_the_index(client, model_file):
    dd = pytest.importorskip("dask.dataframe")
    import pandas as pd

    from seqkern.dask import predict_dataframe

    pred = nn.Predictor.load(model_file)
    items = texts(1200, seed=13)
    frame = pd.DataFrame({"review": items, "stars": np.arange(1200) % 5}, index=np.arange(1200) * 10)
    ddf = dd.from_pandas(frame, npartitions=3)
    got = predict_dataframe(ddf, pred, text_column="review").compute()
    assert list(got.columns) == ["label"] + pred.columns()
    np.testing.assert_array_equal(got.index.to_numpy(), frame.index.to_numpy())
    expected = np.concatenate([pred.predict_proba(items[i:i + 400]) for i in range(0, 1200, 400)])
    np.testing.assert_array_equal(got[pred.columns()].to_numpy(), expected)
    with pytest.raises(KeyError, match="'text' is not a column"):
        predict_dataframe(ddf, pred)


def test_ray_data_recipe():
    ray = pytest.importorskip("ray")
    pred = nn.Predictor.load(make_model(Path(os.environ.get("TMPDIR", "/tmp")) / f"ray-{os.getpid()}.npz"))
    items = texts(300, seed=14)
    ray.init(num_cpus=2, include_dashboard=False, ignore_reinit_error=True)
    try:
        ds = ray.data.from_items([{"text": t} for t in items])
        rows = ds.map_batches(pred.score_batch, batch_format="pandas", batch_size=100).to_pandas()
    finally:
        ray.shutdown()
    expected = np.concatenate([pred.predict_proba(items[i:i + 100]) for i in range(0, 300, 100)])
    np.testing.assert_allclose(rows[pred.columns()].to_numpy(), expected, atol=1e-6)


def test_a_worker_killed_mid_run_does_not_change_the_output(client, model_file, corpus, tmp_path):
    """Runs last in the module: the cluster's nanny restarts the killed worker."""
    path, ref = corpus
    out = tmp_path / "s.tsv"
    parts = tmp_path / "s.tsv.parts"
    cmd = [sys.executable, "-m", "seqkern", "predict", "--model", model_file, "--input", str(path),
           "--output", str(out), "--partition-size", "4000", "--scheduler", client.scheduler.address, "--no-progress"]
    with subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if parts.exists() and len(list(parts.glob("part-*.tsv"))) >= 2:
                break
            time.sleep(0.005)
        if proc.poll() is not None:
            pytest.fail(f"the run ended before a worker could be killed: {proc.communicate()[1]}")
        pids = client.run(os.getpid)
        victim = sorted(pids)[0]
        os.kill(pids[victim], signal.SIGKILL)
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    assert out.read_bytes() == ref
    client.wait_for_workers(2, timeout=60)
