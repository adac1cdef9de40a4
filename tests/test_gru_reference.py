"""The reference GRU (both reset placements): its backward against float64 finite differences for
every input, its shapes and edge cases, and its forward and gradients against PyTorch's nn.GRU and
ONNX Runtime's GRU operator when they are installed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from seqkern import reference as ref

from checks import assert_close, check_grad

GRAD_FIELDS = ("dx", "dw_ih", "dw_hh", "db_ih", "db_hh", "dh0")


def gru_inputs(rng, T, B, D, H, dtype=np.float64):
    """x, w_ih, w_hh, b_ih, b_hh, h0, weights scaled so that the gates stay in their curved range."""
    kw = {
        "x": rng.standard_normal((T, B, D)),
        "w_ih": rng.standard_normal((3 * H, D)) * 0.5,
        "w_hh": rng.standard_normal((3 * H, H)) * 0.5,
        "b_ih": rng.standard_normal(3 * H) * 0.5,
        "b_hh": rng.standard_normal(3 * H) * 0.5,
        "h0": rng.standard_normal((B, H)),
    }
    return {k: v.astype(dtype) for k, v in kw.items()}


def upstream(rng, T, B, H, dtype=np.float64):
    """Random dy (T, B, H) and dh_n (B, H)."""
    return rng.standard_normal((T, B, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)


@pytest.mark.parametrize("linear_before_reset", [True, False])
@pytest.mark.parametrize(
    "T,B,D,H,lengths",
    [
        (1, 1, 1, 1, None),
        (5, 3, 4, 6, [5, 0, 2]),
        (4, 2, 3, 5, [1, 4]),
        (6, 4, 2, 3, None),
        (3, 3, 2, 4, [0, 3, 0]),
    ],
)
def test_reference_backward_finite_differences(rng, T, B, D, H, lengths, linear_before_reset):
    inputs = gru_inputs(rng, T, B, D, H)
    lens = None if lengths is None else np.array(lengths)

    def f(**kw):
        return tuple(ref.gru_forward(**kw, lengths=lens, linear_before_reset=linear_before_reset)[:2])

    out = ref.gru_forward(**inputs, lengths=lens, linear_before_reset=linear_before_reset)
    g = upstream(rng, T, B, H)
    grads = ref.gru_backward(out.cache, *g)
    analytic = {"__g__": g, **{name: getattr(grads, "d" + name) for name in inputs}}
    check_grad(f, inputs, analytic, rng=rng, name=f"gru linear_before_reset={linear_before_reset}")


@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_reference_backward_upstream_defaults_and_padding(rng, linear_before_reset):
    """None for dy or dh_n means zeros, and dy past a row's length is ignored."""
    T, B, D, H = 4, 3, 2, 5
    lengths = np.array([4, 1, 0])
    out = ref.gru_forward(**gru_inputs(rng, T, B, D, H), lengths=lengths, linear_before_reset=linear_before_reset)
    dy, dh = upstream(rng, T, B, H)
    pairs = [
        (ref.gru_backward(out.cache, None, dh), ref.gru_backward(out.cache, np.zeros_like(dy), dh)),
        (ref.gru_backward(out.cache, dy, None), ref.gru_backward(out.cache, dy, np.zeros_like(dh))),
    ]
    past = np.arange(T)[:, None] >= lengths[None, :]
    noisy = np.where(past[..., None], 1e3 * rng.standard_normal(dy.shape), dy)
    pairs.append((ref.gru_backward(out.cache, dy, dh), ref.gru_backward(out.cache, noisy, dh)))
    for a, b in pairs:
        for name in GRAD_FIELDS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)


@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_reference_without_biases_is_zero_biases(rng, linear_before_reset):
    """No biases: the outputs of zero biases, and db_ih, db_hh still returned (their gradients there)."""
    T, B, D, H = 3, 2, 3, 4
    kw = gru_inputs(rng, T, B, D, H)
    kw.pop("b_ih"), kw.pop("b_hh")
    zeros = {"b_ih": np.zeros(3 * H), "b_hh": np.zeros(3 * H)}
    a = ref.gru_forward(**kw, linear_before_reset=linear_before_reset)
    b = ref.gru_forward(**kw, **zeros, linear_before_reset=linear_before_reset)
    np.testing.assert_array_equal(a.y, b.y)
    np.testing.assert_array_equal(a.h_n, b.h_n)
    dy, dh = upstream(rng, T, B, H)
    ga, gb = ref.gru_backward(a.cache, dy, dh), ref.gru_backward(b.cache, dy, dh)
    for name in GRAD_FIELDS:
        np.testing.assert_array_equal(getattr(ga, name), getattr(gb, name), err_msg=name)
    assert ga.db_ih.shape == ga.db_hh.shape == (3 * H,)


def test_reference_accepts_a_weights_object(rng):
    """An object with w_ih, w_hh, b_ih, b_hh in place of w_ih; its linear_before_reset wins."""
    T, B, D, H = 3, 2, 3, 4
    kw = gru_inputs(rng, T, B, D, H)
    x, h0 = kw.pop("x"), kw.pop("h0")
    for lbr in (True, False):
        arrays = ref.gru_forward(x, **kw, h0=h0, linear_before_reset=lbr)
        obj = ref.gru_forward(x, SimpleNamespace(**kw, linear_before_reset=lbr), h0=h0,
                              linear_before_reset=not lbr)
        np.testing.assert_array_equal(arrays.y, obj.y)
        np.testing.assert_array_equal(arrays.h_n, obj.h_n)
        assert obj.cache["linear_before_reset"] is lbr
    # Without the attribute, the keyword decides.
    plain = ref.gru_forward(x, SimpleNamespace(**kw), h0=h0, linear_before_reset=False)
    np.testing.assert_array_equal(plain.y, ref.gru_forward(x, **kw, h0=h0, linear_before_reset=False).y)
    assert not np.array_equal(plain.y, ref.gru_forward(x, **kw, h0=h0).y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("linear_before_reset", [True, False])
@pytest.mark.parametrize("T,B,D,H", [(1, 1, 1, 1), (1, 3, 2, 1), (4, 1, 1, 5), (0, 2, 3, 4), (5, 2, 3, 4)])
def test_reference_shapes_and_dtypes(rng, T, B, D, H, linear_before_reset, dtype):
    kw = gru_inputs(rng, T, B, D, H, dtype)
    out = ref.gru_forward(**kw, linear_before_reset=linear_before_reset)
    assert out.y.shape == (T, B, H) and out.h_n.shape == (B, H)
    assert out.cache["gates"].shape == (T, B, 4 * H) and out.cache["h"].shape == (T + 1, B, H)
    if T:
        np.testing.assert_array_equal(out.y[-1], out.h_n)
    else:
        np.testing.assert_array_equal(out.h_n, kw["h0"])
    grads = ref.gru_backward(out.cache, *upstream(rng, T, B, H, dtype))
    for name, arg in zip(GRAD_FIELDS, ("x", "w_ih", "w_hh", "b_ih", "b_hh", "h0")):
        g = getattr(grads, name)
        assert g.shape == kw[arg].shape and g.dtype == dtype, name
    assert out.y.dtype == out.h_n.dtype == dtype


@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_reference_all_lengths_zero(rng, linear_before_reset):
    """Every row of length 0: y = 0, h_n = h0; backward: dh0 = dh_n and every other gradient 0."""
    T, B, D, H = 3, 2, 3, 4
    kw = gru_inputs(rng, T, B, D, H)
    out = ref.gru_forward(**kw, lengths=np.zeros(B, np.int64), linear_before_reset=linear_before_reset)
    np.testing.assert_array_equal(out.y, np.zeros((T, B, H)))
    np.testing.assert_array_equal(out.h_n, kw["h0"])
    np.testing.assert_array_equal(out.cache["gates"], 0)
    dy, dh = upstream(rng, T, B, H)
    grads = ref.gru_backward(out.cache, dy, dh)
    np.testing.assert_array_equal(grads.dh0, dh)
    for name in GRAD_FIELDS[:-1]:
        np.testing.assert_array_equal(getattr(grads, name), 0, err_msg=name)


def test_reference_matches_the_equations_step_by_step(rng):
    """One step of each placement written out in the docstring's terms, with the gate blocks."""
    B, D, H = 3, 2, 4
    kw = gru_inputs(rng, 1, B, D, H)
    x, h = kw["x"][0], kw["h0"]
    (W_ir, W_iz, W_in), (W_hr, W_hz, W_hn) = np.split(kw["w_ih"], 3), np.split(kw["w_hh"], 3)
    (b_ir, b_iz, b_in), (b_hr, b_hz, b_hn) = np.split(kw["b_ih"], 3), np.split(kw["b_hh"], 3)
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    r = sig(x @ W_ir.T + b_ir + h @ W_hr.T + b_hr)
    z = sig(x @ W_iz.T + b_iz + h @ W_hz.T + b_hz)
    n_after = np.tanh(x @ W_in.T + b_in + r * (h @ W_hn.T + b_hn))
    n_before = np.tanh(x @ W_in.T + b_in + (r * h) @ W_hn.T + b_hn)
    for lbr, n in ((True, n_after), (False, n_before)):
        out = ref.gru_forward(**kw, linear_before_reset=lbr)
        assert_close(out.h_n, (1 - z) * n + z * h)
        assert_close(out.cache["gates"][0], np.concatenate(
            [r, z, n, h @ W_hn.T + b_hn if lbr else (r * h) @ W_hn.T + b_hn], axis=1))


# ---------------------------------------------------------------------------------------------
# PyTorch: nn.GRU is the reset-after GRU


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_gru_run(torch, gru, x, h0, lengths, g):
    """nn.GRU forward (over packed sequences when there are lengths), then backward of
    sum(g_0 * y) + sum(g_1 * h_n); returns the outputs and every gradient under our names."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0[None], requires_grad=True)
    if lengths is None:
        y, h_n = gru(xt, h0t)
    else:
        packed = pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
        out, h_n = gru(packed, h0t)
        y, _ = pad_packed_sequence(out, total_length=x.shape[0])
    loss = (y * torch.tensor(g[0])).sum() + (h_n[0] * torch.tensor(g[1])).sum()
    loss.backward()
    p = dict(gru.named_parameters())
    return {
        "y": y.detach().numpy(), "h_n": h_n[0].detach().numpy(), "dx": xt.grad.numpy(),
        "dh0": h0t.grad[0].numpy(), "dw_ih": p["weight_ih_l0"].grad.numpy(), "dw_hh": p["weight_hh_l0"].grad.numpy(),
        "db_ih": p["bias_ih_l0"].grad.numpy(), "db_hh": p["bias_hh_l0"].grad.numpy(),
    }


@pytest.mark.parametrize("lengths", [None, [7, 2, 1, 7, 4]])
def test_torch_gru_forward_and_gradients(torch, rng, lengths):
    T, B, D, H = 7, 5, 4, 6
    torch.manual_seed(0)
    gru = torch.nn.GRU(D, H).double()
    sd = {k: v.detach().numpy() for k, v in gru.state_dict().items()}
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    g = upstream(rng, T, B, H)
    theirs = torch_gru_run(torch, gru, x, h0, lengths, g)

    lens = None if lengths is None else np.array(lengths)
    out = ref.gru_forward(x, sd["weight_ih_l0"], sd["weight_hh_l0"], sd["bias_ih_l0"], sd["bias_hh_l0"], h0,
                          lengths=lens)
    grads = ref.gru_backward(out.cache, *g)
    ours = {"y": out.y, "h_n": out.h_n, **grads._asdict()}
    for name, expected in theirs.items():
        # float64 on both sides, summed in different orders: 1e-10 of the array's scale.
        atol = 1e-10 * max(float(np.max(np.abs(expected))), 1e-30)
        np.testing.assert_allclose(ours[name], expected, rtol=0, atol=atol, err_msg=name)


# ---------------------------------------------------------------------------------------------
# ONNX Runtime: gate blocks z, r, h; B = [Wb | Rb]; both linear_before_reset values


def onnx_gate_order(a, H):
    """PyTorch's gate blocks r, z, n along axis 0 of ``a`` reordered to ONNX's z, r, h."""
    return np.concatenate([a[H : 2 * H], a[0:H], a[2 * H :]])


def onnx_gru_session(onnx, ort, T, B, D, H, W, R, Bias, linear_before_reset):
    from onnx import TensorProto, helper, numpy_helper

    node = helper.make_node(
        "GRU", ["X", "W", "R", "B", "sequence_lens", "initial_h"], ["Y", "Y_h"],
        hidden_size=H, linear_before_reset=int(linear_before_reset),
    )
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [node], "gru",
        [helper.make_tensor_value_info("X", f, [T, B, D]),
         helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]),
         helper.make_tensor_value_info("initial_h", f, [1, B, H])],
        [helper.make_tensor_value_info("Y", f, [T, 1, B, H]), helper.make_tensor_value_info("Y_h", f, [1, B, H])],
        initializer=[numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (Bias, "B"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("linear_before_reset", [True, False])
def test_onnxruntime_gru_with_lengths(rng, linear_before_reset):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    T, B, D, H = 8, 5, 5, 7
    kw = gru_inputs(rng, T, B, D, H, np.float32)
    lengths = np.array([8, 3, 1, 6, 0])
    W = onnx_gate_order(kw["w_ih"], H)[None]
    R = onnx_gate_order(kw["w_hh"], H)[None]
    Bias = np.concatenate([onnx_gate_order(kw["b_ih"], H), onnx_gate_order(kw["b_hh"], H)])[None]
    sess = onnx_gru_session(onnx, ort, T, B, D, H, W, R, Bias, linear_before_reset)
    Y, Y_h = sess.run(None, {"X": kw["x"], "sequence_lens": lengths.astype(np.int32), "initial_h": kw["h0"][None]})

    r32 = ref.gru_forward(**kw, lengths=lengths, linear_before_reset=linear_before_reset)
    r64 = ref.gru_forward(**{k: v.astype(np.float64) for k, v in kw.items()}, lengths=lengths,
                          linear_before_reset=linear_before_reset)
    assert_close(Y[:, 0], r64.y, r32.y, name="Y")
    # A row of length 0 gets Y_h = 0 from ONNX Runtime (its GRU skips such rows; the ONNX spec
    # leaves the case open) and h0 from the reference, like lstm_forward: compared where length > 0.
    ran = lengths > 0
    assert_close(Y_h[0][ran], r64.h_n[ran], r32.h_n[ran], name="Y_h")
