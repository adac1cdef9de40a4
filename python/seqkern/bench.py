"""``python -m seqkern bench``: time every kernel against NumPy, PyTorch and ONNX Runtime.

Each entry of the suite is an op, one named shape, an explicit flop (or byte) formula and a
setup function that builds the inputs once and returns one zero-argument callable per
implementation: ``seqkern``, ``numpy`` (``seqkern.reference`` in float32), ``torch`` and ``ort``
where they apply and are installed. All of them run on the same float32 inputs with the same
thread count. Every call is timed the same way (two warm-up calls, then the median of at least
seven repeats, three for calls over half a second), with a pause between items because BLAS and
OpenMP threads keep spinning for a while after a call.

The machine's float32 matmul rate (``numpy.matmul``) is measured first in the same run; every row
reports its GFLOP/s as a fraction of it. Ratios are ``peer_ms / seqkern_ms``: above 1 means
seqkern is faster. The single LSTM step has no reference twin (it is the streaming API), so its
``numpy`` baseline is the step as a NumPy user writes it. The ``lstm_forward`` rows time
inference as the peers do it (weights prepared once, no cache kept for a backward); the
``+backward`` rows time a training step from plain arrays. On the GEMM-bound shapes seqkern is
timed at one thread too: an extra row, and ``x1thr`` (the speed-up of all threads) on the main one.

Usage::

    python -m seqkern bench [--quick] [--op NAME ...] [--threads N] [--repeats N]
                            [--json FILE] [--plot FILE.png] [--no-peers] [--all-isas]
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time
import zlib
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

import seqkern
from seqkern import _bench_check, reference

PEERS = ("numpy", "torch", "ort", "openvino")
# The peers' modules, imported when installed: version key -> module name.
PEER_MODULES = {"torch": "torch", "onnxruntime": "onnxruntime", "onnx": "onnx", "openvino": "openvino"}

# ---------------------------------------------------------------------------------------------
# Timing


@dataclass
class Timing:
    seconds: float  # median seconds per call
    repeats: int
    number: int  # calls per timed repeat


def time_call(
    fn: Callable[[], object],
    repeats: int = 7,
    warmup: int = 2,
    min_repeat_s: float = 0.005,
    slow_s: float = 0.5,
) -> Timing:
    """Median seconds per call of ``fn()``.

    ``warmup`` untimed calls first; then ``repeats`` timed repeats, cut to 3 (never below what was
    asked) when one call takes over ``slow_s``. Calls faster than ``min_repeat_s`` are batched, so
    one repeat lasts about that long and the timer's resolution and the loop cost stay negligible.
    """
    last = None
    for _ in range(warmup):
        t0 = time.perf_counter()
        fn()
        last = time.perf_counter() - t0
    number = 1
    if last is not None and last < min_repeat_s:
        number = min(100_000, math.ceil(min_repeat_s / max(last, 1e-7)))
        for _ in range(number):  # settle caches and branch predictors at the batched rhythm
            fn()
    n = repeats if last is None or last <= slow_s else min(repeats, 3)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        samples.append((time.perf_counter() - t0) / number)
    return Timing(statistics.median(samples), n, number)


# ---------------------------------------------------------------------------------------------
# Peers and thread control


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


class ThreadControl:
    """One thread count for seqkern, PyTorch and NumPy's BLAS (ORT takes it per session);
    ``restore()`` puts back what the process had before."""

    def __init__(self, torch: Any):
        self.torch = torch
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:
            threadpool_limits = None
        self._blas_limits = threadpool_limits
        self._blas_original = None  # the first limiter remembers the original BLAS settings
        self._original = (seqkern.get_num_threads(), torch.get_num_threads() if torch else None)
        self.blas_note = "" if threadpool_limits else (
            "threadpoolctl not installed: NumPy's BLAS uses its own default thread count")

    def set(self, n: int) -> None:
        seqkern.set_num_threads(n)
        if self.torch is not None:
            self.torch.set_num_threads(n)
        if self._blas_limits is not None:
            limiter = self._blas_limits(limits=n, user_api="blas")
            self._blas_original = self._blas_original or limiter

    def restore(self) -> None:
        # threadpoolctl restores every pool it saw (OpenMP's too), so it goes first.
        if self._blas_original is not None:
            self._blas_original.restore_original_limits()
        seqkern.set_num_threads(self._original[0])
        if self.torch is not None:
            self.torch.set_num_threads(self._original[1])


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


# ---------------------------------------------------------------------------------------------
# Setups: inputs once, then one callable per implementation


def setup_softmax(d: dict, ctx: Context) -> dict[str, Callable]:
    x = ctx.rng.standard_normal(d["x"], dtype=np.float32)
    axis, f = d["axis"], seqkern.softmax
    impls: dict[str, Callable] = {"seqkern": lambda: f(x, axis)}
    impls["numpy"] = lambda: reference.softmax(x, axis)
    if ctx.torch:
        torch, xt = ctx.torch, ctx.torch.from_numpy(x)
        impls["torch"] = lambda: torch.softmax(xt, axis)
    if ctx.ort:
        node = ctx.onnx.helper.make_node("Softmax", ["x"], ["y"], axis=axis)
        sess = ort_session(ctx, node, {"x": x.shape}, ["y"], {})
        impls["ort"] = lambda: sess.run(None, {"x": x})
    return impls


def setup_softmax_backward(d: dict, ctx: Context) -> dict[str, Callable]:
    axis = d["axis"]
    y = reference.softmax(ctx.rng.standard_normal(d["x"], dtype=np.float32), axis)
    dy = ctx.rng.standard_normal(d["x"], dtype=np.float32)
    f = seqkern.softmax_backward
    impls: dict[str, Callable] = {"seqkern": lambda: f(y, dy, axis)}
    impls["numpy"] = lambda: reference.softmax_backward(y, dy, axis)
    if ctx.torch:
        torch, yt, dyt = ctx.torch, ctx.torch.from_numpy(y), ctx.torch.from_numpy(dy)
        impls["torch"] = lambda: torch._softmax_backward_data(dyt, yt, axis, torch.float32)
    return impls


def _lstm_data(d: dict, rng: np.random.Generator, steps: int | None = None):
    T, B, D, H = (steps or d["T"]), d["B"], d["D"], d["H"]
    s = 1.0 / math.sqrt(H)  # PyTorch's initialisation range
    x = rng.standard_normal((T, B, D), dtype=np.float32)
    w_ih = rng.uniform(-s, s, (4 * H, D)).astype(np.float32)
    w_hh = rng.uniform(-s, s, (4 * H, H)).astype(np.float32)
    bias = rng.uniform(-s, s, 4 * H).astype(np.float32)
    return x, w_ih, w_hh, bias


def _torch_lstm(torch: Any, w_ih, w_hh, bias, cell: bool = False) -> Any:
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


def _onnx_lstm(ctx: Context, w_ih, w_hh, bias, x_shape: tuple, with_state: bool, build=None) -> Any:
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


def setup_lstm_forward(d: dict, ctx: Context) -> dict[str, Callable]:
    """Inference, as the peers run it: weights prepared once (an LSTMWeights, like a torch module
    or an ORT session), no cache for a backward (torch under no_grad, ORT keep none either)."""
    x, w_ih, w_hh, bias = _lstm_data(d, ctx.rng)
    f, weights = seqkern.lstm_forward, seqkern.LSTMWeights(w_ih, w_hh, bias)
    impls: dict[str, Callable] = {"seqkern": lambda: f(x, weights, need_cache=False)}
    impls["numpy"] = lambda: reference.lstm_forward(x, w_ih, w_hh, bias)
    if ctx.torch:
        torch, xt = ctx.torch, ctx.torch.from_numpy(x)
        lstm = _torch_lstm(torch, w_ih, w_hh, bias)

        def torch_forward():
            with torch.no_grad():
                return lstm(xt)

        impls["torch"] = torch_forward
    if ctx.ort:
        sess = _onnx_lstm(ctx, w_ih, w_hh, bias, x.shape, with_state=False)
        impls["ort"] = lambda: sess.run(["Y"], {"X": x})
    if ctx.openvino:
        model = _onnx_lstm(ctx, w_ih, w_hh, bias, x.shape, with_state=False, build=onnx_model)
        impls["openvino"] = openvino_runner(ctx, model, {"X": x})
    return impls


def setup_lstm_train(d: dict, ctx: Context) -> dict[str, Callable]:
    """Forward, then backward from a gradient on every output step (weights and x get gradients)."""
    x, w_ih, w_hh, bias = _lstm_data(d, ctx.rng)
    dy = ctx.rng.standard_normal((d["T"], d["B"], d["H"]), dtype=np.float32)
    fwd, bwd = seqkern.lstm_forward, seqkern.lstm_backward
    impls: dict[str, Callable] = {"seqkern": lambda: bwd(fwd(x, w_ih, w_hh, bias)[-1], dy)}
    rf, rb = reference.lstm_forward, reference.lstm_backward
    impls["numpy"] = lambda: rb(rf(x, w_ih, w_hh, bias)[-1], dy)
    if ctx.torch:
        torch, lstm = ctx.torch, _torch_lstm(ctx.torch, w_ih, w_hh, bias)
        xt, dyt = torch.from_numpy(x.copy()).requires_grad_(), torch.from_numpy(dy)

        def torch_train():
            lstm.zero_grad(set_to_none=True)
            xt.grad = None
            lstm(xt)[0].backward(dyt)
            return xt.grad  # dx, what --check compares with seqkern's first gradient

        impls["torch"] = torch_train
    return impls


def _numpy_lstm_step(x_t, h, c, w_ih_t, w_hh_t, bias):
    """One LSTM step the way a NumPy user writes it (weights pre-transposed)."""
    a = x_t @ w_ih_t + h @ w_hh_t + bias
    i, f, g, o = np.split(a, 4, axis=1)
    c_new = c / (1 + np.exp(-f)) + np.tanh(g) / (1 + np.exp(-i))
    return np.tanh(c_new) / (1 + np.exp(-o)), c_new


def setup_lstm_step(d: dict, ctx: Context) -> dict[str, Callable]:
    """One step for B rows with packed weights, into caller buffers (streaming inference)."""
    x, w_ih, w_hh, bias = _lstm_data(d, ctx.rng, steps=1)
    x_t = x[0]
    h = (0.5 * ctx.rng.standard_normal((d["B"], d["H"]))).astype(np.float32)
    c = (0.5 * ctx.rng.standard_normal((d["B"], d["H"]))).astype(np.float32)
    out_h, out_c = np.empty_like(h), np.empty_like(c)
    weights = seqkern.LSTMWeights(w_ih, w_hh, bias)
    step = weights.step
    impls: dict[str, Callable] = {"seqkern": lambda: step(x_t, h, c, out_h=out_h, out_c=out_c)}
    w_ih_t, w_hh_t = np.ascontiguousarray(w_ih.T), np.ascontiguousarray(w_hh.T)
    impls["numpy"] = lambda: _numpy_lstm_step(x_t, h, c, w_ih_t, w_hh_t, bias)
    if ctx.torch:
        torch, cell = ctx.torch, _torch_lstm(ctx.torch, w_ih, w_hh, bias, cell=True)
        xt, state = torch.from_numpy(x_t), (torch.from_numpy(h), torch.from_numpy(c))

        def torch_step():
            with torch.no_grad():
                return cell(xt, state)

        impls["torch"] = torch_step
    if ctx.ort:
        sess = _onnx_lstm(ctx, w_ih, w_hh, bias, x.shape, with_state=True)
        feed = {"X": x, "h0": h[None], "c0": c[None]}
        impls["ort"] = lambda: sess.run(["Y_h", "Y_c"], feed)
    return impls


def _qkv(d: dict, rng: np.random.Generator):
    shape = (d["B"], d["NH"], d["L"], d["Dh"])
    return tuple(rng.standard_normal(shape, dtype=np.float32) for _ in range(3))


def setup_attention_forward(d: dict, ctx: Context) -> dict[str, Callable]:
    q, k, v = _qkv(d, ctx.rng)
    f = seqkern.attention_forward
    impls: dict[str, Callable] = {"seqkern": lambda: f(q, k, v)}
    impls["numpy"] = lambda: reference.attention_forward(q, k, v)
    if ctx.torch:
        torch = ctx.torch
        sdpa = torch.nn.functional.scaled_dot_product_attention
        qt, kt, vt = (torch.from_numpy(a) for a in (q, k, v))

        def torch_forward():
            with torch.no_grad():
                return sdpa(qt, kt, vt)

        impls["torch"] = torch_forward
    return impls


def setup_attention_train(d: dict, ctx: Context) -> dict[str, Callable]:
    q, k, v = _qkv(d, ctx.rng)
    dout = ctx.rng.standard_normal(q.shape, dtype=np.float32)
    fwd, bwd = seqkern.attention_forward, seqkern.attention_backward
    impls: dict[str, Callable] = {"seqkern": lambda: bwd(fwd(q, k, v)[-1], dout)}
    rf, rb = reference.attention_forward, reference.attention_backward
    impls["numpy"] = lambda: rb(rf(q, k, v)[-1], dout)
    if ctx.torch:
        torch = ctx.torch
        sdpa = torch.nn.functional.scaled_dot_product_attention
        ts = [torch.from_numpy(a.copy()).requires_grad_() for a in (q, k, v)]
        doutt = torch.from_numpy(dout)

        def torch_train():
            for t in ts:
                t.grad = None
            sdpa(*ts).backward(doutt)
            return ts[0].grad

        impls["torch"] = torch_train
    return impls


def _additive_data(d: dict, rng: np.random.Generator):
    B, Lq, Lk, D, A = d["B"], d["Lq"], d["Lk"], d["D"], d["A"]
    s = 1.0 / math.sqrt(D)
    q = rng.standard_normal((B, Lq, D), dtype=np.float32)
    k = rng.standard_normal((B, Lk, D), dtype=np.float32)
    v = rng.standard_normal((B, Lk, D), dtype=np.float32)
    w_q = rng.uniform(-s, s, (A, D)).astype(np.float32)
    w_k = rng.uniform(-s, s, (A, D)).astype(np.float32)
    w_v = rng.uniform(-s, s, A).astype(np.float32)
    return q, k, v, w_q, w_k, w_v


def _torch_additive(torch: Any, q, k, v, w_q, w_k, w_v):
    """score_ij = w_v . tanh(W_q q_i + W_k k_j), softmax over j, out_i = sum_j a_ij v_j."""
    scores = torch.tanh((q @ w_q.T)[:, :, None, :] + (k @ w_k.T)[:, None, :, :]) @ w_v
    return torch.softmax(scores, -1) @ v


def _setup_fused(ctx: Context, args: tuple, grad: np.ndarray, names: tuple[str, str],
                 torch_formula: Callable, train: bool) -> dict[str, Callable]:
    """Callables for an op whose forward returns (..., cache) and whose backward takes
    (cache, grad): seqkern, the NumPy reference and, when installed, a torch autograd formula."""
    fwd, bwd = (getattr(seqkern, n) for n in names)
    rf, rb = (getattr(reference, n) for n in names)
    if train:
        impls: dict[str, Callable] = {"seqkern": lambda: bwd(fwd(*args)[-1], grad),
                                      "numpy": lambda: rb(rf(*args)[-1], grad)}
    else:
        impls = {"seqkern": lambda: fwd(*args), "numpy": lambda: rf(*args)}
    if ctx.torch:
        torch = ctx.torch
        ts = [torch.from_numpy(a.copy()).requires_grad_(train) for a in args]
        grad_t = torch.from_numpy(grad)

        def torch_run():
            if not train:
                with torch.no_grad():
                    return torch_formula(torch, *ts)
            for t in ts:
                t.grad = None
            torch_formula(torch, *ts).backward(grad_t)
            return ts[0].grad

        impls["torch"] = torch_run
    return impls


def setup_additive(d: dict, ctx: Context, train: bool = False) -> dict[str, Callable]:
    args = _additive_data(d, ctx.rng)
    dout = ctx.rng.standard_normal((d["B"], d["Lq"], d["D"]), dtype=np.float32)
    return _setup_fused(ctx, args, dout, ("additive_attention_forward", "additive_attention_backward"),
                        _torch_additive, train)


def _pool_data(d: dict, rng: np.random.Generator):
    T, B, H, A = d["T"], d["B"], d["H"], d["A"]
    s = 1.0 / math.sqrt(H)
    h = np.tanh(rng.standard_normal((T, B, H), dtype=np.float32))  # LSTM outputs live in (-1, 1)
    w = rng.uniform(-s, s, (A, H)).astype(np.float32)
    b = rng.uniform(-s, s, A).astype(np.float32)
    w_s = rng.uniform(-s, s, A).astype(np.float32)
    return h, w, b, w_s


def _torch_pool(torch: Any, h, w, b, w_s):
    """u_t = tanh(h_t W^T + b), alpha = softmax_t(u_t . w_s), context = sum_t alpha_t h_t."""
    alpha = torch.softmax(torch.tanh(h @ w.T + b) @ w_s, 0)
    return (alpha[:, :, None] * h).sum(0)


def setup_pool(d: dict, ctx: Context, train: bool = False) -> dict[str, Callable]:
    args = _pool_data(d, ctx.rng)
    dctx = ctx.rng.standard_normal((d["B"], d["H"]), dtype=np.float32)
    return _setup_fused(ctx, args, dctx, ("attention_pool_forward", "attention_pool_backward"),
                        _torch_pool, train)


def setup_nn_train(d: dict, ctx: Context) -> dict[str, Callable]:
    """One training pass of the SST-2 model (Embedding, BiLSTM, attention pooling, Dense, Adam)
    over the same batches in seqkern.nn and in PyTorch with packed sequences."""
    from .nn.speed import make_runners

    _, runners = make_runners(batch=d["batch"], steps=d["steps"], vocab=d["vocab"], embed=d["E"],
                              hidden=d["H"], attn=d["H"], with_torch=ctx.torch is not None)
    impls = {"seqkern": runners["seqkern.nn"]}
    if "torch" in runners:
        impls["torch"] = runners["torch"]
    return impls


def nn_train_tokens(d: dict) -> int:
    from .nn.speed import make_batches

    return int(sum(b[1].sum() for b in make_batches(d["steps"], d["batch"], d["vocab"])))


# ---------------------------------------------------------------------------------------------
# The suite: op, shape, flop (or byte) formula, setup


@dataclass(frozen=True)
class Entry:
    op: str
    dims: dict
    setup: Callable[[dict, Context], dict[str, Callable]]
    flops: float = 0.0  # per call; 0 for rows that report bandwidth instead
    bytes: float = 0.0  # per call, for bandwidth-bound rows
    tokens: float = 0.0  # per call, for model-training rows (reported as tokens/s)
    quick: bool = False  # part of --quick
    scaling: bool = False  # also timed at 1 thread (GEMM-bound shapes)

    @property
    def shape(self) -> str:
        return " ".join(f"{k}={v}" if k != "x" else str(tuple(v)) for k, v in self.dims.items())


def lstm_flops(T: int, B: int, D: int, H: int) -> int:
    """LSTM forward: 2*T*B*4H*(D+H), the two matrix products of every step."""
    return 2 * T * B * 4 * H * (D + H)


def attention_flops(B: int, NH: int, Lq: int, Lk: int, Dh: int) -> int:
    """Attention forward: 4*B*NH*Lq*Lk*Dh, q k^T and p v."""
    return 4 * B * NH * Lq * Lk * Dh


def additive_flops(B: int, Lq: int, Lk: int, D: int, A: int) -> int:
    """Additive attention forward: 2*B*A*(Lq+Lk)*D for the projections, B*Lq*Lk*(3A + 2D) for
    the add, tanh, dot with w_v and the weighted sum of values (tanh counted as one flop)."""
    return 2 * B * A * (Lq + Lk) * D + B * Lq * Lk * (3 * A + 2 * D)


def pool_flops(T: int, B: int, H: int, A: int) -> int:
    """Attention pooling forward: 2*T*B*H*A projection, 2*T*B*A scores, 2*T*B*H context."""
    return 2 * T * B * H * A + 2 * T * B * A + 2 * T * B * H


# Backward costs about twice the forward where every forward product has two backward products
# (LSTM, attention pooling), 2.5 times for attention (it also recomputes the score tiles); the
# +backward rows time both passes.
LSTM_TRAIN = 1 + 2.0
ATTENTION_TRAIN = 1 + 2.5

FULL_SHAPES = {
    "softmax": [((4096, 1024), -1), ((64, 8, 128, 128), -1), ((256, 32000), -1),
                ((32, 1024, 256), 1)],
    "softmax_backward": [((4096, 1024), -1), ((32, 1024, 256), 1)],
    # (128, 32, 100, 100) is the SST-2 model's size; (128, 32, 96, 96) the nearest multiple of 16
    "lstm": [(128, 32, 128, 256), (256, 1, 64, 128), (64, 64, 256, 512), (512, 16, 128, 128),
             (128, 32, 100, 100), (128, 32, 96, 96)],
    "lstm_step": [(1, 128, 256)],
    "attention": [(8, 8, 512, 64), (32, 4, 128, 64)],
    "additive": [(32, 64, 64, 256, 128)],
    "pool": [(128, 32, 256, 128)],
    "nn_train": [(32, 20, 15000, 100, 100)],
}
QUICK = {  # the --quick subset: (op family, shape) pairs from FULL_SHAPES
    ("softmax", ((4096, 1024), -1)), ("softmax", ((32, 1024, 256), 1)),
    ("lstm", (128, 32, 128, 256)), ("lstm", (256, 1, 64, 128)), ("lstm_step", (1, 128, 256)),
    ("attention", (32, 4, 128, 64)), ("attention", (8, 8, 512, 64)),
}
SMOKE_SHAPES = {  # tiny shapes that run every code path in well under a second
    "softmax": [((8, 16), -1), ((3, 5, 4), 1)],
    "softmax_backward": [((8, 16), -1)],
    "lstm": [(3, 16, 4, 8), (3, 1, 4, 8)],
    "lstm_step": [(1, 4, 8)],
    "attention": [(1, 2, 8, 4)],
    "additive": [(2, 3, 5, 4, 6)],
    "pool": [(4, 2, 5, 3)],
    "nn_train": [(4, 2, 50, 6, 5)],
}


def build_entries(quick: bool = False, smoke: bool = False) -> list[Entry]:
    """The suite in run order (the --quick subset when ``quick``, tiny shapes when ``smoke``)."""
    table = SMOKE_SHAPES if smoke else FULL_SHAPES
    out: list[Entry] = []

    def add(family: str, shape: tuple, entry: Entry) -> None:
        if not quick or smoke or (family, shape) in QUICK:
            out.append(replace(entry, quick=(family, shape) in QUICK))

    for name, setup, per_elem in (("softmax", setup_softmax, 2), ("softmax_backward",
                                                                  setup_softmax_backward, 3)):
        for shape, axis in table[name]:
            # Read x (and dy), write y: 4 bytes per float32 element and pass.
            nbytes = per_elem * 4 * math.prod(shape)
            add(name, (shape, axis), Entry(name, {"x": shape, "axis": axis}, setup,
                                           bytes=nbytes))
    for T, B, D, H in table["lstm"]:
        dims, f = dict(T=T, B=B, D=D, H=H), lstm_flops(T, B, D, H)
        big = B >= 16
        add("lstm", (T, B, D, H), Entry("lstm_forward", dims, setup_lstm_forward, flops=f, scaling=big))
        add("lstm", (T, B, D, H), Entry("lstm_forward+backward", dims, setup_lstm_train,
                                        flops=LSTM_TRAIN * f, scaling=big))
    for B, D, H in table["lstm_step"]:
        add("lstm_step", (B, D, H), Entry("lstm_step", dict(B=B, D=D, H=H), setup_lstm_step,
                                          flops=lstm_flops(1, B, D, H)))
    for B, NH, L, Dh in table["attention"]:
        dims, f = dict(B=B, NH=NH, L=L, Dh=Dh), attention_flops(B, NH, L, L, Dh)
        big = L >= 512
        add("attention", (B, NH, L, Dh), Entry("attention_forward", dims,
                                               setup_attention_forward, flops=f, scaling=big))
        add("attention", (B, NH, L, Dh), Entry("attention_forward+backward", dims,
                                               setup_attention_train, flops=ATTENTION_TRAIN * f,
                                               scaling=big))
    for B, Lq, Lk, D, A in table["additive"]:
        dims, f = dict(B=B, Lq=Lq, Lk=Lk, D=D, A=A), additive_flops(B, Lq, Lk, D, A)
        add("additive", (B, Lq, Lk, D, A), Entry("additive_attention_forward", dims,
                                                 setup_additive, flops=f))
        add("additive", (B, Lq, Lk, D, A), Entry(
            "additive_attention_forward+backward", dims,
            lambda d, c: setup_additive(d, c, train=True), flops=ATTENTION_TRAIN * f))
    for T, B, H, A in table["pool"]:
        dims, f = dict(T=T, B=B, H=H, A=A), pool_flops(T, B, H, A)
        add("pool", (T, B, H, A), Entry("attention_pool_forward", dims, setup_pool, flops=f))
        add("pool", (T, B, H, A), Entry(
            "attention_pool_forward+backward", dims, lambda d, c: setup_pool(d, c, train=True),
            flops=LSTM_TRAIN * f))
    for batch, steps, vocab, E, H in table["nn_train"]:
        dims = dict(batch=batch, steps=steps, vocab=vocab, E=E, H=H)
        add("nn_train", (batch, steps, vocab, E, H), Entry("nn_train_sst2_model", dims, setup_nn_train,
                                                           tokens=nn_train_tokens(dims)))
    return out


def op_matches(op: str, name: str) -> bool:
    """``--op`` filter: the exact op, a family prefix (``lstm``, ``attention``), or
    ``<op>_backward`` for the ``<op>_forward+backward`` rows."""
    if name.endswith("_backward") and op == name[: -len("_backward")] + "_forward+backward":
        return True
    return op == name or op.startswith(name + "_") or op.startswith(name + "+")


# ---------------------------------------------------------------------------------------------
# Machine information


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine_info() -> dict:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    blas = "?"
    try:
        cfg = np.show_config(mode="dicts")
        blas = cfg["Build Dependencies"]["blas"]["name"]
    except Exception:  # older NumPy: no dict mode
        pass
    try:
        load = list(os.getloadavg())
    except (AttributeError, OSError):  # not on every platform
        load = [0.0, 0.0, 0.0]
    return {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "usable_cpus": usable,
            "platform": platform.platform(), "numpy_blas": blas, "load": load}


def cache_line(cache: dict) -> str:
    """``L1d 32 KiB, L2 512 KiB, L3 32 MiB (sysfs)``: the sizes the kernels block for."""
    def size(n: int) -> str:
        return f"{n >> 20} MiB" if n >= 1 << 20 and n % (1 << 20) == 0 else f"{n >> 10} KiB"
    return f"L1d {size(cache['l1d'])}, L2 {size(cache['l2'])}, L3 {size(cache['l3'])} ({cache['source']})"


def matmul_rate(n: int, repeats: int, warmup: int) -> float:
    """GFLOP/s of numpy.matmul on two (n, n) float32 matrices (2 n^3 flops), median."""
    rng = np.random.default_rng(1)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    t = time_call(lambda: a @ b, repeats=repeats, warmup=warmup)
    return 2 * n**3 / t.seconds / 1e9


# ---------------------------------------------------------------------------------------------
# Printing


def fmt_time(ms: float) -> str:
    return f"{ms * 1e3:.1f} us" if ms < 1 else f"{ms:.2f} ms" if ms < 100 else f"{ms:.0f} ms"


def fmt_ratio(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}" if r < 10 else f"{r:.1f}"


def ratio_keys(rows: list[dict]) -> list[str]:
    keys = [k for k in PEERS if any(k in r["ratios"] for r in rows)]
    return keys + sorted({k for r in rows for k in r["ratios"]} - set(keys))


def format_table(rows: list[dict]) -> list[str]:
    """The summary table: one line per row, ratio columns for every baseline that appears."""
    keys = ratio_keys(rows)
    head = ["op", "shape", "isa", "thr", "time", "rate", "%mm"] + ["x" + k for k in keys]
    body = []
    for r in rows:
        rate = (f"{r['gflops']:.1f} GFLOP/s" if r["gflops"] is not None
                else f"{r['gbps']:.1f} GB/s" if r["gbps"] is not None
                else f"{r['tokens_per_s'] / 1e3:.1f} ktok/s" if r["tokens_per_s"] is not None else "-")
        pct = "-" if r["pct_matmul"] is None else f"{r['pct_matmul']:.0f}%"
        body.append([r["op"], r["shape"], r["isa"], str(r["threads"]), fmt_time(r["ms"]), rate,
                     pct] + [fmt_ratio(r["ratios"].get(k)) for k in keys])
    widths = [max(len(line[i]) for line in [head] + body) for i in range(len(head))]
    left = 2  # op and shape are left-aligned, numbers right-aligned

    def join(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) if i < left else c.rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    return [join(head)] + [join(b) for b in body]


def plot_ratios(rows: list[dict], path: str, title: str = "") -> None:
    """Horizontal bars of every row's ratios, log scale, with the break-even line at 1."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in rows if r["ratios"]]
    keys = ratio_keys(rows)
    labels = [f"{r['op']} {r['shape']} ({r['threads']}t)" for r in rows]
    height = 0.8 / max(1, len(keys))
    fig, ax = plt.subplots(figsize=(10, 1.5 + 0.3 * len(rows) * max(1, len(keys)) ** 0.5))
    for j, key in enumerate(keys):
        ys = [i + j * height for i, r in enumerate(rows) if key in r["ratios"]]
        xs = [r["ratios"][key] for r in rows if key in r["ratios"]]
        ax.barh(ys, xs, height=height, label="x" + key)
    ax.set_yticks([i + 0.4 - height / 2 for i in range(len(rows))], labels, fontsize=7)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_xlabel("baseline time / seqkern time (> 1: seqkern faster)")
    ax.legend(fontsize=8)
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# Running


def make_row(entry: Entry, isa: str, threads: int, times: dict[str, Timing],
             matmul: dict[int, float]) -> dict:
    ms = {k: t.seconds * 1e3 for k, t in times.items()}
    s = times["seqkern"].seconds
    gflops = entry.flops / s / 1e9 if entry.flops else None
    rate = matmul.get(threads)
    return {
        "op": entry.op, "shape": entry.shape,
        "dims": {k: list(v) if isinstance(v, tuple) else v for k, v in entry.dims.items()},
        "isa": isa, "threads": threads, "ms": ms["seqkern"],
        "flops": entry.flops or None, "gflops": gflops,
        "bytes": entry.bytes or None, "gbps": entry.bytes / s / 1e9 if entry.bytes else None,
        "tokens_per_s": entry.tokens / s if entry.tokens else None,
        "pct_matmul": 100 * gflops / rate if gflops and rate else None,
        "impl_ms": ms,
        "ratios": {k: v / ms["seqkern"] for k, v in ms.items() if k != "seqkern"},
        "repeats": times["seqkern"].repeats, "calls_per_repeat": times["seqkern"].number,
    }


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m seqkern bench",
        description="Time seqkern's kernels against the NumPy reference, PyTorch and ONNX Runtime "
                    "(where installed). Ratios are baseline time / seqkern time: > 1 means seqkern "
                    "is faster.")
    p.add_argument("--quick", action="store_true", help="a small subset (under a minute)")
    p.add_argument("--op", action="append", metavar="NAME", default=[],
                   help="only these ops (repeatable): an op name such as lstm_forward, a family "
                        "such as lstm or attention, or lstm_backward for the forward+backward rows")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for seqkern and every peer (default: seqkern.get_num_threads())")
    p.add_argument("--repeats", type=int, default=None, metavar="N",
                   help="timed repeats per item (default 7)")
    p.add_argument("--json", metavar="FILE", help="write rows, machine and version info as JSON")
    p.add_argument("--plot", metavar="FILE.png", help="bar chart of the ratios (needs matplotlib)")
    p.add_argument("--no-peers", action="store_true", help="skip PyTorch, ONNX Runtime and OpenVINO")
    p.add_argument("--no-check", dest="check", action="store_false",
                   help="do not compare each peer's result with seqkern's before timing it")
    p.add_argument("--all-isas", action="store_true",
                   help="also time seqkern at every other available ISA level (x<level> columns)")
    p.add_argument("--smoke", action="store_true", help=argparse.SUPPRESS)  # tiny, for the tests
    args = p.parse_args(argv)
    if args.threads is not None and args.threads < 1:
        p.error("--threads must be >= 1")
    if args.repeats is not None and args.repeats < 1:
        p.error("--repeats must be >= 1")
    return args


def log(msg: str) -> None:
    """Progress and notes go to stderr, so stdout holds only the report."""
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Settings:
    threads: int
    repeats: int
    warmup: int
    pause: float  # seconds between items, so BLAS/OpenMP threads stop spinning
    min_repeat_s: float
    matmul_n: int
    other_isas: list[str]
    scaling: bool  # time the GEMM-bound entries at 1 thread too
    check: bool = True  # compare every peer's result with seqkern's before timing


@dataclass
class Results:
    matmul: dict[int, float] = field(default_factory=dict)  # threads -> GFLOP/s
    rows: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)  # "op shape: peer" whose result has no array


def check_peers(impls: dict[str, Callable], entry: Entry, res: Results) -> None:
    """--check: runs every implementation once and drops (with an error line) each peer whose
    result differs from seqkern's; a peer whose result holds no array is listed as unchecked."""
    expected = _bench_check.primary(impls["seqkern"]())
    for name in [k for k in impls if k != "seqkern"]:
        try:
            got = _bench_check.primary(impls[name]())
        except Exception as e:  # a failing peer must not stop the suite
            res.errors.append(f"{entry.op} {entry.shape}: {name}: {type(e).__name__}: {e}")
            del impls[name]
            continue
        if expected is None or got is None:
            res.unchecked.append(f"{entry.op} {entry.shape}: {name}")
            continue
        why = _bench_check.disagreement(expected, got)
        if why:
            res.errors.append(f"{entry.op} {entry.shape}: {name} disagrees with seqkern ({why}); not timed")
            log(f"  {name} disagrees with seqkern: {why}")
            del impls[name]


def run_suite(entries: list[Entry], ctx: Context, control: ThreadControl, cfg: Settings) -> Results:
    """Times every entry (and the matmul rate first), logging one line per item as it completes."""
    res = Results()
    isa = seqkern.get_isa()

    def measure_matmul(n_threads: int) -> None:
        control.set(n_threads)
        time.sleep(cfg.pause)
        res.matmul[n_threads] = matmul_rate(cfg.matmul_n, cfg.repeats, cfg.warmup)
        log(f"matmul float32 {cfg.matmul_n}^3 (numpy), {n_threads} thread(s): "
            f"{res.matmul[n_threads]:.1f} GFLOP/s")
        control.set(cfg.threads)

    def timed(name: str, fn: Callable, entry: Entry) -> Timing | None:
        time.sleep(cfg.pause)
        try:
            return time_call(fn, cfg.repeats, cfg.warmup, cfg.min_repeat_s)
        except Exception as e:  # a failing peer must not stop the suite
            res.errors.append(f"{entry.op} {entry.shape}: {name}: {type(e).__name__}: {e}")
            log(f"  {name} failed: {type(e).__name__}: {e}")
            return None

    measure_matmul(cfg.threads)
    if cfg.scaling and any(e.scaling for e in entries):
        measure_matmul(1)

    for index, entry in enumerate(entries, 1):
        tag = f"[{index:2d}/{len(entries)}] {entry.op} {entry.shape}"
        t0 = time.perf_counter()
        entry_ctx = replace(ctx, rng=np.random.default_rng(zlib.crc32(tag.encode())))
        try:
            impls = entry.setup(entry.dims, entry_ctx)
        except Exception as e:  # retry without peers so one peer's failure costs only its column
            res.errors.append(f"{entry.op} {entry.shape}: peer setup: {type(e).__name__}: {e}")
            log(f"  peer setup failed ({type(e).__name__}: {e}); timing without PyTorch/ORT")
            impls = entry.setup(entry.dims, replace(entry_ctx, torch=None, ort=None, onnx=None, openvino=None))
        if cfg.check:
            check_peers(impls, entry, res)
        times: dict[str, Timing] = {}
        for name, fn in impls.items():
            times[name] = timed(name, fn, entry)
        for level in cfg.other_isas:
            with seqkern.use_isa(level):
                times[level] = timed(level, impls["seqkern"], entry)
        times = {k: t for k, t in times.items() if t is not None}
        if "seqkern" not in times:
            res.skipped.append({"op": entry.op, "shape": entry.shape,
                                "reason": "the seqkern call failed"})
            continue
        row = make_row(entry, isa, cfg.threads, times, res.matmul)
        res.rows.append(row)
        parts = "  ".join(f"{k} {fmt_time(v)}" for k, v in row["impl_ms"].items())
        log(f"{tag}: {parts}  ({time.perf_counter() - t0:.1f} s)")
        if cfg.scaling and entry.scaling:
            control.set(1)
            t = timed("seqkern at 1 thread", impls["seqkern"], entry)
            control.set(cfg.threads)
            if t is not None:
                one = make_row(entry, isa, 1, {"seqkern": t}, res.matmul)
                res.rows.append(one)
                # Baseline "1thr" is seqkern itself at one thread, so x1thr is the speed-up
                # that all threads give.
                row["ratios"]["1thr"] = one["ms"] / row["ms"]
                log(f"{tag}: seqkern at 1 thread {fmt_time(one['ms'])}; {cfg.threads} threads "
                    f"are {row['ratios']['1thr']:.2f}x faster")
        del impls  # free this entry's inputs and sessions before the next one
    return res


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    threads = args.threads or seqkern.get_num_threads()
    entries = build_entries(quick=args.quick, smoke=args.smoke)
    if args.op:
        unknown = [n for n in args.op if not any(op_matches(e.op, n) for e in entries)]
        if unknown:
            ops = sorted({e.op for e in entries})
            log(f"bench: no op matches {', '.join(unknown)}; ops: {', '.join(ops)}")
            return 2
        entries = [e for e in entries if any(op_matches(e.op, n) for n in args.op)]
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            log(f"bench: --plot {args.plot}: matplotlib is not installed (pip install matplotlib);"
                " running without the plot")
            args.plot = None

    isa = seqkern.get_isa()
    cfg = Settings(
        threads=threads,
        repeats=args.repeats or (1 if args.smoke else 7),
        warmup=1 if args.smoke else 2,
        pause=0.0 if args.smoke else 0.3,
        min_repeat_s=0.0 if args.smoke else 0.005,
        matmul_n=64 if args.smoke else 1024 if args.quick else 2048,
        other_isas=[i for i in seqkern.available_isas() if i != isa] if args.all_isas else [],
        scaling=not args.quick and threads > 1,
        check=args.check,
    )
    modules, versions = import_peers(not args.no_peers)
    ctx = Context(threads=threads, torch=modules.get("torch"))
    if "onnx" in modules:
        ctx.onnx = modules["onnx"]
        ctx.ort, ctx.openvino = modules.get("onnxruntime"), modules.get("openvino")
    machine = machine_info()
    control = ThreadControl(ctx.torch)
    control.set(threads)
    info = seqkern.isa_info()

    print(f"seqkern {seqkern.__version__} benchmark: median of {cfg.repeats} repeats after "
          f"{cfg.warmup} warm-up calls; ratios = baseline time / seqkern time "
          "(> 1: seqkern faster)")
    print(f"CPU: {machine['cpu']} ({machine['usable_cpus']} usable of {machine['logical_cpus']} "
          f"logical CPUs), {machine['platform']}")
    print(f"seqkern ISA: {info['current']} (available {', '.join(info['available'])}; compiled "
          f"{', '.join(info['compiled'])}), OpenMP {'on' if info.get('openmp') else 'off'}; "
          f"threads: {threads} (seqkern, PyTorch, ONNX Runtime, OpenVINO, NumPy BLAS)")
    print(f"caches: {cache_line(info['cache'])}; load average {machine['load'][0]:.2f} "
          f"{machine['load'][1]:.2f} {machine['load'][2]:.2f} (1, 5, 15 min)")
    if machine["load"][0] > machine["usable_cpus"]:
        print(f"warning: the load average ({machine['load'][0]:.2f}) exceeds the {machine['usable_cpus']} "
              "usable CPUs: other work shares the cores, and these figures are not meaningful")
    v = {k: versions.get(k, "not used") for k in ("torch", "onnxruntime", "openvino", "onnx")}
    peers = (f"PyTorch {v['torch']}, ONNX Runtime {v['onnxruntime']}, OpenVINO {v['openvino']} "
             f"(onnx {v['onnx']})" if not args.no_peers
             else "PyTorch, ONNX Runtime and OpenVINO not used (--no-peers)")
    print(f"NumPy {versions['numpy']} ({machine['numpy_blas']}), {peers}")
    if control.blas_note:
        print("note: " + control.blas_note)
    if ("onnxruntime" in modules or "openvino" in modules) and "onnx" not in modules:
        print("note: onnx is not installed; the ONNX Runtime and OpenVINO columns need it to build their models")
    print("check: " + ("every peer's result is compared with seqkern's before timing (a peer that "
                       "disagrees is not timed)" if cfg.check else "off (--no-check)"))
    sys.stdout.flush()

    t_start = time.perf_counter()
    try:
        res = run_suite(entries, ctx, control, cfg)
    finally:
        control.restore()
    log(f"done in {time.perf_counter() - t_start:.1f} s")

    rates = ", ".join(f"{v:.1f} GFLOP/s at {k} thread{'s' if k > 1 else ''}"
                      for k, v in res.matmul.items())
    print(f"matmul float32 {cfg.matmul_n}^3 (numpy.matmul, median): {rates}; "
          "%mm = a row's GFLOP/s over this rate at the row's thread count")
    print()
    for line in format_table(res.rows):
        print(line)
    if res.skipped:
        print()
        for s in res.skipped:
            print(f"{s['op']} {s['shape']}: {s['reason']}")
    for e in res.errors:
        print("error: " + e)
    if res.unchecked:
        print("not checked (no array result to compare): " + "; ".join(res.unchecked))
    sys.stdout.flush()

    if args.json:
        doc = {
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "argv": argv, "quick": args.quick, "threads": threads,
            "repeats": cfg.repeats, "warmup": cfg.warmup,
            "machine": machine, "versions": versions, "isa_info": info,
            "matmul": {"n": cfg.matmul_n, "op": "numpy.matmul float32",
                       "gflops": {str(k): v for k, v in res.matmul.items()}},
            "rows": res.rows, "skipped": res.skipped, "errors": res.errors,
            "check": cfg.check, "unchecked": res.unchecked,
        }
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=1)
        log(f"wrote {args.json}")
    if args.plot:
        if res.rows:
            plot_ratios(res.rows, args.plot, f"seqkern {seqkern.__version__}, {isa}, {threads} "
                        f"threads, {machine['cpu']}")
            log(f"wrote {args.plot}")
        else:
            log(f"bench: --plot {args.plot}: no rows to plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
