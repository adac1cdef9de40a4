"""softmax and softmax_backward: the public wrappers."""

from __future__ import annotations

import numpy as np

from . import _core
from ._util import contiguous

__all__ = ["softmax", "softmax_forward", "softmax_backward"]


def softmax(x: np.ndarray, axis: int = -1, mask: np.ndarray | None = None) -> np.ndarray:
    """Softmax of ``x`` along ``axis``, with an optional keep-mask.

    Parameters
    ----------
    x : ndarray of float32 or float64, any shape with at least one dimension
        Scores. Non-contiguous input is copied once to C order.
    axis : int
        The axis to normalise over (negative counts from the end).
    mask : ndarray of bool, broadcastable to ``x.shape``, optional
        True keeps an entry; masked entries get probability 0. A row with nothing kept (or
        whose kept entries are all ``-inf``) comes out as zeros, never NaN. A mask whose shape
        differs from ``x``'s is expanded once to a dense bool array.

    Returns
    -------
    ndarray, same shape and dtype as ``x``, C-contiguous.
    A NaN or ``+inf`` among a row's kept entries makes that row NaN.
    """
    return _core.softmax_forward(contiguous(x, "softmax", "x"), int(axis), mask)


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
        contiguous(y, "softmax_backward", "y"), contiguous(dy, "softmax_backward", "dy"), int(axis))
