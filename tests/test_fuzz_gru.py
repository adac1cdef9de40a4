"""Property tests of the GRU API: random, often invalid, arguments (as test_fuzz_lstm.py does for
the LSTM). Valid input matches the reference, NaN/inf included (same non-finite pattern, the rest
close); invalid input raises TypeError/ValueError naming the function and an argument."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import seqkern
from seqkern import reference as ref
from fuzz_support import (CASES, floats_ok, fuzz_settings, isa_levels, lengths_arg, lengths_ok, mask_operand, operand,
                          run_checked)
from test_fuzz_lstm import _compare

GRU_ARGS = ["x", "w_ih", "w_hh", "b_ih", "b_hh", "h0", "lengths", "recurrent_mask"]
SHAPES = {"w_ih": lambda T, B, D, H: (3 * H, D), "w_hh": lambda T, B, D, H: (3 * H, H),
          "b_ih": lambda T, B, D, H: (3 * H,), "b_hh": lambda T, B, D, H: (3 * H,), "h0": lambda T, B, D, H: (B, H),
          "recurrent_mask": lambda T, B, D, H: (B, H)}


def _valid(x, kw, lbr=True):
    if "recurrent_mask" in kw and not lbr:
        return False  # the reset-before GRU takes no mask
    if not floats_ok(x, *(v for k, v in kw.items() if k != "lengths")) or x.ndim != 3:
        return False
    if kw["w_hh"].ndim != 2 or kw["w_ih"].ndim != 2:
        return False
    dims = (*x.shape, kw["w_hh"].shape[1])
    if any(kw[k].shape != shape(*dims) for k, shape in SHAPES.items() if k in kw):
        return False
    return "lengths" not in kw or lengths_ok(kw["lengths"], x.shape[1], x.shape[0])


@fuzz_settings(300)
@given(st.data())
def test_gru_forward_backward_fuzz(data):
    draw = data.draw
    T, B, D, H = (draw(st.integers(0, n)) for n in (4, 3, 5, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    special = draw(st.integers(0, 5)) == 0
    x = operand(draw, (T, B, D), dtype, special=special)
    kw = {k: (mask_operand(draw, SHAPES[k](T, B, D, H), dtype) if k == "recurrent_mask"
              else operand(draw, SHAPES[k](T, B, D, H), dtype, special=special and k == "h0"))
          for k in SHAPES if k in ("w_ih", "w_hh") or draw(st.booleans())}
    if draw(st.booleans()):
        kw["lengths"] = lengths_arg(draw, B, T)
    lbr = draw(st.booleans())  # reset after the product (PyTorch's) or before it
    CASES["gru_forward"] += 1
    valid = _valid(x, kw, lbr)
    with seqkern.use_isa(draw(isa_levels())):
        out = run_checked(lambda: seqkern.gru_forward(x, **kw, linear_before_reset=lbr), valid,
                          ["GRUWeights", "gru_forward"], GRU_ARGS)
    if out is None:
        return
    f64 = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in kw.items()}
    with np.errstate(all="ignore"):  # the reference meets the same NaN/inf
        r64 = ref.gru_forward(x.astype(np.float64), **f64, linear_before_reset=lbr)
        r32 = ref.gru_forward(x, **kw, linear_before_reset=lbr) if dtype == np.float32 else None
    for i, name in enumerate(("y", "h_n")):
        assert out[i].dtype == dtype and out[i].flags.c_contiguous
        _compare(name, out[i], r64[i], None if r32 is None else r32[i])

    CASES["gru_backward"] += 1
    T, B, H = out.y.shape  # x may have drawn other sizes than T, B, D (still valid)
    dy = operand(draw, (T, B, H), dtype, wrong=12) if draw(st.booleans()) else None
    gvalid = dy is None or (dy.dtype == dtype and dy.shape == (T, B, H))
    dh = np.linspace(-1, 1, B * H).reshape(B, H).astype(dtype)
    g = run_checked(lambda: seqkern.gru_backward(out.cache, dy, dh), gvalid, ["gru_backward"], ["dy"])
    if g is None:
        return
    if special or not all(np.all(np.isfinite(a)) for a in out[:2]):
        return  # non-finite forward: only "no crash" is asked of backward
    e64 = ref.gru_backward(r64.cache, None if dy is None else dy.astype(np.float64), dh.astype(np.float64))
    e32 = ref.gru_backward(r32.cache, dy, dh) if r32 is not None else None
    for i, name in enumerate(g._fields):
        _compare(name, g[i], e64[i], None if e32 is None else e32[i])
