"""The GRU weight converters: PyTorch's state dicts both ways, Keras' kernels (against Keras' GRUCell
formulas written out in NumPy, both reset placements) and ONNX's initializers; against nn.GRU and
ONNX Runtime's GRU operator when they are installed, through the reference and the kernels."""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import convert
from seqkern import reference as ref

from checks import assert_close
from test_gru_reference import gru_inputs, onnx_gate_order, onnx_gru_session, torch_gru_run, upstream
from test_lstm_peers import reverse_padded

WEIGHTS = ("w_ih", "w_hh", "b_ih", "b_hh")


def gru_weights(rng, D, H, dtype=np.float64):
    """w_ih, w_hh, b_ih, b_hh in seqkern's (PyTorch's) layout."""
    kw = gru_inputs(rng, 1, 1, D, H, dtype)
    return {k: kw[k] for k in WEIGHTS}


def assert_same_weights(got, expected, linear_before_reset=True):
    assert set(got) == {*WEIGHTS, "linear_before_reset"}
    assert got["linear_before_reset"] is linear_before_reset
    for k in WEIGHTS:
        if expected.get(k) is None:
            assert got[k] is None, k
        else:
            np.testing.assert_array_equal(got[k], expected[k], err_msg=k)
            assert got[k].flags.c_contiguous, k


# ---------------------------------------------------------------------------------------------
# PyTorch's state dict, both ways (no torch needed)


@pytest.mark.parametrize("layer,direction", [(0, 0), (0, 1), (2, 0), (1, 1)])
def test_torch_round_trip(rng, layer, direction):
    w = gru_weights(rng, 3, 4)
    sd = convert.to_torch_gru(**w, layer=layer, direction=direction)
    sfx = f"_l{layer}" + ("_reverse" if direction else "")
    assert sorted(sd) == sorted(name + sfx for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
    assert all(isinstance(v, np.ndarray) for v in sd.values())
    assert_same_weights(convert.from_torch_gru(sd, layer, direction), w)
    # A module nested in a model: its keys carry a prefix.
    assert_same_weights(convert.from_torch_gru({"enc.gru." + k: v for k, v in sd.items()}, layer, direction), w)
    # Back again from the converted dict itself (linear_before_reset True is accepted).
    back = convert.to_torch_gru(**convert.from_torch_gru(sd, layer, direction), layer=layer, direction=direction)
    assert sorted(back) == sorted(sd)


def test_torch_absent_biases(rng):
    w = gru_weights(rng, 2, 3)
    sd = convert.to_torch_gru(w["w_ih"], w["w_hh"])
    assert sorted(sd) == ["weight_hh_l0", "weight_ih_l0"]
    assert_same_weights(convert.from_torch_gru(sd), {"w_ih": w["w_ih"], "w_hh": w["w_hh"]})
    # One bias given: the other one becomes zeros, as to_torch_lstm's bias_hh.
    sd = convert.to_torch_gru(w["w_ih"], w["w_hh"], b_hh=w["b_hh"])
    np.testing.assert_array_equal(sd["bias_ih_l0"], np.zeros(9))
    np.testing.assert_array_equal(sd["bias_hh_l0"], w["b_hh"])
    sd = convert.to_torch_gru(w["w_ih"], w["w_hh"], w["b_ih"])
    np.testing.assert_array_equal(sd["bias_hh_l0"], np.zeros(9))
    # A state dict with only one bias converts with the other None.
    del sd["bias_hh_l0"]
    assert_same_weights(convert.from_torch_gru(sd), {"w_ih": w["w_ih"], "w_hh": w["w_hh"], "b_ih": w["b_ih"]})


def test_torch_errors_name_the_key(rng):
    w = gru_weights(rng, 2, 3)
    sd = convert.to_torch_gru(**w)
    with pytest.raises(KeyError, match="from_torch_gru: state_dict has no 'weight_ih_l0'"):
        convert.from_torch_gru({})
    with pytest.raises(KeyError, match="from_torch_gru: state_dict has no 'weight_hh_l1'"):
        convert.from_torch_gru({**sd, "weight_ih_l1": w["w_ih"]}, layer=1)
    with pytest.raises(KeyError, match="'weight_ih_l0_reverse'"):
        convert.from_torch_gru(sd, direction=1)
    with pytest.raises(ValueError, match="from_torch_gru: direction must be 0"):
        convert.from_torch_gru(sd, direction=2)
    with pytest.raises(ValueError, match="to_torch_gru: direction must be 0"):
        convert.to_torch_gru(**w, direction=-1)
    with pytest.raises(ValueError, match="several keys end with 'weight_ih_l0'.*the GRU's own state_dict"):
        convert.from_torch_gru({**{"a." + k: v for k, v in sd.items()}, **{"b." + k: v for k, v in sd.items()}})
    with pytest.raises(ValueError, match=r"from_torch_gru: bias_hh_l0 must have shape \(9,\), got \(8,\)"):
        convert.from_torch_gru({**sd, "bias_hh_l0": np.zeros(8)})
    with pytest.raises(ValueError, match="to_torch_gru: linear_before_reset must be True"):
        convert.to_torch_gru(**w, linear_before_reset=False)


# ---------------------------------------------------------------------------------------------
# PyTorch's nn.GRU


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_torch_gru_state_dict_runs_in_seqkern(torch, rng):
    T, B, D, H = 7, 5, 4, 6
    torch.manual_seed(0)
    gru = torch.nn.GRU(D, H).double()
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    lengths = np.array([7, 2, 1, 7, 4])
    theirs = torch_gru_run(torch, gru, x, h0, lengths, upstream(rng, T, B, H))

    w = convert.from_torch_gru(gru.state_dict())
    assert w["linear_before_reset"] is True and w["w_ih"].dtype == np.float64
    for name, out in (("kernel", seqkern.gru_forward(x, **w, h0=h0, lengths=lengths)),
                      ("reference", ref.gru_forward(x, **w, h0=h0, lengths=lengths))):
        assert_close(out.y, theirs["y"], name=f"{name} y")
        assert_close(out.h_n, theirs["h_n"], name=f"{name} h_n")
    # bias=False, nested in a model: the keys carry a prefix and the biases are None.
    plain = torch.nn.Sequential(torch.nn.GRU(D, H, bias=False))
    w = convert.from_torch_gru(plain.state_dict())
    assert w["b_ih"] is None and w["b_hh"] is None and w["w_ih"].shape == (3 * H, D) and w["w_hh"].shape == (3 * H, H)


def test_torch_bidirectional_reverse_direction(torch, rng):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    T, B, D, H = 6, 4, 3, 5
    torch.manual_seed(1)
    gru = torch.nn.GRU(D, H, bidirectional=True).double()
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((2, B, H))
    lengths = np.array([6, 2, 5, 1])
    with torch.no_grad():
        packed = pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), enforce_sorted=False)
        out, h_n = gru(packed, torch.tensor(h0))
        y, _ = pad_packed_sequence(out, total_length=T)
    y, h_n = y.numpy(), h_n.numpy()

    xr = reverse_padded(x, lengths)
    for direction in (0, 1):
        w = convert.from_torch_gru(gru.state_dict(), direction=direction)
        xin = x if direction == 0 else xr
        for name, run in (("kernel", seqkern.gru_forward), ("reference", ref.gru_forward)):
            r = run(xin, **w, h0=h0[direction], lengths=lengths)
            ours = r.y if direction == 0 else reverse_padded(r.y, lengths)
            assert_close(ours, y[..., direction * H : (direction + 1) * H], name=f"{name} y dir {direction}")
            assert_close(r.h_n, h_n[direction], name=f"{name} h_n dir {direction}")


# ---------------------------------------------------------------------------------------------
# Keras (not needed: its GRUCell's formulas are written out here)


def keras_gru(x, kernel, recurrent_kernel, bias, reset_after):
    """Keras' GRUCell step by step (gate columns z, r, h) over a time-major x from h = 0; all h_t."""
    H = recurrent_kernel.shape[0]
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    input_bias, recurrent_bias = (0, 0) if bias is None else (bias[0], bias[1]) if reset_after else (bias, 0)
    h = np.zeros((x.shape[1], H))
    ys = []
    for x_t in x:
        x_z, x_r, x_h = np.split(x_t @ kernel + input_bias, 3, axis=1)
        if reset_after:  # one product with the whole recurrent kernel; the reset gate scales its h part
            rec_z, rec_r, rec_h = np.split(h @ recurrent_kernel + recurrent_bias, 3, axis=1)
        else:
            rec_z, rec_r = np.split(h @ recurrent_kernel[:, : 2 * H], 2, axis=1)
        z, r = sig(x_z + rec_z), sig(x_r + rec_r)
        rec_h = r * rec_h if reset_after else (r * h) @ recurrent_kernel[:, 2 * H :]
        h = z * h + (1 - z) * np.tanh(x_h + rec_h)
        ys.append(h)
    return np.stack(ys)


@pytest.mark.parametrize("with_bias", [True, False], ids=["bias", "no-bias"])
@pytest.mark.parametrize("reset_after", [True, False])
def test_keras_gru_formulas(rng, reset_after, with_bias):
    T, B, D, H = 5, 3, 4, 6
    kernel, rec = rng.standard_normal((D, 3 * H)) * 0.5, rng.standard_normal((H, 3 * H)) * 0.5
    bias = None
    if with_bias:
        bias = rng.standard_normal((2, 3 * H) if reset_after else 3 * H) * 0.5
    x = rng.standard_normal((T, B, D))
    expected = keras_gru(x, kernel, rec, bias, reset_after)

    w = convert.from_keras_gru(kernel, rec, bias, reset_after=reset_after)
    assert w["linear_before_reset"] is reset_after
    assert (w["b_ih"] is None) is (not with_bias) and (w["b_hh"] is None) is (not (with_bias and reset_after))
    assert_close(ref.gru_forward(x, **w).y, expected, name="reference")
    assert_close(seqkern.gru_forward(x, **w).y, expected, name="kernel")


def test_keras_layout_is_the_transposed_onnx_order(rng):
    H = 4
    w = gru_weights(rng, 3, H)
    kernel, rec = onnx_gate_order(w["w_ih"], H).T, onnx_gate_order(w["w_hh"], H).T
    bias = np.stack([onnx_gate_order(w["b_ih"], H), onnx_gate_order(w["b_hh"], H)])
    assert_same_weights(convert.from_keras_gru(kernel, rec, bias), w)
    assert_same_weights(convert.from_keras_gru(kernel, rec, bias[0], reset_after=False),
                        {"w_ih": w["w_ih"], "w_hh": w["w_hh"], "b_ih": w["b_ih"]}, False)
    with pytest.raises(ValueError, match=r"from_keras_gru: bias must have shape \(2, 3H\) = \(2, 12\) with reset_after=True"):
        convert.from_keras_gru(kernel, rec, bias[0])
    with pytest.raises(ValueError, match=r"from_keras_gru: bias must have shape \(3H,\) = \(12,\) with reset_after=False"):
        convert.from_keras_gru(kernel, rec, bias, reset_after=False)


# ---------------------------------------------------------------------------------------------
# ONNX


def test_onnx_converter_reorders_gates_and_picks_the_direction(rng):
    H, D = 3, 2
    dirs = [gru_weights(rng, D, H), gru_weights(rng, D, H)]
    W, R = (np.stack([onnx_gate_order(w[k], H) for w in dirs]) for k in ("w_ih", "w_hh"))
    Bias = np.stack([np.concatenate([onnx_gate_order(w["b_ih"], H), onnx_gate_order(w["b_hh"], H)]) for w in dirs])
    for d, w in enumerate(dirs):
        for lbr in (0, 1):
            assert_same_weights(convert.from_onnx_gru(W, R, Bias, lbr, direction=d), w, bool(lbr))
    assert_same_weights(convert.from_onnx_gru(W, R, direction=1), {"w_ih": dirs[1]["w_ih"], "w_hh": dirs[1]["w_hh"]},
                        False)


@pytest.mark.parametrize("linear_before_reset", [0, 1])
def test_onnxruntime_gru(rng, linear_before_reset):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    T, B, D, H = 7, 4, 5, 6
    f32 = np.float32
    W = (rng.standard_normal((1, 3 * H, D)) * 0.5).astype(f32)
    R = (rng.standard_normal((1, 3 * H, H)) * 0.5).astype(f32)
    Bias = (rng.standard_normal((1, 6 * H)) * 0.5).astype(f32)
    x = rng.standard_normal((T, B, D)).astype(f32)
    h0 = rng.standard_normal((B, H)).astype(f32)
    lengths = np.array([7, 3, 1, 0])
    sess = onnx_gru_session(onnx, ort, T, B, D, H, W, R, Bias, linear_before_reset)
    Y, Y_h = sess.run(None, {"X": x, "sequence_lens": lengths.astype(np.int32), "initial_h": h0[None]})

    w = convert.from_onnx_gru(W, R, Bias, linear_before_reset=linear_before_reset)
    assert w["linear_before_reset"] is bool(linear_before_reset)
    r32 = ref.gru_forward(x, **w, h0=h0, lengths=lengths)
    w64 = {k: v.astype(np.float64) if k in WEIGHTS else v for k, v in w.items()}
    r64 = ref.gru_forward(x.astype(np.float64), **w64, h0=h0.astype(np.float64), lengths=lengths)
    # ONNX Runtime's Y_h is 0 for a row of length 0, the reference's h0: compared where length > 0.
    ran = lengths > 0
    assert_close(Y[:, 0], r64.y, r32.y, name="ONNX Runtime Y")
    assert_close(Y_h[0][ran], r64.h_n[ran], r32.h_n[ran], name="ONNX Runtime Y_h")
    out = seqkern.gru_forward(x, **w, h0=h0, lengths=lengths)
    assert_close(out.y, r64.y, r32.y, name="kernel y")
    assert_close(out.h_n, r64.h_n, r32.h_n, name="kernel h_n")
    assert_close(out.y, Y[:, 0].astype(np.float64), r32.y, name="kernel y against ONNX Runtime")


# ---------------------------------------------------------------------------------------------
# bad input: every error names the converter and the argument


def z(*shape):
    return np.zeros(shape)


BAD = {
    "torch H mismatch": (lambda: convert.from_torch_gru({"weight_ih_l0": z(9, 2), "weight_hh_l0": z(12, 4)}),
                         r"from_torch_gru: expected weight_ih_l0 \(3H, D\) and weight_hh_l0 \(3H, H\), got \(9, 2\) and \(12, 4\)"),
    "torch LSTM weights": (lambda: convert.from_torch_gru({"weight_ih_l0": z(16, 2), "weight_hh_l0": z(16, 4)}),
                           r"weight_hh_l0 \(3H, H\)"),
    "torch ndim": (lambda: convert.from_torch_gru({"weight_ih_l0": z(9), "weight_hh_l0": z(9, 3)}),
                   r"from_torch_gru: expected weight_ih_l0 \(3H, D\).*got \(9,\) and \(9, 3\)"),
    "keras H mismatch": (lambda: convert.from_keras_gru(z(2, 9), z(4, 9)),
                         r"from_keras_gru: expected kernel \(D, 3H\) and recurrent_kernel \(H, 3H\), got \(2, 9\) and \(4, 9\)"),
    "keras kernel columns": (lambda: convert.from_keras_gru(z(2, 8), z(3, 9)), r"from_keras_gru: expected kernel"),
    "keras ndim": (lambda: convert.from_keras_gru(z(2, 9, 1), z(3, 9)), r"from_keras_gru: expected kernel"),
    "keras bias length": (lambda: convert.from_keras_gru(z(2, 9), z(3, 9), z(2, 8)),
                          r"from_keras_gru: bias must have shape \(2, 3H\) = \(2, 9\)"),
    "onnx W ndim": (lambda: convert.from_onnx_gru(z(9, 2), z(1, 9, 3)), r"from_onnx_gru: W must be 3-D"),
    "onnx R ndim": (lambda: convert.from_onnx_gru(z(1, 9, 2), z(9, 3)), r"from_onnx_gru: R must be 3-D"),
    "onnx B ndim": (lambda: convert.from_onnx_gru(z(1, 9, 2), z(1, 9, 3), z(18)), r"from_onnx_gru: B must be 2-D"),
    "onnx H mismatch": (lambda: convert.from_onnx_gru(z(1, 9, 2), z(1, 12, 4)),
                        r"from_onnx_gru: expected W \(dirs, 3H, D\) and R \(dirs, 3H, H\), got \(1, 9, 2\) and \(1, 12, 4\)"),
    "onnx B length": (lambda: convert.from_onnx_gru(z(1, 9, 2), z(1, 9, 3), z(1, 17)),
                      r"from_onnx_gru: B must have shape \(dirs, 6H\) = \(dirs, 18\), got \(1, 17\)"),
    "onnx direction": (lambda: convert.from_onnx_gru(z(1, 9, 2), z(1, 9, 3), direction=1),
                       r"from_onnx_gru: W has 1 direction\(s\); direction 1 is out of range"),
    "onnx linear_before_reset": (lambda: convert.from_onnx_gru(z(1, 9, 2), z(1, 9, 3), linear_before_reset=2),
                                 r"from_onnx_gru: linear_before_reset must be 0 or 1, got 2"),
}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_names_the_argument(case):
    call, message = BAD[case]
    with pytest.raises(ValueError, match=message):
        call()
