"""The reference LSTM backward against float64 finite differences, for every input."""

from __future__ import annotations

import numpy as np
import pytest

from seqkern import reference as ref

from checks import check_grad


@pytest.mark.parametrize(
    "T,B,D,H,peephole,lengths",
    [
        (1, 1, 1, 1, False, None),
        (5, 3, 4, 6, True, [5, 0, 2]),
        (4, 2, 3, 5, False, [1, 4]),
        (6, 4, 2, 3, True, None),
    ],
)
def test_reference_backward_finite_differences(rng, T, B, D, H, peephole, lengths):
    inputs = {
        "x": rng.standard_normal((T, B, D)),
        "w_ih": rng.standard_normal((4 * H, D)) * 0.5,
        "w_hh": rng.standard_normal((4 * H, H)) * 0.5,
        "bias": rng.standard_normal(4 * H) * 0.5,
        "h0": rng.standard_normal((B, H)),
        "c0": rng.standard_normal((B, H)),
    }
    if peephole:
        inputs["peephole"] = rng.standard_normal((3, H)) * 0.5
    lens = None if lengths is None else np.array(lengths)

    def f(**kw):
        return tuple(ref.lstm_forward(**kw, lengths=lens)[:3])

    out = ref.lstm_forward(**inputs, lengths=lens)
    g = tuple(rng.standard_normal(o.shape) for o in out[:3])
    grads = ref.lstm_backward(out.cache, *g)
    analytic = {
        "__g__": g,
        "x": grads.dx,
        "w_ih": grads.dw_ih,
        "w_hh": grads.dw_hh,
        "bias": grads.dbias,
        "h0": grads.dh0,
        "c0": grads.dc0,
    }
    if peephole:
        analytic["peephole"] = grads.dpeephole
    else:
        assert grads.dpeephole is None
    check_grad(f, inputs, analytic, rng=rng, name="lstm")


def test_reference_backward_upstream_defaults(rng):
    """None for dy, dh_n or dc_n means zeros."""
    T, B, D, H = 3, 2, 3, 4
    out = ref.lstm_forward(rng.standard_normal((T, B, D)), rng.standard_normal((4 * H, D)),
                           rng.standard_normal((4 * H, H)))
    dh = rng.standard_normal((B, H))
    a = ref.lstm_backward(out.cache, None, dh, None)
    b = ref.lstm_backward(out.cache, np.zeros((T, B, H)), dh, np.zeros((B, H)))
    for x, y in zip(a, b):
        if x is not None:
            np.testing.assert_array_equal(x, y)
