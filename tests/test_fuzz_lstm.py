"""Property tests of the LSTM API and the weight converters: random, often invalid, arguments.

Valid, finite input must match the reference; invalid input must raise TypeError/ValueError
naming the function and an argument. NaN/inf in x, the weights or the states propagate: the
outputs the float64 reference makes non-finite are non-finite, all others still match (a row's
NaN never leaks into another row, nor into steps past the row's length).
"""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_close
from hypothesis import given
from hypothesis import strategies as st

import seqkern
from seqkern import convert
from seqkern import reference as ref
from fuzz_support import (
    CASES, finite_pattern_matches, floats_ok, fuzz_settings, isa_levels, lengths_arg, lengths_ok,
    mask_operand, names_an_argument, operand,
)

LSTM_ARGS = ["x", "w_ih", "w_hh", "bias", "h0", "c0", "peephole", "lengths", "recurrent_mask"]


def _compare(name, actual, expected64, expected32):
    if not np.all(np.isfinite(expected64)):
        assert finite_pattern_matches(actual, expected64), f"{name}: non-finite values in other places"
        keep = np.isfinite(expected64)
        actual, expected64 = np.where(keep, actual, 0), np.where(keep, expected64, 0)
        expected32 = None if expected32 is None else np.where(keep, expected32, 0)
    assert_close(actual, expected64, expected32, floor=_floor(expected64), name=name)


def _floor(expected64):
    # The float32 floor is 1e-6 of the output's magnitude, but at least 1e-6 absolute: saturated
    # gates make some outputs tiny while their rounding error stays that of values near 1.
    top = float(np.max(np.abs(expected64), initial=0.0))
    return 1e-6 * max(1.0, 1.0 / top) if top > 0 else 1e-6


@st.composite
def lstm_case(draw):
    T, B, D, H = (draw(st.integers(0, n)) for n in (4, 3, 5, 6))
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    special = draw(st.integers(0, 5)) == 0
    x = operand(draw, (T, B, D), dtype, special=special)
    kw = {"w_ih": operand(draw, (4 * H, D), dtype), "w_hh": operand(draw, (4 * H, H), dtype)}
    for name, shape in (("bias", (4 * H,)), ("h0", (B, H)), ("c0", (B, H)), ("peephole", (3, H)),
                        ("recurrent_mask", (B, H))):
        if draw(st.booleans()):
            kw[name] = (mask_operand(draw, shape, dtype) if name == "recurrent_mask"
                        else operand(draw, shape, dtype, special=special and name != "peephole"))
    if draw(st.booleans()):
        kw["lengths"] = lengths_arg(draw, B, T)
    return x, kw, (T, B, D, H), draw(isa_levels()), draw(st.booleans()), special


def _lstm_valid(x, kw, dims):
    T, B, D, H = dims
    arrays = [x] + [kw[k] for k in ("w_ih", "w_hh", "bias", "h0", "c0", "peephole", "recurrent_mask") if k in kw]
    if not floats_ok(*arrays):
        return False
    w_hh, w_ih = kw["w_hh"], kw["w_ih"]
    if w_hh.ndim != 2 or w_ih.ndim != 2 or x.ndim != 3:
        return False
    H = w_hh.shape[1]
    T, B = x.shape[:2]
    want = {"w_hh": (4 * H, H), "w_ih": (4 * H, x.shape[2]), "bias": (4 * H,), "h0": (B, H), "c0": (B, H),
            "peephole": (3, H), "recurrent_mask": (B, H)}
    if any(kw[k].shape != s for k, s in want.items() if k in kw):
        return False
    return "lengths" not in kw or lengths_ok(kw["lengths"], B, T)


@fuzz_settings(400)
@given(lstm_case(), st.data())
def test_lstm_forward_backward_fuzz(case, data):
    x, kw, dims, isa, packed, special = case
    CASES["lstm_forward"] += 1
    valid = _lstm_valid(x, kw, dims)
    try:
        with seqkern.use_isa(isa):
            if packed:
                CASES["LSTMWeights"] += 1
                w = seqkern.LSTMWeights(kw["w_ih"], kw["w_hh"], kw.get("bias"), kw.get("peephole"))
                rest = {k: v for k, v in kw.items() if k in ("h0", "c0", "lengths", "recurrent_mask")}
                out = seqkern.lstm_forward(x, w, **rest)
            else:
                out = seqkern.lstm_forward(x, **kw)
    except (TypeError, ValueError) as e:
        assert not valid, f"valid input rejected: {e}"
        assert names_an_argument(e, "LSTMWeights", LSTM_ARGS) or names_an_argument(e, "lstm_forward", LSTM_ARGS), e
        return
    assert valid, "invalid input accepted"
    f64 = {k: (v.astype(np.float64) if v.dtype.kind == "f" else v) for k, v in kw.items()}
    with np.errstate(all="ignore"):  # the reference meets the same NaN/inf
        r64 = ref.lstm_forward(x.astype(np.float64), **f64)
        r32 = ref.lstm_forward(x, **kw) if x.dtype == np.float32 else None
    for i, name in enumerate(("y", "h_n", "c_n")):
        assert out[i].dtype == x.dtype and out[i].flags.c_contiguous
        _compare(name, out[i], r64[i], None if r32 is None else r32[i])

    # Backward on the same cache, with upstream gradients that are sometimes wrong.
    CASES["lstm_backward"] += 1
    T, B, H = out.y.shape
    grads = {}
    for name, shape in (("dy", (T, B, H)), ("dh_n", (B, H)), ("dc_n", (B, H))):
        if data.draw(st.integers(0, 3)):
            grads[name] = operand(data.draw, shape, x.dtype, wrong=12)
    gvalid = all(g.dtype == x.dtype and g.shape == s for g, s in
                 ((grads.get("dy"), (T, B, H)), (grads.get("dh_n"), (B, H)), (grads.get("dc_n"), (B, H)))
                 if g is not None)
    try:
        with seqkern.use_isa(isa):
            g = seqkern.lstm_backward(out.cache, **grads)
    except (TypeError, ValueError) as e:
        assert not gvalid, f"valid gradients rejected: {e}"
        assert names_an_argument(e, "lstm_backward", ["dy", "dh_n", "dc_n"]), e
        return
    assert gvalid, "invalid gradients accepted"
    if special or not all(np.all(np.isfinite(a)) for a in out[:3]):
        return  # non-finite forward: only "no crash" is asked of backward
    e64 = ref.lstm_backward(r64.cache, **{k: v.astype(np.float64) for k, v in grads.items()})
    e32 = ref.lstm_backward(r32.cache, **grads) if r32 is not None else None
    for i, name in enumerate(("dx", "dw_ih", "dw_hh", "dbias", "dh0", "dc0", "dpeephole")):
        if e64[i] is None:
            assert g[i] is None
            continue
        assert_close(g[i], e64[i], None if e32 is None else e32[i], floor=_floor(e64[i]), name=name)


@fuzz_settings(300)
@given(st.data())
def test_lstm_step_fuzz(data):
    CASES["LSTMWeights.step"] += 1
    B, D, H = (data.draw(st.integers(0, n)) for n in (4, 5, 6))
    dtype = data.draw(st.sampled_from([np.float32, np.float64]))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w = seqkern.LSTMWeights(rng.standard_normal((4 * H, D)).astype(dtype), rng.standard_normal((4 * H, H)).astype(dtype),
                            rng.standard_normal(4 * H).astype(dtype) if data.draw(st.booleans()) else None,
                            rng.standard_normal((3, H)).astype(dtype) if data.draw(st.booleans()) else None)
    special = data.draw(st.integers(0, 5)) == 0
    x = operand(data.draw, (B, D), dtype, special=special, wrong=12)
    h = operand(data.draw, (B, H), dtype, special=special, wrong=12)
    c = operand(data.draw, (B, H), dtype, special=special, wrong=12)
    out_kw = {}
    if data.draw(st.integers(0, 2)) == 0:
        where = data.draw(st.sampled_from(["fresh", "inplace", "strided"]))
        if where == "inplace":
            h, c = np.array(h), np.array(c)  # writeable, C-contiguous
            out_kw = {"out_h": h, "out_c": c}
        elif where == "strided":
            out_kw = {"out_h": np.zeros((B, 2 * H), dtype)[:, ::2]}
        else:
            out_kw = {"out_h": np.zeros((B, H), dtype), "out_c": np.zeros((B, H), dtype)}
    valid = (x.dtype == h.dtype == c.dtype == dtype and x.shape == (x.shape[0], D) and x.ndim == 2
             and h.shape == c.shape == (x.shape[0], H) and all(o.flags.c_contiguous for o in out_kw.values()))
    h_in, c_in = (h.astype(np.float64), c.astype(np.float64)) if valid else (None, None)
    try:
        with seqkern.use_isa(data.draw(isa_levels())):
            hn, cn = w.step(x, h, c, **out_kw)
    except (TypeError, ValueError) as e:
        assert not valid, f"valid input rejected: {e}"
        assert names_an_argument(e, "LSTMWeights.step", ["x", "h", "c", "out_h", "out_c"]), e
        return
    assert valid, "invalid input accepted"
    for k, o in zip(("out_h", "out_c"), (hn, cn)):
        if k in out_kw:
            assert o is out_kw[k]
    wk = dict(w_ih=w.w_ih, w_hh=w.w_hh, bias=w.bias, peephole=w.peephole)
    w64 = {k: None if v is None else v.astype(np.float64) for k, v in wk.items()}
    with np.errstate(all="ignore"):
        r64 = ref.lstm_forward(x.astype(np.float64)[None], **w64, h0=h_in, c0=c_in)
        r32 = None
        if dtype == np.float32:
            r32 = ref.lstm_forward(x[None], **wk, h0=h_in.astype(dtype), c0=c_in.astype(dtype))
    _compare("h", hn, r64.h_n, None if r32 is None else r32.h_n)
    _compare("c", cn, r64.c_n, None if r32 is None else r32.c_n)


# ---------------------------------------------------------------------------------------------
# converters


@fuzz_settings(200)
@given(st.data())
def test_converters_fuzz(data):
    draw = data.draw
    H, D = draw(st.integers(0, 4)), draw(st.integers(0, 4))
    which = draw(st.sampled_from(["torch", "keras", "onnx", "to_torch"]))
    fn = {"torch": "from_torch_lstm", "keras": "from_keras_lstm", "onnx": "from_onnx_lstm",
          "to_torch": "to_torch_lstm"}[which]
    CASES["convert." + fn] += 1

    def arr(shape):
        return operand(draw, shape, np.float32, wrong=8)

    try:
        if which == "torch":
            layer, direction = draw(st.integers(0, 1)), draw(st.sampled_from([0, 1, 1, 2, -1]))
            sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
            sd = {"weight_ih" + sfx: arr((4 * H, D)), "weight_hh" + sfx: arr((4 * H, H))}
            if draw(st.booleans()):
                sd["bias_ih" + sfx], sd["bias_hh" + sfx] = arr((4 * H,)), arr((4 * H,))
            if draw(st.integers(0, 5)) == 0:
                sd = {"lstm." + k: v for k, v in sd.items()}
            out = convert.from_torch_lstm(sd, layer=layer, direction=direction)
            assert direction in (0, 1)
            w_hh = out["w_hh"]
            if out["bias"] is not None:
                np.testing.assert_array_equal(out["bias"], sum(v for k, v in sd.items() if "bias" in k))
        elif which == "to_torch":
            direction = draw(st.sampled_from([0, 1, 2]))
            peep = arr((3, H)) if draw(st.integers(0, 4)) == 0 else None
            w_ih, b_ih = arr((4 * H, D)), arr((4 * H,))
            out = convert.to_torch_lstm(w_ih, arr((4 * H, H)), b_ih, peep, direction=direction)
            assert direction in (0, 1) and peep is None
            sfx = "_l0" + ("_reverse" if direction else "")
            np.testing.assert_array_equal(out["weight_ih" + sfx], w_ih)
            assert not np.any(out["bias_hh" + sfx]) and out["bias_hh" + sfx].shape == np.shape(b_ih)
            return
        elif which == "keras":
            kernel, rec = arr((D, 4 * H)), arr((H, 4 * H))
            bias = arr((4 * H,)) if draw(st.booleans()) else None
            out = convert.from_keras_lstm(kernel, rec, bias)
            np.testing.assert_array_equal(out["w_ih"], np.asarray(kernel).T)
            w_hh = out["w_hh"]
        else:
            dirs, direction = draw(st.integers(1, 2)), draw(st.sampled_from([0, 1, 2]))
            W, R = arr((dirs, 4 * H, D)), arr((dirs, 4 * H, H))
            B = arr((dirs, 8 * H)) if draw(st.booleans()) else None
            P = arr((dirs, 3 * H)) if draw(st.booleans()) else None
            out = convert.from_onnx_lstm(W, R, B, P, direction=direction)
            w_hh = out["w_hh"]
            # ONNX's i, o, f, c blocks become i, f, g, o.
            Hh = w_hh.shape[1]
            r = np.asarray(R)[direction]
            np.testing.assert_array_equal(w_hh[Hh : 2 * Hh], r[2 * Hh : 3 * Hh])
    except (TypeError, ValueError, KeyError) as e:
        assert str(e).strip("'\"").startswith(fn + ":"), e
        return
    # Whatever converts is accepted by LSTMWeights, or rejected there with a named argument.
    try:
        seqkern.LSTMWeights(**out)
    except (TypeError, ValueError) as e:
        assert names_an_argument(e, "LSTMWeights", ["w_ih", "w_hh", "bias", "peephole"]), e
    else:
        assert w_hh.shape[0] == 4 * w_hh.shape[1]


def test_converters_name_themselves():
    with pytest.raises(ValueError, match="from_keras_lstm: expected kernel"):
        convert.from_keras_lstm(np.zeros((2, 8)), np.zeros((3, 8)))
    with pytest.raises(ValueError, match="from_onnx_lstm: W must be 3-D"):
        convert.from_onnx_lstm(np.zeros((8, 2)), np.zeros((1, 8, 2)))
    with pytest.raises(ValueError, match="from_torch_lstm: direction must be 0"):
        convert.from_torch_lstm({}, direction=2)
    with pytest.raises(KeyError, match="from_torch_lstm: state_dict has no 'weight_ih_l0'"):
        convert.from_torch_lstm({})
