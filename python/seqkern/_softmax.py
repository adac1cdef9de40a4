"""softmax, log_softmax and their backwards: the public wrappers."""

from __future__ import annotations

import numpy as np

from . import _core
from ._util import contiguous

__all__ = ["softmax", "softmax_forward", "softmax_backward", "log_softmax", "log_softmax_backward"]


def _axis(fn: str, axis) -> int:
    """``axis`` as an int; a float (``0.9`` is not axis 0), a bool or anything else that is not
    an integer raises TypeError naming ``fn`` and ``axis``."""
    if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"{fn}: axis must be an integer, got {type(axis).__name__} {axis!r}")
    return int(axis)


def softmax(x: np.ndarray, axis: int = -1, mask: np.ndarray | None = None) -> np.ndarray:
    """Softmax of ``x`` along ``axis``, with an optional keep-mask.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape with at least one dimension
        Scores. Non-contiguous input is copied once to C order.
    axis : int
        The axis to normalise over (negative counts from the end); a non-integer (float, bool)
        raises TypeError.
    mask : ndarray of bool, broadcastable to ``x.shape``, optional
        True keeps an entry; masked entries get probability 0. A row with nothing kept (or
        whose kept entries are all ``-inf``) comes out as zeros, never NaN. A mask whose shape
        differs from ``x``'s is expanded once to a dense bool array.

    Returns
    -------
    ndarray, same shape and dtype as ``x``, C-contiguous.
    A NaN or ``+inf`` among a row's kept entries makes that row NaN.
    """
    return _core.softmax_forward(contiguous(x, "softmax", "x"), _axis("softmax", axis), mask)


softmax_forward = softmax


def softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient of a softmax: ``dx = y * (dy - sum(y * dy, axis))``.

    Parameters
    ----------
    y : ndarray of float32 or float64
        The softmax output (masked entries are 0 there, so no mask is needed here).
    dy : ndarray, same shape and dtype as ``y``
        Gradient of the loss with respect to ``y``.
    axis : int
        The axis the softmax was taken over.

    Returns
    -------
    ndarray ``dx``, same shape and dtype as ``y``.
    """
    return _core.softmax_backward(
        contiguous(y, "softmax_backward", "y"), contiguous(dy, "softmax_backward", "dy"),
        _axis("softmax_backward", axis))


def log_softmax(x: np.ndarray, axis: int = -1, mask: np.ndarray | None = None) -> np.ndarray:
    """Log-softmax of ``x`` along ``axis``: ``x - (max + log(sum(exp(x - max))))``, computed
    without forming the probabilities (exact where ``log(softmax(x))`` underflows to -inf).

    Parameters are those of ``softmax``. Masked entries, and every entry of a row with nothing
    kept (or whose kept entries are all ``-inf``), come out as ``-inf``: the log of ``softmax``'s
    0. A NaN or ``+inf`` among a row's kept entries makes that row NaN.

    Returns
    -------
    ndarray, same shape and dtype as ``x``, C-contiguous.
    """
    return _core.log_softmax_forward(contiguous(x, "log_softmax", "x"), _axis("log_softmax", axis), mask)


def log_softmax_backward(y: np.ndarray, dy: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient of a log-softmax: ``dx = dy - exp(y) * sum(dy)``, where the sum and the result
    skip the entries whose ``y`` is ``-inf`` (masked, or at -inf in ``x``): their ``dx`` is 0 and
    their ``dy`` is not summed, since no change of ``x`` moves them.

    Parameters
    ----------
    y : ndarray of float32 or float64
        The log-softmax output.
    dy : ndarray, same shape and dtype as ``y``
        Gradient of the loss with respect to ``y``.
    axis : int
        The axis the log-softmax was taken over.

    Returns
    -------
    ndarray ``dx``, same shape and dtype as ``y``.
    """
    return _core.log_softmax_backward(
        contiguous(y, "log_softmax_backward", "y"), contiguous(dy, "log_softmax_backward", "dy"),
        _axis("log_softmax_backward", axis))
