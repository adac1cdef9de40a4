"""Timing for the benchmark: the median of repeated calls, one thread count for every library,
and the machine's float32 matmul rate that every row is measured against."""

from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import seqkern


@dataclass
class Timing:
    seconds: float  # median seconds per call
    repeats: int
    number: int  # calls per timed repeat


def time_call(
    fn: Callable[[], object],
    repeats: int = 7,
    warmup: int = 2,
    min_repeat_s: float = 0.005,
    slow_s: float = 0.5,
) -> Timing:
    """Median seconds per call of ``fn()``.

    ``warmup`` untimed calls first; then ``repeats`` timed repeats, cut to 3 (never below what was
    asked) when one call takes over ``slow_s``. Calls faster than ``min_repeat_s`` are batched, so
    one repeat lasts about that long and the timer's resolution and the loop cost stay negligible.
    """
    last = None
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        last = time.perf_counter() - t0
    number = 1
    if last is not None and last < min_repeat_s:
        number = min(100_000, math.ceil(min_repeat_s / max(last, 1e-7)))
        for _ in range(number):  # settle caches and branch predictors at the batched rhythm
            fn()
    n = repeats if last is None or last <= slow_s else min(repeats, 3)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return Timing(statistics.median(samples), n, number)


class ThreadControl:
    """One thread count for seqkern, PyTorch and NumPy's BLAS (ORT takes it per session);
    ``restore()`` puts back what the process had before."""

    def __init__(self, torch: Any):
        self.torch = torch
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            threadpool_limits = None
        self._blas_limits = threadpool_limits
        self._blas_original = None  # the first limiter remembers the original BLAS settings
        self._original = (seqkern.get_num_threads(), torch.get_num_threads() if torch else None)
        self.blas_note = "" if threadpool_limits else (
            "threadpoolctl not installed: NumPy's BLAS uses its own default thread count")

    def set(self, n: int) -> None:
        seqkern.set_num_threads(n)
        if self.torch is not None:
            self.torch.set_num_threads(n)
        if self._blas_limits is not None:
            limiter = self._blas_limits(limits=n, user_api="blas")
            self._blas_original = self._blas_original or limiter

    def restore(self) -> None:
        # threadpoolctl restores every pool it saw (OpenMP's too), so it goes first.
        if self._blas_original is not None:
            self._blas_original.restore_original_limits()
        seqkern.set_num_threads(self._original[0])
        if self.torch is not None:
            self.torch.set_num_threads(self._original[1])


def matmul_rate(n: int, repeats: int, warmup: int) -> float:
    """GFLOP/s of numpy.matmul on two (n, n) float32 matrices (2 n^3 flops), median."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    t = time_call(lambda: a @ b, repeats=repeats, warmup=warmup)
    return 2 * n**3 / t.seconds / 1e9
