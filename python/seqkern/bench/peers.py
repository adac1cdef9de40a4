"""The benchmark's peers: importing PyTorch, ONNX Runtime, ONNX and OpenVINO when installed, the
``Context`` a setup gets, and the adapters that run our weights in them (ONNX models, ORT
sessions, an OpenVINO runner, torch and ONNX LSTMs, torch formulas of the attention ops)."""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

import seqkern

PEERS = ("numpy", "torch", "ort", "openvino")
# The peers' modules, imported when installed: version key -> module name.
PEER_MODULES = {"torch": "torch", "onnxruntime": "onnxruntime", "onnx": "onnx", "openvino": "openvino"}


@dataclass
class Context:
    """What a setup needs: the thread count, the peer modules (None when absent), an rng."""

    threads: int
    torch: Any = None
    ort: Any = None  # onnxruntime, only when onnx (to build the models) is importable too
    onnx: Any = None
    openvino: Any = None  # reads the same ONNX models; also needs onnx
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))


def import_peers(enabled: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The importable peer modules and a version string for every library the header names."""
    modules: dict[str, Any] = {}
    versions = {"python": platform.python_version(), "seqkern": seqkern.__version__,
                "numpy": np.__version__}
    for key, name in PEER_MODULES.items():
        if not enabled:
            versions[key] = "not used (--no-peers)"
            continue
        try:
            module = __import__(name)
        except Exception:  # an installed but broken peer is as good as absent
            versions[key] = "not installed"
            continue
        modules[key] = module
        versions[key] = str(getattr(module, "__version__", "?"))
    return modules, versions


def onnx_model(ctx: Context, node: Any, inputs: dict[str, tuple], outputs: list[str],
               initializers: dict[str, np.ndarray]) -> Any:
    """A one-node float32 ONNX model (ONNX Runtime and OpenVINO both run it)."""
    helper, tensor_proto = ctx.onnx.helper, ctx.onnx.TensorProto
    graph = helper.make_graph(
        [node],
        "seqkern_bench",
        [helper.make_tensor_value_info(k, tensor_proto.FLOAT, list(s)) for k, s in inputs.items()],
        [helper.make_tensor_value_info(k, tensor_proto.FLOAT, None) for k in outputs],
        initializer=[ctx.onnx.numpy_helper.from_array(a, k) for k, a in initializers.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # a version every recent ONNX Runtime reads
    return model


def ort_session(ctx: Context, node: Any, inputs: dict[str, tuple], outputs: list[str],
                initializers: dict[str, np.ndarray]) -> Any:
    """An ONNX Runtime session over a one-node float32 model, ``ctx.threads`` intra-op threads."""
    model = onnx_model(ctx, node, inputs, outputs, initializers)
    options = ctx.ort.SessionOptions()
    options.intra_op_num_threads = ctx.threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ctx.ort.InferenceSession(model.SerializeToString(), options,
                                    providers=["CPUExecutionProvider"])


def openvino_runner(ctx: Context, model: Any, feed: dict[str, np.ndarray]) -> Callable:
    """OpenVINO's CPU plugin on an ONNX model: float32 (no bf16 down-conversion), latency mode,
    ``ctx.threads`` inference threads; the callable returns the first output."""
    import tempfile

    ov = ctx.openvino
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        ctx.onnx.save(model, path)
        compiled = ov.Core().compile_model(path, "CPU", {
            "INFERENCE_NUM_THREADS": ctx.threads, "INFERENCE_PRECISION_HINT": "f32",
            "PERFORMANCE_HINT": "LATENCY"})
    request = compiled.create_infer_request()
    names = list(feed)

    def run():
        request.infer({names.index(k): v for k, v in feed.items()})
        return request.get_output_tensor(0).data

    return run


def torch_lstm(torch: Any, w_ih, w_hh, bias, cell: bool = False) -> Any:
    """nn.LSTM (or nn.LSTMCell) holding our weights; its second bias is zero."""
    H, D = w_hh.shape[1], w_ih.shape[1]
    module = torch.nn.LSTMCell(D, H) if cell else torch.nn.LSTM(D, H)
    suffix = "" if cell else "_l0"
    with torch.no_grad():
        getattr(module, "weight_ih" + suffix).copy_(torch.from_numpy(w_ih))
        getattr(module, "weight_hh" + suffix).copy_(torch.from_numpy(w_hh))
        getattr(module, "bias_ih" + suffix).copy_(torch.from_numpy(bias))
        getattr(module, "bias_hh" + suffix).zero_()
    return module


def onnx_lstm(ctx: Context, w_ih, w_hh, bias, x_shape: tuple, with_state: bool, build=None) -> Any:
    """ONNX's LSTM operator over our weights (its gate order is i, o, f, c; ours i, f, g, o), as
    an ONNX Runtime session, or whatever ``build`` (onnx_model's signature) makes of it."""
    H = w_hh.shape[1]
    order = [0, 3, 1, 2]
    W = w_ih.reshape(4, H, -1)[order].reshape(1, 4 * H, -1)
    R = w_hh.reshape(4, H, H)[order].reshape(1, 4 * H, H)
    Bias = np.concatenate([bias.reshape(4, H)[order].ravel(), np.zeros(4 * H, np.float32)])
    state = ["h0", "c0"] if with_state else []
    node = ctx.onnx.helper.make_node("LSTM", ["X", "W", "R", "B", ""] + state,
                                     ["Y", "Y_h", "Y_c"], hidden_size=H)
    inputs = {"X": x_shape}
    inputs.update({k: (1, x_shape[1], H) for k in state})
    return (build or ort_session)(ctx, node, inputs, ["Y", "Y_h", "Y_c"],
                                  {"W": W, "R": R, "B": Bias[None]})


def torch_gru(torch: Any, w_ih, w_hh, b_ih, b_hh, cell: bool = False) -> Any:
    """nn.GRU (or nn.GRUCell) holding our weights (the same layout and gate order r, z, n)."""
    H, D = w_hh.shape[1], w_ih.shape[1]
    module = torch.nn.GRUCell(D, H) if cell else torch.nn.GRU(D, H)
    suffix = "" if cell else "_l0"
    with torch.no_grad():
        for name, a in (("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", b_ih), ("bias_hh", b_hh)):
            getattr(module, name + suffix).copy_(torch.from_numpy(a))
    return module


def onnx_gru(ctx: Context, w_ih, w_hh, b_ih, b_hh, x_shape: tuple, with_state: bool, build=None,
             linear_before_reset: bool = True) -> Any:
    """ONNX's GRU operator, by default with linear_before_reset=1 (PyTorch's math), over our weights
    (its gate order is z, r, h; ours r, z, n), as an ONNX Runtime session or what ``build`` makes of it."""
    H = w_hh.shape[1]
    order = [1, 0, 2]

    def reorder(a):
        return a.reshape(3, H, -1)[order].reshape(1, 3 * H, -1)

    Bias = np.concatenate([b_ih.reshape(3, H)[order].ravel(), b_hh.reshape(3, H)[order].ravel()])
    state = ["h0"] if with_state else []
    node = ctx.onnx.helper.make_node("GRU", ["X", "W", "R", "B", ""] + state, ["Y", "Y_h"], hidden_size=H,
                                     linear_before_reset=int(linear_before_reset))
    inputs = {"X": x_shape}
    inputs.update({k: (1, x_shape[1], H) for k in state})
    return (build or ort_session)(ctx, node, inputs, ["Y", "Y_h"],
                                  {"W": reorder(w_ih), "R": reorder(w_hh), "B": Bias[None]})


def torch_rnn(torch: Any, w_ih, w_hh, bias, cell: bool = False) -> Any:
    """nn.RNN (or nn.RNNCell), tanh, holding our weights: bias in bias_ih, zeros in bias_hh."""
    H, D = w_hh.shape[1], w_ih.shape[1]
    module = torch.nn.RNNCell(D, H) if cell else torch.nn.RNN(D, H)
    suffix = "" if cell else "_l0"
    with torch.no_grad():
        for name, a in (("weight_ih", w_ih), ("weight_hh", w_hh), ("bias_ih", bias), ("bias_hh", np.zeros_like(bias))):
            getattr(module, name + suffix).copy_(torch.from_numpy(a))
    return module


def onnx_rnn(ctx: Context, w_ih, w_hh, bias, x_shape: tuple, with_state: bool, build=None) -> Any:
    """ONNX's RNN operator (Tanh) over our weights, as an ONNX Runtime session or what ``build``
    makes of it."""
    H = w_hh.shape[1]
    Bias = np.concatenate([bias, np.zeros_like(bias)])
    state = ["h0"] if with_state else []
    node = ctx.onnx.helper.make_node("RNN", ["X", "W", "R", "B", ""] + state, ["Y", "Y_h"], hidden_size=H)
    inputs = {"X": x_shape}
    inputs.update({k: (1, x_shape[1], H) for k in state})
    return (build or ort_session)(ctx, node, inputs, ["Y", "Y_h"], {"W": w_ih[None], "R": w_hh[None], "B": Bias[None]})


def torch_additive(torch: Any, q, k, v, w_q, w_k, w_v):
    """score_ij = w_v . tanh(W_q q_i + W_k k_j), softmax over j, out_i = sum_j a_ij v_j."""
    scores = torch.tanh((q @ w_q.T)[:, :, None, :] + (k @ w_k.T)[:, None, :, :]) @ w_v
    return torch.softmax(scores, -1) @ v


def torch_pool(torch: Any, h, w, b, w_s):
    """u_t = tanh(h_t W^T + b), alpha = softmax_t(u_t . w_s), context = sum_t alpha_t h_t."""
    alpha = torch.softmax(torch.tanh(h @ w.T + b) @ w_s, 0)
    return (alpha[:, :, None] * h).sum(0)
