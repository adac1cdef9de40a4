"""LSTM against PyTorch's nn.LSTM and ONNX Runtime's LSTM operator, when they are installed."""

from __future__ import annotations

import numpy as np
import pytest

import seqkern
from seqkern import convert
from seqkern import reference as ref

from checks import assert_close


def reverse_padded(a, lengths):
    """Each row's first lengths[b] steps in reverse order, the padding left in place."""
    out = a.copy()
    for b, n in enumerate(lengths):
        out[:n, b] = a[:n, b][::-1]
    return out


def float32_noise(kw64, lengths):
    """How far the float32 reference strays from the float64 one on these inputs."""
    kw32 = {k: (None if v is None else v.astype(np.float32)) for k, v in kw64.items()}
    r64 = ref.lstm_forward(**kw64, lengths=lengths)
    r32 = ref.lstm_forward(**kw32, lengths=lengths)
    return max(float(np.max(np.abs(a - b), initial=0.0)) for a, b in zip(r32[:3], r64[:3]))


# ---------------------------------------------------------------------------------------------
# PyTorch


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def torch_lstm_run(torch, lstm, x, lengths, h0, c0, g):
    """nn.LSTM forward over packed sequences, then backward of sum(g_i * out_i)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0, requires_grad=True)
    c0t = torch.tensor(c0, requires_grad=True)
    packed = pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False)
    out, (h_n, c_n) = lstm(packed, (h0t, c0t))
    y, _ = pad_packed_sequence(out, total_length=x.shape[0])
    loss = (y * torch.tensor(g[0])).sum() + (h_n * torch.tensor(g[1])).sum() + (c_n * torch.tensor(g[2])).sum()
    loss.backward()
    fwd = tuple(a.detach().numpy() for a in (y, h_n, c_n))
    return fwd, xt.grad.numpy(), h0t.grad.numpy(), c0t.grad.numpy()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_torch_forward_backward_packed(torch, rng, dtype):
    T, B, D, H = 9, 5, 6, 20
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(D, H).to(torch.float64 if dtype == np.float64 else torch.float32)
    x = rng.standard_normal((T, B, D)).astype(dtype)
    h0 = rng.standard_normal((1, B, H)).astype(dtype)
    c0 = rng.standard_normal((1, B, H)).astype(dtype)
    lengths = np.array([9, 3, 1, 9, 6])
    g = tuple(rng.standard_normal(s).astype(dtype) for s in ((T, B, H), (1, B, H), (1, B, H)))
    (y_t, hn_t, cn_t), dx_t, dh0_t, dc0_t = torch_lstm_run(torch, lstm, x, lengths, h0, c0, g)

    w = convert.from_torch_lstm(lstm.state_dict())
    out = seqkern.lstm_forward(x, **w, h0=h0[0], c0=c0[0], lengths=lengths)
    grads = seqkern.lstm_backward(out.cache, g[0], g[1][0], g[2][0])
    sd_grads = {n: p.grad.numpy() for n, p in lstm.named_parameters()}
    pairs = [
        ("y", out.y, y_t), ("h_n", out.h_n, hn_t[0]), ("c_n", out.c_n, cn_t[0]),
        ("dx", grads.dx, dx_t), ("dh0", grads.dh0, dh0_t[0]), ("dc0", grads.dc0, dc0_t[0]),
        ("dw_ih", grads.dw_ih, sd_grads["weight_ih_l0"]), ("dw_hh", grads.dw_hh, sd_grads["weight_hh_l0"]),
        ("dbias", grads.dbias, sd_grads["bias_ih_l0"]), ("dbias", grads.dbias, sd_grads["bias_hh_l0"]),
    ]
    for name, ours, theirs in pairs:
        scale = float(np.max(np.abs(theirs)))
        # Both sides round differently; float32 allows a few hundred ulp over the recurrence.
        atol = (1e-10 if dtype == np.float64 else 2e-5) * max(scale, 1.0)
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=atol, err_msg=name)


def run_stacked(x, lengths, sd, num_layers, dtype):
    """A bidirectional multi-layer LSTM from per-layer, per-direction seqkern calls."""
    h_n, c_n = [], []
    inp = x
    for layer in range(num_layers):
        outs = []
        for direction in (0, 1):
            w = {k: (None if v is None else v.astype(dtype)) for k, v in
                 convert.from_torch_lstm(sd, layer, direction).items()}
            xin = inp if direction == 0 else reverse_padded(inp, lengths)
            out = seqkern.lstm_forward(xin, **w, lengths=lengths)
            outs.append(out.y if direction == 0 else reverse_padded(out.y, lengths))
            h_n.append(out.h_n)
            c_n.append(out.c_n)
        inp = np.concatenate(outs, axis=2)
    return inp, np.stack(h_n), np.stack(c_n)


def test_torch_converter_bidirectional_two_layers(torch, rng):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    T, B, D, H = 7, 4, 5, 12
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(D, H, num_layers=2, bidirectional=True).double()
    sd = lstm.state_dict()
    x = rng.standard_normal((T, B, D))
    lengths = np.array([7, 2, 5, 7])
    with torch.no_grad():
        packed = pack_padded_sequence(torch.tensor(x), torch.tensor(lengths), enforce_sorted=False)
        out, (h_t, c_t) = lstm(packed)
        y_t, _ = pad_packed_sequence(out, total_length=T)
    y, h_n, c_n = run_stacked(x, lengths, sd, 2, np.float64)
    for ours, theirs in ((y, y_t), (h_n, h_t), (c_n, c_t)):
        np.testing.assert_allclose(ours, theirs.numpy(), rtol=0, atol=1e-12)

    # Back again: seqkern's weights loaded into a fresh nn.LSTM give the same module.
    fresh = torch.nn.LSTM(D, H, num_layers=2, bidirectional=True).double()
    state = {}
    for layer in range(2):
        for direction in (0, 1):
            w = convert.from_torch_lstm(sd, layer, direction)
            state.update(convert.to_torch_lstm(**w, layer=layer, direction=direction))
    fresh.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
    with torch.no_grad():
        y2, (h2, c2) = fresh(torch.tensor(x))
        y1, (h1, c1) = lstm(torch.tensor(x))
    for a, b in ((y1, y2), (h1, h2), (c1, c2)):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=0, atol=1e-12)


def test_torch_state_dict_with_prefix_and_no_bias(torch):
    model = torch.nn.Sequential(torch.nn.LSTM(3, 4, bias=False))
    w = convert.from_torch_lstm(model.state_dict())
    assert w["bias"] is None and w["w_ih"].shape == (16, 3) and w["w_hh"].shape == (16, 4)
    with pytest.raises(ValueError, match="proj_size"):
        convert.from_torch_lstm(torch.nn.LSTM(3, 4, proj_size=2).state_dict())


# ---------------------------------------------------------------------------------------------
# ONNX Runtime


def onnx_lstm_model(onnx, T, B, D, H, W, R, Bias, P, direction):
    from onnx import TensorProto, helper, numpy_helper

    dirs = 2 if direction == "bidirectional" else 1
    node = helper.make_node(
        "LSTM",
        ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"],
        ["Y", "Y_h", "Y_c"],
        hidden_size=H,
        direction=direction,
    )
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "lstm",
        [
            helper.make_tensor_value_info("X", f, [T, B, D]),
            helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]),
            helper.make_tensor_value_info("initial_h", f, [dirs, B, H]),
            helper.make_tensor_value_info("initial_c", f, [dirs, B, H]),
        ],
        [
            helper.make_tensor_value_info("Y", f, [T, dirs, B, H]),
            helper.make_tensor_value_info("Y_h", f, [dirs, B, H]),
            helper.make_tensor_value_info("Y_c", f, [dirs, B, H]),
        ],
        initializer=[numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (Bias, "B"), (P, "P"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_onnxruntime_lstm_with_peepholes_and_lengths(rng, direction):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    T, B, D, H = 8, 4, 5, 11
    dirs = 2 if direction == "bidirectional" else 1
    f32 = np.float32
    W = (rng.standard_normal((dirs, 4 * H, D)) * 0.4).astype(f32)
    R = (rng.standard_normal((dirs, 4 * H, H)) * 0.4).astype(f32)
    Bias = (rng.standard_normal((dirs, 8 * H)) * 0.3).astype(f32)
    P = (rng.standard_normal((dirs, 3 * H)) * 0.5).astype(f32)
    x = rng.standard_normal((T, B, D)).astype(f32)
    h0 = rng.standard_normal((dirs, B, H)).astype(f32)
    c0 = rng.standard_normal((dirs, B, H)).astype(f32)
    lengths = np.array([8, 3, 1, 6])

    sess = ort.InferenceSession(onnx_lstm_model(onnx, T, B, D, H, W, R, Bias, P, direction),
                                providers=["CPUExecutionProvider"])
    Y, Y_h, Y_c = sess.run(None, {"X": x, "sequence_lens": lengths.astype(np.int32), "initial_h": h0,
                                  "initial_c": c0})
    for d in range(dirs):
        w = convert.from_onnx_lstm(W, R, Bias, P, direction=d)
        xin = x if d == 0 else reverse_padded(x, lengths)
        out = seqkern.lstm_forward(xin, **w, h0=h0[d], c0=c0[d], lengths=lengths)
        y = out.y if d == 0 else reverse_padded(out.y, lengths)
        kw64 = {k: (None if v is None else v.astype(np.float64)) for k, v in w.items()}
        kw64.update(x=xin.astype(np.float64), h0=h0[d].astype(np.float64), c0=c0[d].astype(np.float64))
        atol = 8 * float32_noise(kw64, lengths) + 1e-6
        np.testing.assert_allclose(y, Y[:, d], rtol=0, atol=atol, err_msg=f"Y dir {d}")
        np.testing.assert_allclose(out.h_n, Y_h[d], rtol=0, atol=atol, err_msg=f"Y_h dir {d}")
        np.testing.assert_allclose(out.c_n, Y_c[d], rtol=0, atol=atol, err_msg=f"Y_c dir {d}")


def test_keras_converter_gate_order(rng):
    """Keras stores kernels transposed, gates i, f, c, o: the same cell as seqkern's i, f, g, o."""
    D, H, T, B = 3, 5, 4, 2
    kernel, rec, bias = rng.standard_normal((D, 4 * H)), rng.standard_normal((H, 4 * H)), rng.standard_normal(4 * H)
    w = convert.from_keras_lstm(kernel, rec, bias)
    np.testing.assert_array_equal(w["w_ih"], kernel.T)
    np.testing.assert_array_equal(w["w_hh"], rec.T)
    # One Keras step written out from its definition.
    x = rng.standard_normal((T, B, D))
    h = np.zeros((B, H))
    c = np.zeros((B, H))
    for t in range(T):
        z = x[t] @ kernel + h @ rec + bias
        zi, zf, zc, zo = (z[:, k * H : (k + 1) * H] for k in range(4))
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        c = sig(zf) * c + sig(zi) * np.tanh(zc)
        h = sig(zo) * np.tanh(c)
    out = seqkern.lstm_forward(x, **w)
    assert_close(out.h_n, h)
    assert_close(out.c_n, c)
    with pytest.raises(ValueError, match="recurrent_kernel"):
        convert.from_keras_lstm(kernel, rec[:, :-1])


def test_onnx_converter_reorders_gates(rng):
    H, D = 3, 2
    blocks = [np.full((H, D), k, float) for k in range(4)]  # ONNX order i, o, f, c
    W = np.concatenate(blocks)[None]
    R = np.concatenate([np.full((H, H), k, float) for k in range(4)])[None]
    Bias = np.concatenate([np.full(H, k, float) for k in range(4)] * 2)[None]
    P = np.concatenate([np.full(H, k, float) for k in range(3)])[None]
    w = convert.from_onnx_lstm(W, R, Bias, P)
    assert [w["w_ih"][k * H, 0] for k in range(4)] == [0, 2, 3, 1]
    assert [w["w_hh"][k * H, 0] for k in range(4)] == [0, 2, 3, 1]
    assert [w["bias"][k * H] for k in range(4)] == [0, 4, 6, 2]
    assert [w["peephole"][k, 0] for k in range(3)] == [0, 2, 1]
    with pytest.raises(ValueError, match="direction 1 is out of range"):
        convert.from_onnx_lstm(W, R, direction=1)
