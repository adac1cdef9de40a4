"""Reproducibility, threads and the GIL, fork safety, and memory over time.

WORKLOADS maps a name to a function (rng) -> (call, check): `call()` runs one public kernel
(forward and, where there is one, backward) on fixed inputs and returns its outputs as a tuple
of arrays; `check(outputs)` asserts they match the float64 reference within the suite's
self-calibrating tolerance (checks.assert_close, with the reference run in float32 as the yardstick).
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
from checks import assert_close
from seqkern import reference as ref


def _softmax_workload(rng, size=(64, 257)):
    x = rng.standard_normal(size).astype(np.float32)
    dy = rng.standard_normal(size).astype(np.float32)
    mask = rng.random(size) > 0.2

    def call():
        y = seqkern.softmax(x, axis=0, mask=mask)
        return y, seqkern.softmax_backward(y, dy, axis=0)

    def refs(dtype):
        y = ref.softmax(x.astype(dtype), axis=0, mask=mask)
        return y, ref.softmax_backward(y, dy.astype(dtype), axis=0)

    return call, lambda out: _close(out, refs)


def _close(actual, refs):
    """Every output against ``refs(np.float64)``, with ``refs(np.float32)`` as the yardstick."""
    for i, (a, e64, e32) in enumerate(zip(actual, refs(np.float64), refs(np.float32))):
        if e64 is not None:
            assert_close(a, e64, e32, name=f"output {i}")


def _lstm_workload(rng, small=False):
    T, B, D, H = (3, 2, 4, 5) if small else (8, 32, 48, 64)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    w = [rng.standard_normal(s).astype(np.float32) * 0.3 for s in ((4 * H, D), (4 * H, H), (4 * H,), (3, H))]
    lengths = rng.integers(0, T + 1, size=B)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    weights = seqkern.LSTMWeights(*w)

    def call():
        out = seqkern.lstm_forward(x, weights, lengths=lengths)
        g = seqkern.lstm_backward(out.cache, dy, out.h_n, None)
        return (out.y, out.h_n, out.c_n) + tuple(g)

    def refs(dtype):
        r = ref.lstm_forward(x.astype(dtype), *(a.astype(dtype) for a in w[:3]), peephole=w[3].astype(dtype),
                             lengths=lengths)
        return (r.y, r.h_n, r.c_n) + tuple(ref.lstm_backward(r.cache, dy.astype(dtype), r.h_n, None))

    return call, lambda out: _close(out, refs)


def _lstm_step_workload(rng, small=False):
    B, D, H = (2, 4, 5) if small else (64, 96, 128)
    w = [rng.standard_normal(s).astype(np.float32) * 0.3 for s in ((4 * H, D), (4 * H, H), (4 * H,))]
    x, h, c = (rng.standard_normal(s).astype(np.float32) for s in ((B, D), (B, H), (B, H)))
    weights = seqkern.LSTMWeights(*w)

    def call():
        return weights.step(x, h, c)

    def refs(dtype):
        r = ref.lstm_forward(x[None].astype(dtype), *(a.astype(dtype) for a in w), h0=h.astype(dtype),
                             c0=c.astype(dtype))
        return r.h_n, r.c_n

    return call, lambda out: _close(out, refs)


def _gru_workload(rng, small=False):
    T, B, D, H = (3, 2, 4, 5) if small else (8, 32, 48, 64)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    w = [rng.standard_normal(s).astype(np.float32) * 0.3 for s in ((3 * H, D), (3 * H, H), (3 * H,), (3 * H,))]
    lengths = rng.integers(0, T + 1, size=B)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    weights = seqkern.GRUWeights(*w)

    def call():
        out = seqkern.gru_forward(x, weights, lengths=lengths)
        return (out.y, out.h_n) + tuple(seqkern.gru_backward(out.cache, dy, out.h_n))

    def refs(dtype):
        r = ref.gru_forward(x.astype(dtype), *(a.astype(dtype) for a in w), lengths=lengths)
        return (r.y, r.h_n) + tuple(ref.gru_backward(r.cache, dy.astype(dtype), r.h_n))

    return call, lambda out: _close(out, refs)


def _gru_step_workload(rng, small=False):
    B, D, H = (2, 4, 5) if small else (64, 96, 128)
    w = [rng.standard_normal(s).astype(np.float32) * 0.3 for s in ((3 * H, D), (3 * H, H), (3 * H,), (3 * H,))]
    x, h = (rng.standard_normal(s).astype(np.float32) for s in ((B, D), (B, H)))
    weights = seqkern.GRUWeights(*w)

    def call():
        return (weights.step(x, h),)

    def refs(dtype):
        return (ref.gru_forward(x[None].astype(dtype), *(a.astype(dtype) for a in w), h.astype(dtype)).h_n,)

    return call, lambda out: _close(out, refs)


def _rnn_workload(rng, small=False):
    T, B, D, H = (3, 2, 4, 5) if small else (8, 32, 48, 64)
    x = rng.standard_normal((T, B, D)).astype(np.float32)
    w = [rng.standard_normal(s).astype(np.float32) * 0.2 for s in ((H, D), (H, H), (H,))]
    lengths = rng.integers(0, T + 1, size=B)
    dy = rng.standard_normal((T, B, H)).astype(np.float32)
    weights = seqkern.RNNWeights(*w, nonlinearity="relu")

    def call():
        out = seqkern.rnn_forward(x, weights, lengths=lengths)
        return (out.y, out.h_n, weights.step(x[0], out.h_n)) + tuple(seqkern.rnn_backward(out.cache, dy, out.h_n))

    def refs(dtype):
        a = [v.astype(dtype) for v in w]
        r = ref.rnn_forward(x.astype(dtype), *a, lengths=lengths, nonlinearity="relu")
        step = ref.rnn_forward(x[:1].astype(dtype), *a, r.h_n, nonlinearity="relu").h_n
        return (r.y, r.h_n, step) + tuple(ref.rnn_backward(r.cache, dy.astype(dtype), r.h_n))

    return call, lambda out: _close(out, refs)


def _attention_workload(rng, small=False):
    B, NH, L, Dh = (1, 2, 5, 4) if small else (2, 4, 150, 32)
    q, k, v, g = (rng.standard_normal((B, NH, L, Dh)).astype(np.float32) for _ in range(4))
    lengths = rng.integers(1, L + 1, size=B)

    def call():
        out, cache = seqkern.attention_forward(q, k, v, causal=True, kv_lengths=lengths)
        return (out,) + tuple(seqkern.attention_backward(cache, g))

    def refs(dtype):
        r, c = ref.attention_forward(*(a.astype(dtype) for a in (q, k, v)), causal=True, kv_lengths=lengths)
        return (r,) + tuple(ref.attention_backward(c, g.astype(dtype)))

    return call, lambda out: _close(out, refs)


def _additive_workload(rng, small=False):
    B, Lq, Lk, D, A = (1, 3, 4, 3, 5) if small else (4, 40, 60, 32, 48)
    q, k, v = (rng.standard_normal((B, L, D)).astype(np.float32) for L in (Lq, Lk, Lk))
    wq, wk = (rng.standard_normal((A, D)).astype(np.float32) * 0.3 for _ in range(2))
    wv = rng.standard_normal(A).astype(np.float32)
    mask = rng.random((B, 1, Lk)) < 0.8
    g = rng.standard_normal((B, Lq, D)).astype(np.float32)

    def call():
        out, cache = seqkern.additive_attention_forward(q, k, v, wq, wk, wv, mask=mask)
        return (out,) + tuple(seqkern.additive_attention_backward(cache, g))

    def refs(dtype):
        r, c = ref.additive_attention_forward(*(a.astype(dtype) for a in (q, k, v, wq, wk, wv)), mask=mask)
        return (r,) + tuple(ref.additive_attention_backward(c, g.astype(dtype)))

    return call, lambda out: _close(out, refs)


def _pool_workload(rng, small=False):
    T, B, H, A = (4, 2, 3, 5) if small else (64, 32, 96, 64)
    h = rng.standard_normal((T, B, H)).astype(np.float32)
    w = rng.standard_normal((A, H)).astype(np.float32) * 0.2
    b, ws = rng.standard_normal(A).astype(np.float32), rng.standard_normal(A).astype(np.float32)
    lengths = rng.integers(0, T + 1, size=B)
    g = rng.standard_normal((B, H)).astype(np.float32)

    def call():
        ctx, alpha, cache = seqkern.attention_pool_forward(h, w, b, ws, lengths=lengths)
        return (ctx, alpha) + tuple(seqkern.attention_pool_backward(cache, g))

    def refs(dtype):
        r = ref.attention_pool_forward(*(a.astype(dtype) for a in (h, w, b, ws)), lengths=lengths)
        return r[:2] + tuple(ref.attention_pool_backward(r[2], g.astype(dtype)))

    return call, lambda out: _close(out, refs)


WORKLOADS = {
    "softmax": _softmax_workload,
    "lstm": _lstm_workload,
    "lstm_step": _lstm_step_workload,
    "gru": _gru_workload,
    "gru_step": _gru_step_workload,
    "rnn": _rnn_workload,
    "attention": _attention_workload,
    "additive_attention": _additive_workload,
    "attention_pool": _pool_workload,
}


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


def _long_call(name):
    """One call of a kernel that runs for a good fraction of a second on one thread."""
    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32)

    if name == "softmax":
        x = r(32, 1 << 20)
        return lambda: seqkern.softmax(x, axis=0)
    if name == "lstm":
        x, w = r(64, 64, 256), seqkern.LSTMWeights(r(1024, 256) * 0.1, r(1024, 256) * 0.1)
        return lambda: seqkern.lstm_forward(x, w, need_cache=False)
    if name == "gru":
        x, w = r(64, 64, 256), seqkern.GRUWeights(r(768, 256) * 0.1, r(768, 256) * 0.1)
        return lambda: seqkern.gru_forward(x, w, need_cache=False)
    if name == "rnn":
        x, w = r(128, 64, 256), seqkern.RNNWeights(r(256, 256) * 0.05, r(256, 256) * 0.05)
        return lambda: seqkern.rnn_forward(x, w, need_cache=False)
    if name == "attention":
        q, k, v = r(1, 4, 1024, 64), r(1, 4, 1024, 64), r(1, 4, 1024, 64)
        return lambda: seqkern.attention_forward(q, k, v)
    if name == "additive_attention":
        q, k, v, w = r(4, 256, 32), r(4, 256, 32), r(4, 256, 32), r(128, 32)
        return lambda: seqkern.additive_attention_forward(q, k, v, w, w, r(128))
    h, w = r(512, 64, 256), r(256, 256) * 0.1
    return lambda: seqkern.attention_pool_forward(h, w, r(256), r(256))


@pytest.mark.parametrize("name", ["softmax", "lstm", "gru", "rnn", "attention", "additive_attention", "attention_pool"])
def test_gil_is_released_during_a_kernel(name):
    # While one thread is inside a long kernel call, another thread keeps running Python code.
    # With a 10 s switch interval the interpreter never forces a switch on its own, so the second
    # thread can only run if the kernel released the GIL.
    call = _long_call(name)
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
            _with_threads(1, call)
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
        q = x.reshape(4, 128, 512)
        w = seqkern.LSTMWeights(x[:, :128] * 0.05, x[:, 128:256] * 0.05)
        g = seqkern.GRUWeights(x[:384, :128] * 0.05, x[:384, 128:256] * 0.05)
        e = seqkern.RNNWeights(x[:128, :128] * 0.05, x[:128, 128:256] * 0.05)

        def all_kernels():
            return (seqkern.softmax(x), seqkern.lstm_forward(q[:, :, :128], w).y,
                    seqkern.gru_forward(q[:, :, :128], g).y, seqkern.rnn_forward(q[:, :, :128], e).y,
                    seqkern.attention_forward(q, q, q)[0],
                    seqkern.attention_pool_forward(q, x[:64, :512], x[0, :64], x[1, :64])[0])

        first = all_kernels()              # warms the OpenMP pool in the parent
        pid = os.fork()
        if pid == 0:
            ys = all_kernels()             # the child must not wait on the parent's pool
            os._exit(0 if all(np.array_equal(a, b) for a, b in zip(ys, first)) else 3)
        _, status = os.waitpid(pid, 0)
        assert os.WEXITSTATUS(status) == 0, status
        with ThreadPoolExecutor(4) as ex:  # kernels from several pool threads at once
            outs = list(ex.map(lambda _: all_kernels(), range(8)))
        assert all(np.array_equal(a, b) for o in outs for a, b in zip(o, first))
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="needs /proc")
@pytest.mark.skipif(bool(os.environ.get("SEQKERN_SANITIZED")),
                    reason="AddressSanitizer's quarantine keeps freed memory resident")
@pytest.mark.parametrize("name", sorted(WORKLOADS))
def test_ten_thousand_calls_leave_memory_flat(name):
    rng = np.random.default_rng(1)
    call, _ = WORKLOADS[name](rng, (8, 33)) if name == "softmax" else WORKLOADS[name](rng, small=True)
    for _ in range(200):
        call()
    before = _rss_bytes()
    for _ in range(10_000):
        call()
    grown = _rss_bytes() - before
    assert grown < 8 * 2**20, f"resident memory grew by {grown / 2**20:.1f} MiB over 10,000 calls"
