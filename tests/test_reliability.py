"""Reproducibility, threads and the GIL, fork safety, and memory over time.

WORKLOADS maps a name to a function (rng) -> (call, check): `call()` runs one public kernel
(forward and, where there is one, backward) on fixed inputs and returns its outputs as a tuple
of arrays; `check(outputs)` asserts they match the reference.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import seqkern
from seqkern import reference as ref


def _softmax_workload(rng, size=(64, 257)):
    x = rng.standard_normal(size).astype(np.float32)
    dy = rng.standard_normal(size).astype(np.float32)
    mask = rng.random(size) > 0.2

    def call():
        y = seqkern.softmax(x, axis=0, mask=mask)
        return y, seqkern.softmax_backward(y, dy, axis=0)

    def check(out):
        y64 = ref.softmax(x.astype(np.float64), axis=0, mask=mask)
        np.testing.assert_allclose(out[0], y64, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(out[1], ref.softmax_backward(y64, dy.astype(np.float64), axis=0),
                                   rtol=1e-4, atol=1e-6)

    return call, check


WORKLOADS = {"softmax": _softmax_workload}


def _with_threads(n, fn):
    previous = seqkern.get_num_threads()
    seqkern.set_num_threads(n)
    try:
        return fn()
    finally:
        seqkern.set_num_threads(previous)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_same_call_twice_is_bitwise_identical(isa, rng, name):
    call, check = WORKLOADS[name](rng)
    first, second = call(), call()
    check(first)
    for a, b in zip(first, second):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_one_and_two_threads_are_bitwise_identical(isa, rng, name):
    call, _ = WORKLOADS[name](rng)
    one = _with_threads(1, call)
    two = _with_threads(2, call)
    for a, b in zip(one, two):
        assert np.array_equal(a, b, equal_nan=True)


@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_eight_python_threads_get_correct_results(rng, name):
    jobs = [WORKLOADS[name](np.random.default_rng(i)) for i in range(8)]
    results = [None] * 8
    errors = []

    def run(i):
        try:
            for _ in range(5):
                results[i] = jobs[i][0]()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in threads)
    for (_, check), out in zip(jobs, results):
        check(out)


def test_gil_is_released_during_a_kernel():
    # While one thread is inside a long kernel call, another thread keeps running Python code.
    # With a 10 s switch interval the interpreter never forces a switch on its own, so the second
    # thread can only run if the kernel released the GIL.
    x = np.random.default_rng(0).standard_normal((32, 1 << 20)).astype(np.float32)
    inside = threading.Event()
    done = threading.Event()
    ticks = [0]

    def spin():
        inside.wait()
        while not done.is_set():
            ticks[0] += 1
            os.sched_yield()

    old = sys.getswitchinterval()
    sys.setswitchinterval(10.0)
    try:
        t = threading.Thread(target=spin)
        t.start()
        inside.set()
        for _ in range(3):
            _with_threads(1, lambda: seqkern.softmax(x, axis=0))
        done.set()
        t.join(timeout=60)
    finally:
        sys.setswitchinterval(old)
    assert ticks[0] > 10, f"the other thread ran {ticks[0]} loop iterations during the kernel calls"


def test_forked_child_and_nested_openmp_do_not_hang():
    script = textwrap.dedent(
        """
        import os, sys
        import numpy as np
        import seqkern
        from concurrent.futures import ThreadPoolExecutor
        x = np.random.default_rng(0).standard_normal((512, 512)).astype(np.float32)
        seqkern.softmax(x)                 # warm the OpenMP pool in the parent
        pid = os.fork()
        if pid == 0:
            y = seqkern.softmax(x)         # the child must not wait on the parent's pool
            os._exit(0 if abs(float(y.sum()) - 512) < 1e-2 else 3)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0, status
        with ThreadPoolExecutor(4) as ex:  # kernels from several pool threads at once
            outs = list(ex.map(lambda _: seqkern.softmax(x), range(16)))
        assert all(np.array_equal(o, outs[0]) for o in outs)
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_ten_thousand_calls_leave_memory_flat(name):
    call, _ = WORKLOADS[name](np.random.default_rng(1), *(((8, 33),) if name == "softmax" else ()))
    for _ in range(200):
        call()
    before = _rss_bytes()
    for _ in range(10_000):
        call()
    grown = _rss_bytes() - before
    assert grown < 8 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over 10,000 calls"
