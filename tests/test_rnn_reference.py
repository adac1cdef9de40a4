"""The reference plain RNN (tanh and relu): its backward against float64 finite differences, its
shapes and edge cases, and its forward and gradients against PyTorch's nn.RNN and ONNX Runtime's
RNN operator (through the converters) when they are installed."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from seqkern import convert
from seqkern import reference as ref

from checks import assert_close, check_grad

GRAD_FIELDS = ("dx", "dw_ih", "dw_hh", "dbias", "dh0")
NONLINEARITIES = ["tanh", "relu"]


def rnn_inputs(rng, T, B, D, H, dtype=np.float64):
    """x, w_ih, w_hh, bias, h0, weights scaled so that the state neither dies out nor blows up."""
    kw = {
        "x": rng.standard_normal((T, B, D)),
        "w_ih": rng.standard_normal((H, D)) / np.sqrt(max(D, 1)),
        "w_hh": rng.standard_normal((H, H)) * 0.6 / np.sqrt(max(H, 1)),
        "bias": rng.standard_normal(H) * 0.5,
        "h0": rng.standard_normal((B, H)),
    }
    return {k: v.astype(dtype) for k, v in kw.items()}


def upstream(rng, T, B, H, dtype=np.float64):
    return rng.standard_normal((T, B, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize(
    "T,B,D,H,lengths",
    [(1, 1, 1, 1, None), (5, 3, 4, 6, [5, 0, 2]), (4, 2, 3, 5, [1, 4]), (6, 4, 2, 3, None), (3, 3, 2, 4, [0, 3, 0])],
)
def test_reference_backward_finite_differences(rng, T, B, D, H, lengths, nonlinearity):
    inputs = rnn_inputs(rng, T, B, D, H)
    lens = None if lengths is None else np.array(lengths)

    def f(**kw):
        return tuple(ref.rnn_forward(**kw, lengths=lens, nonlinearity=nonlinearity)[:2])

    out = ref.rnn_forward(**inputs, lengths=lens, nonlinearity=nonlinearity)
    # relu's kink: keep the points where finite differences are smooth (|a| well above eps).
    assert np.all(np.abs(out.cache["a"][out.cache["a"] != 0]) > 1e-4)
    g = upstream(rng, T, B, H)
    grads = ref.rnn_backward(out.cache, *g)
    analytic = {"__g__": g, **{name: getattr(grads, "d" + name) for name in inputs}}
    check_grad(f, inputs, analytic, rng=rng, name=f"rnn {nonlinearity}")


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
def test_reference_upstream_defaults_padding_and_no_bias(rng, nonlinearity):
    T, B, D, H = 4, 3, 2, 5
    lengths = np.array([4, 1, 0])
    kw = rnn_inputs(rng, T, B, D, H)
    out = ref.rnn_forward(**kw, lengths=lengths, nonlinearity=nonlinearity)
    dy, dh = upstream(rng, T, B, H)
    past = np.arange(T)[:, None] >= lengths[None, :]
    noisy = np.where(past[..., None], 1e3 * rng.standard_normal(dy.shape), dy)
    pairs = [
        (ref.rnn_backward(out.cache, None, dh), ref.rnn_backward(out.cache, np.zeros_like(dy), dh)),
        (ref.rnn_backward(out.cache, dy, None), ref.rnn_backward(out.cache, dy, np.zeros_like(dh))),
        (ref.rnn_backward(out.cache, dy, dh), ref.rnn_backward(out.cache, noisy, dh)),
    ]
    for a, b in pairs:
        for name in GRAD_FIELDS:
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert np.all(out.y[past] == 0)
    np.testing.assert_array_equal(out.h_n[2], kw["h0"][2])
    no_bias = ref.rnn_forward(**dict(kw, bias=None), nonlinearity=nonlinearity)
    zero_bias = ref.rnn_forward(**dict(kw, bias=np.zeros(H)), nonlinearity=nonlinearity)
    np.testing.assert_array_equal(no_bias.y, zero_bias.y)


def test_reference_matches_the_equations_and_accepts_a_weights_object(rng):
    T, B, D, H = 3, 2, 3, 4
    kw = rnn_inputs(rng, T, B, D, H)
    for nl, act in (("tanh", np.tanh), ("relu", lambda a: np.maximum(a, 0))):
        out = ref.rnn_forward(**kw, nonlinearity=nl)
        h = kw["h0"]
        for t in range(T):
            h = act(kw["x"][t] @ kw["w_ih"].T + h @ kw["w_hh"].T + kw["bias"])
            np.testing.assert_allclose(out.y[t], h, rtol=1e-12, atol=1e-12)
        obj = SimpleNamespace(w_ih=kw["w_ih"], w_hh=kw["w_hh"], bias=kw["bias"], nonlinearity=nl)
        np.testing.assert_array_equal(ref.rnn_forward(kw["x"], obj, h0=kw["h0"]).y, out.y)
    with pytest.raises(ValueError, match="nonlinearity must be 'tanh' or 'relu'"):
        ref.rnn_forward(**kw, nonlinearity="sigmoid")


# ---------------------------------------------------------------------------------------------
# PyTorch's nn.RNN


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


@pytest.mark.parametrize("nonlinearity", NONLINEARITIES)
@pytest.mark.parametrize("lengths", [None, [7, 2, 1, 7, 4]])
def test_torch_rnn_forward_and_gradients(torch, rng, lengths, nonlinearity):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    T, B, D, H = 7, 5, 4, 6
    torch.manual_seed(0)
    rnn = torch.nn.RNN(D, H, nonlinearity=nonlinearity).double()
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    g = upstream(rng, T, B, H)
    xt = torch.tensor(x, requires_grad=True)
    h0t = torch.tensor(h0[None], requires_grad=True)
    if lengths is None:
        y, h_n = rnn(xt, h0t)
    else:
        out, h_n = rnn(pack_padded_sequence(xt, torch.tensor(lengths), enforce_sorted=False), h0t)
        y, _ = pad_packed_sequence(out, total_length=T)
    ((y * torch.tensor(g[0])).sum() + (h_n[0] * torch.tensor(g[1])).sum()).backward()
    p = dict(rnn.named_parameters())
    theirs = {"y": y.detach().numpy(), "h_n": h_n[0].detach().numpy(), "dx": xt.grad.numpy(),
              "dh0": h0t.grad[0].numpy(), "dw_ih": p["weight_ih_l0"].grad.numpy(),
              "dw_hh": p["weight_hh_l0"].grad.numpy(), "dbias": p["bias_ih_l0"].grad.numpy()}

    d = convert.from_torch_rnn(rnn.state_dict(), nonlinearity=nonlinearity)
    out = ref.rnn_forward(x, **d, h0=h0, lengths=None if lengths is None else np.array(lengths))
    ours = {"y": out.y, "h_n": out.h_n, **ref.rnn_backward(out.cache, *g)._asdict()}
    # dbias is the gradient of each of PyTorch's two biases.
    checks = [*theirs.items(), ("dbias", p["bias_hh_l0"].grad.numpy())]
    for name, expected in checks:
        atol = 1e-10 * max(float(np.max(np.abs(expected))), 1e-30)
        np.testing.assert_allclose(ours[name], expected, rtol=0, atol=atol, err_msg=name)

    # And back: the converted weights give PyTorch the same module.
    back = torch.nn.RNN(D, H, nonlinearity=nonlinearity).double()
    back.load_state_dict({k: torch.from_numpy(v) for k, v in convert.to_torch_rnn(d["w_ih"], d["w_hh"], d["bias"]).items()})
    np.testing.assert_allclose(back(torch.tensor(x), h0t.detach())[0].detach().numpy(),
                               rnn(torch.tensor(x), h0t.detach())[0].detach().numpy(), rtol=0, atol=1e-12)


def test_converters_check_their_input(rng):
    sd = {"weight_ih_l0": np.zeros((4, 3)), "weight_hh_l0": np.zeros((4, 4))}
    d = convert.from_torch_rnn(sd)
    assert d["bias"] is None and d["nonlinearity"] == "tanh"
    with pytest.raises(ValueError, match="from_torch_rnn: expected weight_ih_l0"):
        convert.from_torch_rnn({"weight_ih_l0": np.zeros((4, 3)), "weight_hh_l0": np.zeros((3, 3, 1))})
    with pytest.raises(KeyError, match="from_torch_rnn: state_dict has no 'weight_ih_l1'"):
        convert.from_torch_rnn(sd, layer=1)
    with pytest.raises(ValueError, match="from_torch_rnn: nonlinearity"):
        convert.from_torch_rnn(sd, nonlinearity="gelu")
    with pytest.raises(ValueError, match="from_onnx_rnn: activation must be"):
        convert.from_onnx_rnn(np.zeros((1, 4, 3)), np.zeros((1, 4, 4)), activation="Sigmoid")
    with pytest.raises(ValueError, match=r"from_onnx_rnn: B must have shape \(dirs, 2H\)"):
        convert.from_onnx_rnn(np.zeros((1, 4, 3)), np.zeros((1, 4, 4)), np.zeros((1, 4)))


# ---------------------------------------------------------------------------------------------
# ONNX Runtime's RNN operator, with sequence_lens, through from_onnx_rnn


@pytest.mark.parametrize("activation", ["Tanh", "Relu"])
def test_onnxruntime_rnn_with_lengths(rng, activation):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    T, B, D, H = 8, 5, 5, 7
    f32 = np.float32
    W = (rng.standard_normal((1, H, D)) / np.sqrt(D)).astype(f32)
    R = (rng.standard_normal((1, H, H)) * 0.6 / np.sqrt(H)).astype(f32)
    Bias = (rng.standard_normal((1, 2 * H)) * 0.5).astype(f32)
    x = rng.standard_normal((T, B, D)).astype(f32)
    h0 = rng.standard_normal((B, H)).astype(f32)
    lengths = np.array([8, 3, 1, 6, 0])
    node = helper.make_node("RNN", ["X", "W", "R", "B", "sequence_lens", "initial_h"], ["Y", "Y_h"],
                            hidden_size=H, activations=[activation])
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        [node], "rnn",
        [helper.make_tensor_value_info("X", f, [T, B, D]),
         helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [B]),
         helper.make_tensor_value_info("initial_h", f, [1, B, H])],
        [helper.make_tensor_value_info("Y", f, [T, 1, B, H]), helper.make_tensor_value_info("Y_h", f, [1, B, H])],
        initializer=[numpy_helper.from_array(a, n) for a, n in ((W, "W"), (R, "R"), (Bias, "B"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    Y, Y_h = sess.run(None, {"X": x, "sequence_lens": lengths.astype(np.int32), "initial_h": h0[None]})

    d = convert.from_onnx_rnn(W, R, Bias, activation=activation)
    r32 = ref.rnn_forward(x, **d, h0=h0, lengths=lengths)
    d64 = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v) for k, v in d.items()}
    r64 = ref.rnn_forward(x.astype(np.float64), **d64, h0=h0.astype(np.float64), lengths=lengths)
    assert_close(Y[:, 0], r64.y, r32.y, name="Y")
    ran = lengths > 0  # a row of length 0: ONNX Runtime gives Y_h = 0, we keep h0 (as for the GRU)
    assert_close(Y_h[0][ran], r64.h_n[ran], r32.h_n[ran], name="Y_h")
