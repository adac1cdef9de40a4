"""The benchmark's ``--check``: every peer's result is compared with seqkern's before either is timed,
so a ratio never comes from two different computations.

Each implementation's callable returns its result in its own form (a tuple with a cache, a torch
tensor, ONNX Runtime's list with a direction axis); :func:`primary` takes the first float array
out of it (the output, or for training rows the first gradient), and :func:`disagreement` compares
two of them up to float32 rounding over the op's length.
"""

from __future__ import annotations

from typing import Any

import numpy as np

# Relative to the output's largest magnitude: float32 kernels that accumulate in different orders
# over a few thousand terms (an LSTM of 512 steps, attention over 512 keys) differ by ~1e-5 of it;
# a wrong gate order, a missing bias or a transposed weight differs by 1e-1 and more.
TOLERANCE = 2e-3
# For the low-precision rows, whose peers compute in float32 or in another int8 scheme: the formats
# move an LSTM's outputs by about 1e-2 of their range (bf16 less); a wrong gate order still fails.
LOW_PRECISION_TOLERANCE = 6e-2


def primary(result: Any) -> np.ndarray | None:
    """The first float array in ``result`` (depth first), as NumPy; None when there is none."""
    if result is None:
        return None
    if isinstance(result, np.ndarray):
        return result if result.dtype.kind == "f" else None
    detach = getattr(result, "detach", None)  # a torch tensor
    if detach is not None:
        return primary(detach().cpu().numpy())
    if isinstance(result, (tuple, list)):
        for item in result:
            found = primary(item)
            if found is not None:
                return found
    return None


def disagreement(reference: np.ndarray, other: np.ndarray, tolerance: float = TOLERANCE) -> str | None:
    """None when ``other`` matches ``reference`` (same number of elements; ONNX's extra axes of
    length 1 are dropped), else a short description of the difference."""
    if other.size != reference.size:
        return f"{other.shape} values where seqkern gives {reference.shape}"
    other = other.reshape(reference.shape).astype(np.float64)
    reference = reference.astype(np.float64)
    finite = np.isfinite(reference)
    if not np.array_equal(finite, np.isfinite(other)):
        return "non-finite values in other places"
    scale = float(np.max(np.abs(reference[finite]), initial=0.0))
    diff = float(np.max(np.abs(reference[finite] - other[finite]), initial=0.0))
    if diff > tolerance * max(scale, np.finfo(np.float32).tiny):
        return f"max difference {diff:.3g} against a largest value of {scale:.3g}"
    return None
