"""The benchmark's setups: each builds an entry's inputs once and returns one zero-argument
callable per implementation (``seqkern``, ``numpy`` from ``seqkern.reference``, and the peers
that apply and are installed), all on the same float32 inputs."""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

import seqkern
from seqkern import reference

from .peers import (Context, onnx_gru, onnx_lstm, onnx_model, onnx_rnn, openvino_runner, ort_session, torch_additive, torch_gru,
                    torch_rnn,
                    torch_lstm, torch_pool)


def _softmax_setups(log: bool):
    """The forward and backward setups of the softmax (``log``: the log-softmax)."""
    name = "log_softmax" if log else "softmax"
    fwd, bwd = getattr(seqkern, name), getattr(seqkern, name + "_backward")
    ref_fwd, ref_bwd = getattr(reference, name), getattr(reference, name + "_backward")

    def forward(d: dict, ctx: Context) -> dict[str, Callable]:
        x = ctx.rng.standard_normal(d["x"], dtype=np.float32)
        axis = d["axis"]
        impls: dict[str, Callable] = {"seqkern": lambda: fwd(x, axis)}
        impls["numpy"] = lambda: ref_fwd(x, axis)
        if ctx.torch:
            torch_fn, xt = getattr(ctx.torch, name), ctx.torch.from_numpy(x)
            impls["torch"] = lambda: torch_fn(xt, axis)
        if ctx.ort:
            node = ctx.onnx.helper.make_node("LogSoftmax" if log else "Softmax", ["x"], ["y"], axis=axis)
            sess = ort_session(ctx, node, {"x": x.shape}, ["y"], {})
            impls["ort"] = lambda: sess.run(None, {"x": x})
        return impls

    def backward(d: dict, ctx: Context) -> dict[str, Callable]:
        axis = d["axis"]
        y = ref_fwd(ctx.rng.standard_normal(d["x"], dtype=np.float32), axis)
        dy = ctx.rng.standard_normal(d["x"], dtype=np.float32)
        impls: dict[str, Callable] = {"seqkern": lambda: bwd(y, dy, axis)}
        impls["numpy"] = lambda: ref_bwd(y, dy, axis)
        if ctx.torch:
            torch = ctx.torch
            torch_bwd = torch._log_softmax_backward_data if log else torch._softmax_backward_data
            yt, dyt = torch.from_numpy(y), torch.from_numpy(dy)
            impls["torch"] = lambda: torch_bwd(dyt, yt, axis, torch.float32)
        return impls

    return forward, backward


setup_softmax, setup_softmax_backward = _softmax_setups(log=False)
setup_log_softmax, setup_log_softmax_backward = _softmax_setups(log=True)


def _lstm_data(d: dict, rng: np.random.Generator, steps: int | None = None):
    T, B, D, H = (steps or d["T"]), d["B"], d["D"], d["H"]
    s = 1.0 / math.sqrt(H)  # PyTorch's initialisation range
    x = rng.standard_normal((T, B, D), dtype=np.float32)
    w_ih = rng.uniform(-s, s, (4 * H, D)).astype(np.float32)
    w_hh = rng.uniform(-s, s, (4 * H, H)).astype(np.float32)
    bias = rng.uniform(-s, s, 4 * H).astype(np.float32)
    return x, w_ih, w_hh, bias


def _forward_peers(ctx: Context, impls: dict, x, torch_module: Callable, onnx_graph: Callable) -> dict[str, Callable]:
    """Adds the peers' inference of one recurrent layer over x to ``impls``: the module that
    ``torch_module(torch)`` makes (None: no PyTorch peer), under no_grad, and the ONNX operator that
    ``onnx_graph(build)`` makes over the same weights, in ONNX Runtime (``build`` None) and in OpenVINO."""
    if ctx.torch and torch_module is not None:
        torch, xt = ctx.torch, ctx.torch.from_numpy(x)
        module = torch_module(torch)

        def torch_forward():
            with torch.no_grad():
                return module(xt)

        impls["torch"] = torch_forward
    if ctx.ort:
        sess = onnx_graph(None)
        impls["ort"] = lambda: sess.run(["Y"], {"X": x})
    if ctx.openvino:
        impls["openvino"] = openvino_runner(ctx, onnx_graph(onnx_model), {"X": x})
    return impls


def setup_lstm_forward(d: dict, ctx: Context) -> dict[str, Callable]:
    """Inference, as the peers run it: weights prepared once (an LSTMWeights, like a torch module
    or an ORT session), no cache for a backward (torch under no_grad, ORT keep none either)."""
    x, w_ih, w_hh, bias = _lstm_data(d, ctx.rng)
    f, weights = seqkern.lstm_forward, seqkern.LSTMWeights(w_ih, w_hh, bias)
    impls: dict[str, Callable] = {"seqkern": lambda: f(x, weights, need_cache=False)}
    impls["numpy"] = lambda: reference.lstm_forward(x, w_ih, w_hh, bias)
    return _forward_peers(ctx, impls, x, lambda torch: torch_lstm(torch, w_ih, w_hh, bias),
                          lambda build: onnx_lstm(ctx, w_ih, w_hh, bias, x.shape, with_state=False, build=build))


def setup_lstm_train(d: dict, ctx: Context) -> dict[str, Callable]:
    """Forward, then backward from a gradient on every output step (weights and x get gradients)."""
    x, w_ih, w_hh, bias = _lstm_data(d, ctx.rng)
    dy = ctx.rng.standard_normal((d["T"], d["B"], d["H"]), dtype=np.float32)
    fwd, bwd = seqkern.lstm_forward, seqkern.lstm_backward
    impls: dict[str, Callable] = {"seqkern": lambda: bwd(fwd(x, w_ih, w_hh, bias)[-1], dy)}
    rf, rb = reference.lstm_forward, reference.lstm_backward
    impls["numpy"] = lambda: rb(rf(x, w_ih, w_hh, bias)[-1], dy)
    if ctx.torch:
        impls["torch"] = _torch_train(ctx.torch, torch_lstm(ctx.torch, w_ih, w_hh, bias), x, dy)
    return impls


def _torch_train(torch, module, x, dy) -> Callable:
    """A torch recurrent module's forward and backward from dy on every output step."""
    xt, dyt = torch.from_numpy(x.copy()).requires_grad_(), torch.from_numpy(dy)

    def torch_train():
        module.zero_grad(set_to_none=True)
        xt.grad = None
        module(xt)[0].backward(dyt)
        return xt.grad  # dx, what --check compares with seqkern's first gradient

    return torch_train


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
        torch, cell = ctx.torch, torch_lstm(ctx.torch, w_ih, w_hh, bias, cell=True)
        xt, state = torch.from_numpy(x_t), (torch.from_numpy(h), torch.from_numpy(c))

        def torch_step():
            with torch.no_grad():
                return cell(xt, state)

        impls["torch"] = torch_step
    if ctx.ort:
        sess = onnx_lstm(ctx, w_ih, w_hh, bias, x.shape, with_state=True)
        feed = {"X": x, "h0": h[None], "c0": c[None]}
        impls["ort"] = lambda: sess.run(["Y_h", "Y_c"], feed)
    return impls


def setup_lstm_lowp(d: dict, ctx: Context) -> dict[str, Callable]:
    """Inference with bf16 or int8 weights (``d["fmt"]``), the forward over a sequence (dims with T)
    or one step: ``f32`` is seqkern with the float32 weights (the ``xf32`` ratio is what the format
    gains), ``numpy`` the format's reference (int8; for bf16 the float32 reference on the rounded
    weights), ``torch_int8`` PyTorch's dynamically quantized LSTM (int8 rows), ``torch`` float32."""
    fmt, step_row = d["fmt"], "T" not in d
    x, w_ih, w_hh, bias = _lstm_data(d, ctx.rng, steps=1 if step_row else None)
    weights = seqkern.LSTMWeights(w_ih, w_hh, bias, dtype=fmt)
    f32 = seqkern.LSTMWeights(w_ih, w_hh, bias)
    impls: dict[str, Callable] = {}
    if step_row:
        x_t = x[0]
        h = (0.5 * ctx.rng.standard_normal((d["B"], d["H"]))).astype(np.float32)
        c = (0.5 * ctx.rng.standard_normal((d["B"], d["H"]))).astype(np.float32)
        out_h, out_c = np.empty_like(h), np.empty_like(c)
        impls["seqkern"] = lambda: weights.step(x_t, h, c, out_h=out_h, out_c=out_c)
        impls["f32"] = lambda: f32.step(x_t, h, c, out_h=out_h.copy(), out_c=out_c.copy())
        state = {"h0": h, "c0": c}
        run_x = x
    else:
        f = seqkern.lstm_forward
        impls["seqkern"] = lambda: f(x, weights, need_cache=False)
        impls["f32"] = lambda: f(x, f32, need_cache=False)
        state, run_x = {}, x
    # The reference (NumPy's integer products have no BLAS: only up to a few hundred MFLOP).
    if run_x.shape[0] * run_x.shape[1] * 8 * d["H"] * (d["D"] + d["H"]) <= 3e8:
        ref = reference.lowp.lstm_forward_int8 if fmt == "int8" else reference.lstm_forward
        impls["numpy"] = lambda: ref(run_x, weights, **state)[1 if step_row else 0]
    if ctx.torch:
        torch = ctx.torch
        module = torch_lstm(torch, w_ih, w_hh, bias, cell=step_row)
        xt = torch.from_numpy(run_x[0] if step_row else run_x)
        st = (torch.from_numpy(h), torch.from_numpy(c)) if step_row else None
        runs = {"torch": module}
        if fmt == "int8":
            import warnings

            with warnings.catch_warnings():  # torch.ao.quantization is deprecated, still the peer
                warnings.simplefilter("ignore")
                runs["torch_int8"] = torch.ao.quantization.quantize_dynamic(module, {type(module)}, dtype=torch.qint8)
        for name, m in runs.items():
            def run(m=m):
                with torch.no_grad():
                    out = m(xt, st)
                return out[0]

            impls[name] = run
    return impls


def _gru_data(d: dict, rng: np.random.Generator, steps: int | None = None):
    T, B, D, H = (steps or d["T"]), d["B"], d["D"], d["H"]
    s = 1.0 / math.sqrt(H)  # PyTorch's initialisation range
    x = rng.standard_normal((T, B, D), dtype=np.float32)
    w = [rng.uniform(-s, s, shape).astype(np.float32) for shape in ((3 * H, D), (3 * H, H), (3 * H,), (3 * H,))]
    return (x, *w)


def _gru_forward_setup(linear_before_reset: bool):
    """Inference, as for the LSTM: weights prepared once (a GRUWeights), no cache. The variant
    with the reset before the product has no PyTorch peer (nn.GRU resets after it)."""
    lbr = linear_before_reset

    def setup(d: dict, ctx: Context) -> dict[str, Callable]:
        x, w_ih, w_hh, b_ih, b_hh = _gru_data(d, ctx.rng)
        f, weights = seqkern.gru_forward, seqkern.GRUWeights(w_ih, w_hh, b_ih, b_hh, linear_before_reset=lbr)
        impls: dict[str, Callable] = {"seqkern": lambda: f(x, weights, need_cache=False)}
        impls["numpy"] = lambda: reference.gru_forward(x, w_ih, w_hh, b_ih, b_hh, linear_before_reset=lbr)
        torch_module = (lambda torch: torch_gru(torch, w_ih, w_hh, b_ih, b_hh)) if lbr else None
        return _forward_peers(ctx, impls, x, torch_module,
                              lambda build: onnx_gru(ctx, w_ih, w_hh, b_ih, b_hh, x.shape, with_state=False,
                                                     build=build, linear_before_reset=lbr))

    return setup


setup_gru_forward = _gru_forward_setup(True)
setup_gru_reset_before_forward = _gru_forward_setup(False)


def setup_gru_train(d: dict, ctx: Context) -> dict[str, Callable]:
    """Forward, then backward from a gradient on every output step."""
    x, w_ih, w_hh, b_ih, b_hh = _gru_data(d, ctx.rng)
    dy = ctx.rng.standard_normal((d["T"], d["B"], d["H"]), dtype=np.float32)
    fwd, bwd = seqkern.gru_forward, seqkern.gru_backward
    impls: dict[str, Callable] = {"seqkern": lambda: bwd(fwd(x, w_ih, w_hh, b_ih, b_hh).cache, dy)}
    rf, rb = reference.gru_forward, reference.gru_backward
    impls["numpy"] = lambda: rb(rf(x, w_ih, w_hh, b_ih, b_hh).cache, dy)
    if ctx.torch:
        impls["torch"] = _torch_train(ctx.torch, torch_gru(ctx.torch, w_ih, w_hh, b_ih, b_hh), x, dy)
    return impls


def setup_gru_step(d: dict, ctx: Context) -> dict[str, Callable]:
    """One step for B rows with packed weights, into a caller buffer (streaming inference)."""
    x, w_ih, w_hh, b_ih, b_hh = _gru_data(d, ctx.rng, steps=1)
    x_t, h = x[0], (0.5 * ctx.rng.standard_normal((d["B"], d["H"]))).astype(np.float32)
    out_h = np.empty_like(h)
    step = seqkern.GRUWeights(w_ih, w_hh, b_ih, b_hh).step
    impls: dict[str, Callable] = {"seqkern": lambda: step(x_t, h, out_h=out_h)}
    impls["numpy"] = lambda: reference.gru_forward(x, w_ih, w_hh, b_ih, b_hh, h)[1]
    if ctx.torch:
        torch, cell = ctx.torch, torch_gru(ctx.torch, w_ih, w_hh, b_ih, b_hh, cell=True)
        xt, ht = torch.from_numpy(x_t), torch.from_numpy(h)

        def torch_step():
            with torch.no_grad():
                return cell(xt, ht)

        impls["torch"] = torch_step
    if ctx.ort:
        sess = onnx_gru(ctx, w_ih, w_hh, b_ih, b_hh, x.shape, with_state=True)
        impls["ort"] = lambda: sess.run(["Y_h"], {"X": x, "h0": h[None]})
    return impls


def _rnn_data(d: dict, rng: np.random.Generator, steps: int | None = None):
    T, B, D, H = (steps or d["T"]), d["B"], d["D"], d["H"]
    s = 1.0 / math.sqrt(H)  # PyTorch's initialisation range
    x = rng.standard_normal((T, B, D), dtype=np.float32)
    w = [rng.uniform(-s, s, shape).astype(np.float32) for shape in ((H, D), (H, H), (H,))]
    return (x, *w)


def setup_rnn_forward(d: dict, ctx: Context) -> dict[str, Callable]:
    """Inference of the plain RNN (tanh), as for the LSTM: weights prepared once, no cache."""
    x, w_ih, w_hh, bias = _rnn_data(d, ctx.rng)
    f, weights = seqkern.rnn_forward, seqkern.RNNWeights(w_ih, w_hh, bias)
    impls: dict[str, Callable] = {"seqkern": lambda: f(x, weights, need_cache=False)}
    impls["numpy"] = lambda: reference.rnn_forward(x, w_ih, w_hh, bias)
    return _forward_peers(ctx, impls, x, lambda torch: torch_rnn(torch, w_ih, w_hh, bias),
                          lambda build: onnx_rnn(ctx, w_ih, w_hh, bias, x.shape, with_state=False, build=build))


def setup_rnn_train(d: dict, ctx: Context) -> dict[str, Callable]:
    """Forward, then backward from a gradient on every output step."""
    x, w_ih, w_hh, bias = _rnn_data(d, ctx.rng)
    dy = ctx.rng.standard_normal((d["T"], d["B"], d["H"]), dtype=np.float32)
    fwd, bwd = seqkern.rnn_forward, seqkern.rnn_backward
    impls: dict[str, Callable] = {"seqkern": lambda: bwd(fwd(x, w_ih, w_hh, bias).cache, dy)}
    rf, rb = reference.rnn_forward, reference.rnn_backward
    impls["numpy"] = lambda: rb(rf(x, w_ih, w_hh, bias).cache, dy)
    if ctx.torch:
        impls["torch"] = _torch_train(ctx.torch, torch_rnn(ctx.torch, w_ih, w_hh, bias), x, dy)
    return impls


def setup_rnn_step(d: dict, ctx: Context) -> dict[str, Callable]:
    """One step for B rows with packed weights, into a caller buffer (streaming inference)."""
    x, w_ih, w_hh, bias = _rnn_data(d, ctx.rng, steps=1)
    x_t, h = x[0], (0.5 * ctx.rng.standard_normal((d["B"], d["H"]))).astype(np.float32)
    out_h = np.empty_like(h)
    step = seqkern.RNNWeights(w_ih, w_hh, bias).step
    impls: dict[str, Callable] = {"seqkern": lambda: step(x_t, h, out_h=out_h)}
    impls["numpy"] = lambda: reference.rnn_forward(x, w_ih, w_hh, bias, h)[1]
    if ctx.torch:
        torch, cell = ctx.torch, torch_rnn(ctx.torch, w_ih, w_hh, bias, cell=True)
        xt, ht = torch.from_numpy(x_t), torch.from_numpy(h)

        def torch_step():
            with torch.no_grad():
                return cell(xt, ht)

        impls["torch"] = torch_step
    if ctx.ort:
        sess = onnx_rnn(ctx, w_ih, w_hh, bias, x.shape, with_state=True)
        impls["ort"] = lambda: sess.run(["Y_h"], {"X": x, "h0": h[None]})
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


def setup_attention_variant(d: dict, ctx: Context) -> dict[str, Callable]:
    """Attention forward with an additive bias (NH, L, L) or grouped heads (NH / 4 key heads);
    ``plain`` is seqkern's plain call on the same shapes (for grouped heads, with the key heads
    repeated), so the ``xplain`` ratio is what the feature costs. The bias is zeros, so that every
    implementation computes what ``plain`` does (--check compares them); the kernel's work does
    not depend on the bias's values."""
    q, k, v = _qkv(d, ctx.rng)
    f = seqkern.attention_forward
    impls: dict[str, Callable] = {}
    tkw: dict = {}
    if d["kind"] == "bias":
        bias = np.zeros((d["NH"], d["L"], d["L"]), np.float32)
        impls["seqkern"] = lambda: f(q, k, v, bias=bias)
        impls["plain"] = lambda: f(q, k, v)
        impls["numpy"] = lambda: reference.attention_forward(q, k, v, bias=bias)
        args = (q, k, v)
        tkw["attn_mask"] = bias
    else:
        group = 4
        kg, vg = np.ascontiguousarray(k[:, ::group]), np.ascontiguousarray(v[:, ::group])
        kr, vr = np.repeat(kg, group, axis=1), np.repeat(vg, group, axis=1)
        impls["seqkern"] = lambda: f(q, kg, vg)
        impls["plain"] = lambda: f(q, kr, vr)
        impls["numpy"] = lambda: reference.attention_forward(q, kg, vg)
        args = (q, kg, vg)
        tkw["enable_gqa"] = True
    if ctx.torch:
        torch = ctx.torch
        sdpa = torch.nn.functional.scaled_dot_product_attention
        ts = [torch.from_numpy(a) for a in args]
        tkw = {k_: (torch.from_numpy(a) if isinstance(a, np.ndarray) else a) for k_, a in tkw.items()}

        def torch_forward():
            with torch.no_grad():
                return sdpa(*ts, **tkw)

        impls["torch"] = torch_forward
    return impls


def setup_attention_decode(d: dict, ctx: Context) -> dict[str, Callable]:
    """One decoding step: one query row per head against Lk cached keys, the cache a KVCache
    (read in place) for seqkern, tensors for PyTorch's SDPA."""
    B, NH, Lk, Dh = d["B"], d["NH"], d["Lk"], d["Dh"]
    q = ctx.rng.standard_normal((B, NH, 1, Dh), dtype=np.float32)
    k, v = (ctx.rng.standard_normal((B, NH, Lk, Dh), dtype=np.float32) for _ in range(2))
    cache = seqkern.KVCache((B, NH), Dh, capacity=2 * Lk)
    cache.append(k, v)
    ck, cv = cache.k, cache.v
    f = seqkern.attention_forward
    impls: dict[str, Callable] = {"seqkern": lambda: f(q, ck, cv, causal="bottom_right")}
    impls["numpy"] = lambda: reference.attention_forward(q, k, v)
    if ctx.torch:
        torch = ctx.torch
        sdpa = torch.nn.functional.scaled_dot_product_attention
        ts = [torch.from_numpy(a) for a in (q, k, v)]

        def torch_forward():
            with torch.no_grad():
                return sdpa(*ts)

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
                        torch_additive, train)


def _pool_data(d: dict, rng: np.random.Generator):
    T, B, H, A = d["T"], d["B"], d["H"], d["A"]
    s = 1.0 / math.sqrt(H)
    h = np.tanh(rng.standard_normal((T, B, H), dtype=np.float32))  # LSTM outputs live in (-1, 1)
    w = rng.uniform(-s, s, (A, H)).astype(np.float32)
    b = rng.uniform(-s, s, A).astype(np.float32)
    w_s = rng.uniform(-s, s, A).astype(np.float32)
    return h, w, b, w_s


def setup_pool(d: dict, ctx: Context, train: bool = False) -> dict[str, Callable]:
    args = _pool_data(d, ctx.rng)
    dctx = ctx.rng.standard_normal((d["B"], d["H"]), dtype=np.float32)
    return _setup_fused(ctx, args, dctx, ("attention_pool_forward", "attention_pool_backward"),
                        torch_pool, train)


def _bilstm_data(d: dict, rng: np.random.Generator):
    """x and the weights of an L-layer bidirectional LSTM, as (w_ih, w_hh, bias) per layer and direction."""
    T, B, D, H, L = d["T"], d["B"], d["D"], d["H"], d["L"]
    s = 1.0 / math.sqrt(H)
    x = rng.standard_normal((T, B, D), dtype=np.float32)
    ws = [[tuple(rng.uniform(-s, s, shape).astype(np.float32) for shape in ((4 * H, D if k == 0 else 2 * H),
                                                                             (4 * H, H), (4 * H,)))
           for _ in range(2)] for k in range(L)]
    return x, ws


def _torch_bilstm(torch, ws):
    L, (w_ih, w_hh, _) = len(ws), ws[0][0]
    module = torch.nn.LSTM(w_ih.shape[1], w_hh.shape[1], num_layers=L, bidirectional=True)
    with torch.no_grad():
        for k in range(L):
            for j, sfx in enumerate(("", "_reverse")):
                w_ih, w_hh, bias = ws[k][j]
                getattr(module, f"weight_ih_l{k}{sfx}").copy_(torch.from_numpy(w_ih))
                getattr(module, f"weight_hh_l{k}{sfx}").copy_(torch.from_numpy(w_hh))
                getattr(module, f"bias_ih_l{k}{sfx}").copy_(torch.from_numpy(bias))
                getattr(module, f"bias_hh_l{k}{sfx}").zero_()
    return module


def _onnx_bilstm(ctx: Context, ws, x_shape: tuple, build=None):
    """ONNX's LSTM operator with direction="bidirectional" (one layer) over our weights."""
    order = [0, 3, 1, 2]  # ONNX's gates i, o, f, c from ours i, f, g, o
    H = ws[0][0][1].shape[1]

    def gates(a):
        return a.reshape(4, H, -1)[order].reshape(4 * H, -1)

    W = np.stack([gates(w[0]) for w in ws[0]])
    R = np.stack([gates(w[1]) for w in ws[0]])
    Bias = np.stack([np.concatenate([gates(w[2][:, None]).ravel(), np.zeros(4 * H, np.float32)]) for w in ws[0]])
    node = ctx.onnx.helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=H,
                                     direction="bidirectional")
    return (build or ort_session)(ctx, node, {"X": x_shape}, ["Y", "Y_h", "Y_c"], {"W": W, "R": R, "B": Bias})


def setup_bilstm_forward(d: dict, ctx: Context) -> dict[str, Callable]:
    """Inference of a bidirectional LSTM layer in one call (``lstm_layers_forward``, its schedule
    chosen by shape); ``two_calls`` is seqkern's two directions one after the other."""
    x, ws = _bilstm_data(d, ctx.rng)
    layers = [tuple(seqkern.LSTMWeights(*w) for w in pair) for pair in ws]
    f = seqkern.lstm_layers_forward
    impls: dict[str, Callable] = {"seqkern": lambda: f(x, layers, need_cache=False)}
    impls["two_calls"] = lambda: f(x, layers, need_cache=False, schedule="sequential")
    impls["numpy"] = lambda: reference.lstm_layers_forward(x, layers)
    if ctx.torch:
        torch, xt = ctx.torch, ctx.torch.from_numpy(x)
        module = _torch_bilstm(torch, ws)

        def torch_forward():
            with torch.no_grad():
                return module(xt)

        impls["torch"] = torch_forward
    if d["L"] == 1 and ctx.ort:
        sess = _onnx_bilstm(ctx, ws, x.shape)
        # ONNX's Y is (T, 2, B, H): the same values as seqkern's (T, B, 2H) once the axes are swapped.
        impls["ort"] = lambda: sess.run(["Y"], {"X": x})[0].transpose(0, 2, 1, 3)
    if d["L"] == 1 and ctx.openvino:
        run = openvino_runner(ctx, _onnx_bilstm(ctx, ws, x.shape, build=onnx_model), {"X": x})
        impls["openvino"] = lambda: np.asarray(run()).transpose(0, 2, 1, 3)
    return impls


def setup_bilstm_train(d: dict, ctx: Context) -> dict[str, Callable]:
    """Forward and backward of a stacked bidirectional LSTM from a gradient on every output step."""
    x, ws = _bilstm_data(d, ctx.rng)
    dy = ctx.rng.standard_normal((d["T"], d["B"], 2 * d["H"]), dtype=np.float32)
    layers = [tuple(seqkern.LSTMWeights(*w) for w in pair) for pair in ws]
    fwd, bwd = seqkern.lstm_layers_forward, seqkern.lstm_layers_backward
    impls: dict[str, Callable] = {"seqkern": lambda: bwd(fwd(x, layers).cache, dy)}
    impls["two_calls"] = lambda: bwd(fwd(x, layers, schedule="sequential").cache, dy)
    rf, rb = reference.lstm_layers_forward, reference.lstm_layers_backward
    impls["numpy"] = lambda: rb(rf(x, layers).cache, dy)
    if ctx.torch:
        impls["torch"] = _torch_train(ctx.torch, _torch_bilstm(ctx.torch, ws), x, dy)
    return impls


def setup_nn_train(d: dict, ctx: Context) -> dict[str, Callable]:
    """One training pass of the SST-2 model (Embedding, BiLSTM, attention pooling, Dense, Adam)
    over the same batches in seqkern.nn and in PyTorch with packed sequences."""
    from ..nn.speed import make_runners

    _, runners = make_runners(batch=d["batch"], steps=d["steps"], vocab=d["vocab"], embed=d["E"],
                              hidden=d["H"], attn=d["H"], with_torch=ctx.torch is not None)
    impls = {"seqkern": runners["seqkern.nn"]}
    if "torch" in runners:
        impls["torch"] = runners["torch"]
    return impls


def nn_train_tokens(d: dict) -> int:
    from ..nn.speed import make_batches

    return int(sum(b[1].sum() for b in make_batches(d["steps"], d["batch"], d["vocab"])))
