"""ISA dispatch, overrides, threads."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
from checks import run_python

import seqkern
from seqkern import reference as ref

LEVELS = ["scalar", "avx2", "avx512"]


def test_default_is_highest_available():
    info = seqkern.isa_info()
    assert info["available"][0] == "scalar"
    assert set(info["available"]) <= set(info["compiled"]) <= set(LEVELS)
    if os.environ.get("SEQKERN_ISA") is None:
        assert seqkern.get_isa() == info["available"][-1]


def test_env_var_caps_level_in_subprocess():
    out = run_python("import seqkern; print(seqkern.get_isa())", SEQKERN_ISA="scalar")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "scalar"


def test_env_var_cap_above_available_takes_highest_below():
    out = run_python("import seqkern; print(seqkern.get_isa(), seqkern.available_isas()[-1])",
                      SEQKERN_ISA="avx512")
    assert out.returncode == 0, out.stderr
    current, highest = out.stdout.split()
    assert current == highest


def test_bad_env_value_fails_import_clearly():
    out = run_python("import seqkern", SEQKERN_ISA="sse9")
    assert out.returncode != 0
    assert "SEQKERN_ISA=sse9" in out.stderr and "scalar, avx2, avx512" in out.stderr


def test_set_isa_bogus_names_levels():
    with pytest.raises(ValueError, match="available: scalar"):
        seqkern.set_isa("bogus")
    with pytest.raises(TypeError):
        seqkern.set_isa(3)


def test_use_isa_restores(isa):
    before = seqkern.get_isa()
    with seqkern.use_isa("scalar"):
        assert seqkern.get_isa() == "scalar"
    assert seqkern.get_isa() == before == isa


def test_use_isa_restores_after_error():
    before = seqkern.get_isa()
    with pytest.raises(RuntimeError):
        with seqkern.use_isa("scalar"):
            raise RuntimeError("inside")
    assert seqkern.get_isa() == before


def test_every_level_gives_same_softmax_within_rounding(rng):
    x = rng.standard_normal((7, 45)).astype(np.float32)
    expected = ref.softmax(x.astype(np.float64))
    for level in seqkern.available_isas():
        with seqkern.use_isa(level):
            np.testing.assert_allclose(seqkern.softmax(x), expected, rtol=2e-6, atol=1e-7)


def test_set_num_threads_validates_and_round_trips():
    previous = seqkern.get_num_threads()
    try:
        seqkern.set_num_threads(1)
        assert seqkern.get_num_threads() == 1
    finally:
        seqkern.set_num_threads(previous)
    # Bounded on both sides (10**6 used to start hundreds of threads on two cores), with the
    # argument named; the setting is unchanged after a refusal.
    most = seqkern.max_num_threads()
    assert most >= 8
    for bad in (0, -1, most + 1, 10**6, 2**40):
        with pytest.raises(ValueError, match=rf"set_num_threads: n must lie in \[1, {most}\].*got {bad}"):
            seqkern.set_num_threads(bad)
    for bad in (1.5, True, "2", None):
        with pytest.raises(TypeError, match="set_num_threads: n must be an int"):
            seqkern.set_num_threads(bad)
    assert seqkern.get_num_threads() == previous


def test_omp_num_threads_is_honoured_in_subprocess():
    out = run_python("import seqkern; print(seqkern.get_num_threads(), seqkern.isa_info()['openmp'])",
                      OMP_NUM_THREADS="1")
    assert out.returncode == 0, out.stderr
    n, openmp = out.stdout.split()
    assert n == "1"


def test_threadpoolctl_sees_and_limits_our_pool():
    threadpoolctl = pytest.importorskip("threadpoolctl")
    if not seqkern.isa_info()["openmp"]:
        pytest.skip("built without OpenMP")
    infos = threadpoolctl.threadpool_info()
    openmp = [i for i in infos if i["user_api"] == "openmp"]
    assert openmp, f"threadpoolctl sees no OpenMP runtime: {infos}"
    before = seqkern.get_num_threads()
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        assert seqkern.get_num_threads() == 1
    assert seqkern.get_num_threads() == before


def test_two_threads_calling_kernels_both_finish(rng):
    xs = [rng.standard_normal((200, 300)).astype(np.float32) for _ in range(2)]
    results = [None, None]

    def work(i):
        for _ in range(20):
            results[i] = seqkern.softmax(xs[i])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    for i in range(2):
        np.testing.assert_allclose(results[i], ref.softmax(xs[i].astype(np.float64)), rtol=2e-6, atol=1e-7)
