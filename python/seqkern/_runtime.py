"""Instruction-set level and thread-count controls (thin wrappers over the compiled module)."""

from __future__ import annotations

import contextlib
import os
import platform
import threading
from typing import Iterator

from . import _core

__all__ = [
    "available_isas",
    "get_isa",
    "set_isa",
    "use_isa",
    "isa_info",
    "cache_sizes",
    "use_cache_sizes",
    "get_num_threads",
    "set_num_threads",
    "max_num_threads",
]


# Each thread's stack of use_isa levels (the innermost last).
_thread_isas = threading.local()


def available_isas() -> list[str]:
    """Instruction-set levels compiled in and supported by this CPU and OS, lowest first."""
    return list(_core.available_isas())


def get_isa() -> str:
    """The level the kernels called from this thread run at: ``"scalar"``, ``"avx2"`` or ``"avx512"``."""
    return str(_core.get_isa())


def set_isa(name: str) -> None:
    """Run every kernel at level ``name`` from now on (process-wide; a ``use_isa`` block in a
    thread still takes precedence there).

    Raises ``ValueError`` naming the available levels when ``name`` is not one of them.
    """
    if not isinstance(name, str):
        raise TypeError(f"set_isa: name must be a str, got {type(name).__name__}")
    _core.set_isa(name)


@contextlib.contextmanager
def use_isa(name: str) -> Iterator[str]:
    """Context manager: run the kernels called from this thread at level ``name`` inside the block.

    The level is this thread's own: other threads keep theirs, and blocks in several threads may
    overlap in any order. Nested blocks restore the outer block's level on exit; after the
    outermost block the thread follows the process-wide level (``set_isa``) again.
    """
    if not isinstance(name, str):
        raise TypeError(f"use_isa: name must be a str, got {type(name).__name__}")
    stack = _thread_isas.__dict__.setdefault("stack", [])
    _core._set_thread_isa(name)
    stack.append(name)
    try:
        yield name
    finally:
        stack.pop()
        _core._set_thread_isa(stack[-1] if stack else "")


def isa_info() -> dict:
    """``{"current", "available", "compiled", "env", "openmp", "threads", "machine", "cache",
    "features", "int8_vnni"}``: ``features`` the CPU's sub-features some kernels use where present
    (``avx512_vnni``: the int8 weights' dot products; ``avx512_bf16`` and ``avx_vnni``, reported),
    ``int8_vnni`` whether the int8 kernels use AVX512-VNNI now (``SEQKERN_VNNI=0`` turns it off)."""
    return {
        "current": get_isa(),
        "available": available_isas(),
        "compiled": list(_core.compiled_isas()),
        "env": os.environ.get("SEQKERN_ISA"),
        "openmp": bool(_core.have_openmp()),
        "threads": get_num_threads(),
        "machine": platform.machine(),
        "cache": cache_sizes(),
        "features": dict(_core.cpu_features()),
        "int8_vnni": bool(_core.int8_vnni()),
    }


def cache_sizes() -> dict:
    """The data-cache sizes the kernels block for: ``{"l1d", "l2", "l3", "source"}``, in bytes.

    Read once from sysfs (else CPUID, else defaults); ``SEQKERN_CACHE=l2=512K,l3=32M`` overrides
    any of them at import. They choose blocking and code paths, never the results' bits.
    """
    return dict(_core.cache_sizes())


@contextlib.contextmanager
def use_cache_sizes(l1d: int | None = None, l2: int | None = None, l3: int | None = None) -> Iterator[dict]:
    """Context manager: block for these cache sizes (bytes) inside the block, then restore.

    For tests and tuning: it drives every blocking path on any machine. Process-wide, like
    ``set_isa``; sizes left as ``None`` keep their current value.
    """
    for name, v in (("l1d", l1d), ("l2", l2), ("l3", l3)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
            raise ValueError(f"use_cache_sizes: {name} must be a positive int (bytes), got {v!r}")
    previous = cache_sizes()
    _core._set_cache_sizes(l1d or 0, l2 or 0, l3 or 0)
    try:
        yield cache_sizes()
    finally:
        _core._set_cache_sizes(previous["l1d"], previous["l2"], previous["l3"])


def get_num_threads() -> int:
    """Threads the kernels may use when called from this thread (OpenMP's max threads)."""
    return int(_core.get_num_threads())


def set_num_threads(n: int) -> None:
    """Limit the kernels to ``n`` threads when called from this thread.

    This is OpenMP's ``omp_set_num_threads``: ``OMP_NUM_THREADS`` sets the default, and
    ``threadpoolctl.threadpool_limits`` reaches the same setting. Without OpenMP the kernels are
    single-threaded and this only validates ``n``.
    """
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"set_num_threads: n must be an int, got {type(n).__name__}")
    most = max_num_threads()
    if not 1 <= n <= most:
        raise ValueError(
            f"set_num_threads: n must lie in [1, {most}] (4 per logical CPU of this machine, at least 8), got {n}"
        )
    _core.set_num_threads(n)


def max_num_threads() -> int:
    """The largest thread count ``set_num_threads`` accepts: 4 per logical CPU, at least 8.

    More threads than that only queue for the cores (and each one costs a stack of address space).
    """
    return max(8, 4 * (os.cpu_count() or 1))
