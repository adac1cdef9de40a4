"""gemm.h through the private ``_core._matmul`` binding: accuracy against NumPy float64 for
shapes that hit every register-tile and cache-block tail, all transposes, alpha/beta, the
pack-once path, and bitwise independence from the thread count."""

from __future__ import annotations

import numpy as np
import pytest

from checks import assert_close
from seqkern import _core

SIZES = [1, 3, 15, 16, 17, 33, 100, 257]
# Every (M, N) pair from SIZES with K cycling through SIZES, plus products that cross the cache
# blocks (K > 256 and 512, M > 96 and 144, N > 4096) and the small-M paths.
SHAPES = [(m, n, SIZES[(i + j) % len(SIZES)]) for i, m in enumerate(SIZES) for j, n in enumerate(SIZES)] + [
    (300, 520, 700),
    (1000, 40, 300),
    (7, 4100, 30),
    (2, 1024, 256),
    (12, 97, 513),
]


def operands(rng, m, n, k, trans_a, trans_b, dtype):
    a = rng.standard_normal((k, m) if trans_a else (m, k)).astype(dtype)
    b = rng.standard_normal((n, k) if trans_b else (k, n)).astype(dtype)
    return a, b


def reference(a, b, trans_a, trans_b, dtype=np.float64, alpha=1.0, beta=0.0, c=None):
    a = a.astype(dtype)
    b = b.astype(dtype)
    prod = (a.T if trans_a else a) @ (b.T if trans_b else b)
    out = dtype(alpha) * prod
    if c is not None and beta != 0.0:
        out = out + dtype(beta) * c.astype(dtype)
    return out


def check(actual, a, b, trans_a, trans_b, **kw):
    ref32 = reference(a, b, trans_a, trans_b, np.float32, **kw) if actual.dtype == np.float32 else None
    assert_close(actual, reference(a, b, trans_a, trans_b, **kw), ref32)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
def test_matmul_matches_numpy(isa, rng, dtype, trans_a, trans_b):
    for m, n, k in SHAPES:
        a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
        c = _core._matmul(a, b, trans_a, trans_b, threads=1)
        assert c.shape == (m, n) and c.dtype == dtype
        check(c, a, b, trans_a, trans_b)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("trans_b", [False, True])
def test_alpha_beta(isa, rng, dtype, trans_b):
    for m, n, k in [(1, 17, 33), (5, 40, 7), (33, 100, 257), (257, 16, 3)]:
        a, b = operands(rng, m, n, k, False, trans_b, dtype)
        c = rng.standard_normal((m, n)).astype(dtype)
        for alpha, beta in [(1.0, 1.0), (-2.0, 0.5), (0.5, -1.0)]:
            got = _core._matmul(a, b, False, trans_b, threads=1, alpha=alpha, beta=beta, c=c)
            check(got, a, b, False, trans_b, alpha=alpha, beta=beta, c=c)
            packed = _core._matmul(a, b, False, trans_b, threads=1, packed_repeat=2, alpha=alpha, beta=beta, c=c)
            np.testing.assert_array_equal(packed, got)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_beta_zero_never_reads_c(isa, rng, dtype):
    for m, n, k in [(1, 33, 5), (17, 100, 33), (40, 3, 257)]:
        a, b = operands(rng, m, n, k, False, False, dtype)
        c = np.full((m, n), np.nan, dtype=dtype)
        for packed_repeat in (0, 1):
            got = _core._matmul(a, b, threads=1, packed_repeat=packed_repeat, beta=0.0, c=c)
            check(got, a, b, False, False)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_alpha_zero_or_empty_k_only_scales_c(isa, rng, dtype):
    c = rng.standard_normal((5, 7)).astype(dtype)
    a, b = operands(rng, 5, 7, 3, False, False, dtype)
    a[0, 0] = np.nan
    np.testing.assert_array_equal(_core._matmul(a, b, alpha=0.0, beta=2.0, c=c), dtype(2.0) * c)
    a0, b0 = operands(rng, 5, 7, 0, False, False, dtype)
    np.testing.assert_array_equal(_core._matmul(a0, b0, beta=0.5, c=c), dtype(0.5) * c)
    np.testing.assert_array_equal(_core._matmul(a0, b0), np.zeros((5, 7), dtype))


@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (4, 0, 3), (0, 0, 0), (4, 5, 0)])
def test_empty(isa, m, n, k, trans_a, trans_b):
    a = np.ones((k, m) if trans_a else (m, k), np.float32)
    b = np.ones((n, k) if trans_b else (k, n), np.float32)
    for packed_repeat in (0, 3):
        c = _core._matmul(a, b, trans_a, trans_b, packed_repeat=packed_repeat)
        assert c.shape == (m, n)
        np.testing.assert_array_equal(c, np.zeros((m, n), np.float32))


# Shapes that split by rows, by columns, into uneven pieces, or stay on one thread.
THREAD_SHAPES = [(512, 300, 200), (300, 1100, 129), (4, 1024, 256), (1000, 17, 64), (33, 65, 400), (3, 5, 7)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_thread_count_is_bitwise_invisible(isa, rng, dtype):
    for m, n, k in THREAD_SHAPES:
        for trans_a, trans_b in [(False, False), (True, True), (False, True)]:
            a, b = operands(rng, m, n, k, trans_a, trans_b, dtype)
            one = _core._matmul(a, b, trans_a, trans_b, threads=1)
            for threads in (2, 3):
                np.testing.assert_array_equal(_core._matmul(a, b, trans_a, trans_b, threads=threads), one)
            # The pack-once path computes the same chain of operations.
            np.testing.assert_array_equal(_core._matmul(a, b, trans_a, trans_b, threads=2, packed_repeat=2), one)


def test_pack_once_small_m(isa, rng):
    # The recurrent-step shape: a few rows times a weight packed once, reused.
    for m in range(1, 9):
        a, w = operands(rng, m, 1024, 256, False, True, np.float32)
        got = _core._matmul(a, w, False, True, threads=1, packed_repeat=3)
        check(got, a, w, False, True)


def test_errors():
    a = np.ones((3, 4), np.float32)
    with pytest.raises(TypeError, match="a must be float32 or float64"):
        _core._matmul(a.astype(np.int32), a.T.copy())
    with pytest.raises(TypeError, match="b must be float32, like a"):
        _core._matmul(a, np.ones((4, 2), np.float64))
    with pytest.raises(ValueError, match=r"b must have shape \(K, N\) with K = 4"):
        _core._matmul(a, np.ones((3, 2), np.float32))
    with pytest.raises(ValueError, match="a must be 2-D"):
        _core._matmul(np.ones(3, np.float32), a)
    with pytest.raises(ValueError, match="b must be C-contiguous"):
        _core._matmul(a, np.ones((2, 4), np.float32).T)
    with pytest.raises(ValueError, match=r"c must have shape \(M, N\)"):
        _core._matmul(a, np.ones((4, 2), np.float32), beta=1.0, c=np.ones((2, 3), np.float32))
