"""Export of a ``Sequential`` model to ONNX (``model.to_onnx(path)``), so that ONNX Runtime or any
other ONNX runtime runs it with the same outputs.

The graph takes ``ids`` (B, T) int64 token ids (or ``x`` (B, T, D) float32 features when the
model does not start with an Embedding) and ``lengths`` (B,) int64, the real steps of each row
(give T for every row when nothing is padded), and gives ``output``, what ``model.predict``
gives: (B, C), or (B, T, C) for a per-token model. Standard operators only (opset 17):

- ``Embedding``: ``Gather`` of the table by the transposed ids (time-major, as here).
- ``LSTM``, ``GRU``, ``SimpleRNN``: one ONNX ``LSTM`` / ``GRU`` / ``RNN`` node a layer (both
  directions in one node), ``sequence_lens`` from ``lengths``; gate blocks reordered to ONNX's
  (i, o, f, c for the LSTM, peepholes i, o, f; z, r, h for the GRU, with
  ``linear_before_reset`` 1, PyTorch's GRU, or 0 for ``reset_after=False``), biases as ONNX's
  ``[Wb, Rb]``.
- ``AttentionPool``: a small subgraph, u = tanh(h W^T + b), scores u w_s, the steps past each
  length set to -inf, ``Softmax`` over time, the weighted sum of h.
- ``MeanPool``, ``Dense`` (``MatMul``, ``Add`` and the activation), ``TimeDistributed(Dense)``;
  ``Dropout`` is the identity at inference.

Parameters are written as float32 (a float64 model is rounded). Needs the ``onnx`` package.
Stateful layers, ``return_state`` and functional ``Model`` graphs are not exported.
"""

from __future__ import annotations

import os

import numpy as np

from ._files import _new_temp
from .layers import AttentionPool, Dense, Dropout, Embedding, MeanPool, TimeDistributed
from .recurrent import GRU, LSTM, SimpleRNN

__all__ = ["to_onnx"]

OPSET = 17


class _Graph:
    def __init__(self, helper, numpy_helper):
        self.h, self.nh = helper, numpy_helper
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, value, base="c", dtype=np.float32):
        name = self.name(base)
        self.inits.append(self.nh.from_array(np.asarray(value, dtype=dtype), name))
        return name

    def op(self, op_type, inputs, base=None, outputs=1, **attrs):
        outs = [self.name(base or op_type.lower()) for _ in range(outputs)]
        self.nodes.append(self.h.make_node(op_type, list(inputs), outs, **attrs))
        return outs[0] if outputs == 1 else outs


def _lstm_weights(layer, sfx):
    p, H = layer.params(), layer.hidden_size
    order = np.r_[0:H, 3 * H : 4 * H, H : 2 * H, 2 * H : 3 * H]  # i f g o -> i o f c
    w, r, b = p[f"w_ih{sfx}"][order], p[f"w_hh{sfx}"][order], p[f"bias{sfx}"][order]
    peep = p.get(f"peephole{sfx}")
    return w, r, np.r_[b, np.zeros(4 * H)], None if peep is None else np.r_[peep[0], peep[2], peep[1]]


def _gru_weights(layer, sfx):
    p, H = layer.params(), layer.hidden_size
    order = np.r_[H : 2 * H, 0:H, 2 * H : 3 * H]  # r z n -> z r h
    return (p[f"w_ih{sfx}"][order], p[f"w_hh{sfx}"][order], np.r_[p[f"b_ih{sfx}"][order], p[f"b_hh{sfx}"][order]],
            None)


def _rnn_weights(layer, sfx):
    p, H = layer.params(), layer.hidden_size
    return p[f"w_ih{sfx}"], p[f"w_hh{sfx}"], np.r_[p[f"bias{sfx}"], np.zeros(H)], None


def _recurrent(g, layer, x, seq_lens):
    """x (T, B, F) -> the last layer's outputs (T, B, dirs*H) and final states (dirs, B, H)."""
    kind, weights = {LSTM: ("LSTM", _lstm_weights), GRU: ("GRU", _gru_weights),
                     SimpleRNN: ("RNN", _rnn_weights)}[type(layer)]
    dirs = len(layer.dirs)
    attrs = {"hidden_size": layer.hidden_size, "direction": "bidirectional" if dirs == 2 else "forward"}
    if kind == "GRU":
        attrs["linear_before_reset"] = int(layer.reset_after)
    if kind == "RNN":
        attrs["activations"] = [layer.nonlinearity.capitalize()] * dirs
    y_h = None
    for k in range(layer.num_layers):
        parts = [weights(layer, f"_l{k}{s}") for s in layer.dirs]
        W = g.const(np.stack([q[0] for q in parts]), "W")
        R = g.const(np.stack([q[1] for q in parts]), "R")
        B = g.const(np.stack([q[2] for q in parts]), "B")
        ins = [x, W, R, B, seq_lens]
        if parts[0][3] is not None:
            ins += ["", "", g.const(np.stack([q[3] for q in parts]), "P")]
        outs = g.op(kind, ins, kind.lower(), outputs=3 if kind == "LSTM" else 2, **attrs)
        y, y_h = outs[0], outs[1]
        x = g.op("Reshape", [g.op("Transpose", [y], perm=[0, 2, 1, 3]), g.const([0, 0, -1], "shape", np.int64)])
    return x, y_h


def _time_mask(g, h, lengths):
    """(T, B) bool: step t < lengths[b], for time-major h."""
    T = g.op("Gather", [g.op("Shape", [h]), g.const(0, "zero", np.int64)], axis=0)
    steps = g.op("Range", [g.const(0, "zero", np.int64), T, g.const(1, "one", np.int64)])
    return g.op("Less", [g.op("Unsqueeze", [steps, g.const([1], "axes", np.int64)]),
                         g.op("Unsqueeze", [lengths, g.const([0], "axes", np.int64)])])


def _dense(g, layer, x):
    p = layer.params()
    z = g.op("MatMul", [x, g.const(p["weight"].T, "W")])
    if layer.use_bias:
        z = g.op("Add", [z, g.const(p["bias"], "b")])
    act = layer.activation
    if act is None:
        return z
    if act == "softmax":
        return g.op("Softmax", [z], axis=-1)
    return g.op({"relu": "Relu", "tanh": "Tanh", "sigmoid": "Sigmoid"}[act], [z])


def to_onnx(model, path, *, opset: int = OPSET) -> str:
    """Write ``model`` (a ``Sequential``) as an ONNX file at ``path``; returns the path. See the
    module docstring for the graph's inputs, output and operators."""
    try:
        import onnx
        from onnx import TensorProto, helper, numpy_helper
    except ImportError:
        raise ImportError("to_onnx needs the onnx package: pip install onnx") from None
    from .functional import Model

    if isinstance(model, Model):
        raise TypeError("to_onnx: functional Model graphs are not exported; a Sequential model is")
    g = _Graph(helper, numpy_helper)
    first = model.layers[0]
    lengths = "lengths"
    if isinstance(first, Embedding):
        inp = helper.make_tensor_value_info("ids", TensorProto.INT64, ["B", "T"])
        x = g.op("Transpose", ["ids"], perm=[1, 0])
    elif hasattr(first, "input_size"):
        inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", "T", first.input_size])
        x = g.op("Transpose", ["x"], perm=[1, 0, 2])
    else:
        raise TypeError(f"to_onnx: the first layer must be an Embedding or a recurrent layer, got {type(first).__name__}")
    seq_lens = g.op("Cast", [lengths], to=TensorProto.INT32)
    time_major = True  # whether x is (T, B, F)
    for i, layer in enumerate(model.layers):
        where = f"to_onnx: layer {i} ({type(layer).__name__})"
        if getattr(layer, "stateful", False) or getattr(layer, "return_state", False):
            raise ValueError(f"{where}: stateful layers and return_state are not exported")
        if isinstance(layer, Embedding):
            x = g.op("Gather", [g.const(layer.params()["weight"], "table"), x], axis=0)
        elif isinstance(layer, Dropout):
            continue
        elif isinstance(layer, (LSTM, GRU, SimpleRNN)):
            y, y_h = _recurrent(g, layer, x, seq_lens)
            if layer.return_sequences:
                x = y
            else:
                x = g.op("Reshape", [g.op("Transpose", [y_h], perm=[1, 0, 2]), g.const([0, -1], "shape", np.int64)])
                time_major = False
        elif isinstance(layer, AttentionPool):
            p = layer.params()
            u = g.op("Tanh", [g.op("Add", [g.op("MatMul", [x, g.const(p["w"].T, "W")]), g.const(p["b"], "b")])])
            s = g.op("Squeeze", [g.op("MatMul", [u, g.const(p["w_s"][:, None], "w_s")]),
                                 g.const([2], "axes", np.int64)])
            valid = _time_mask(g, x, lengths)
            s = g.op("Where", [valid, s, g.const(-np.inf, "neg_inf")])
            # A row of length 0 has no valid step: its NaN weights become zeros, as the kernel's.
            alpha = g.op("Where", [valid, g.op("Softmax", [s], axis=0), g.const(0.0, "zero")])
            weighted = g.op("Mul", [g.op("Unsqueeze", [alpha, g.const([2], "axes", np.int64)]), x])
            x = g.op("ReduceSum", [weighted, g.const([0], "axes", np.int64)], keepdims=0)
            time_major = False
        elif isinstance(layer, MeanPool):
            mask = g.op("Cast", [_time_mask(g, x, lengths)], to=TensorProto.FLOAT)
            total = g.op("ReduceSum", [g.op("Mul", [x, g.op("Unsqueeze", [mask, g.const([2], "axes", np.int64)])]),
                                       g.const([0], "axes", np.int64)], keepdims=0)
            count = g.op("Max", [g.op("Cast", [lengths], to=TensorProto.FLOAT), g.const(1.0, "one")])
            x = g.op("Div", [total, g.op("Unsqueeze", [count, g.const([1], "axes", np.int64)])])
            time_major = False
        elif isinstance(layer, Dense):
            x = _dense(g, layer, x)
        elif isinstance(layer, TimeDistributed) and isinstance(layer.layer, Dense):
            x = _dense(g, layer.layer, x)
        else:
            raise TypeError(f"{where} has no ONNX export")
    if time_major:
        x = g.op("Transpose", [x], perm=[1, 0, 2])
    g.nodes.append(helper.make_node("Identity", [x], ["output"]))
    shape = model.output_shapes()[-1]
    dims = ["B"] + ["T" if d is None else int(d) for d in shape[1:]]
    out = helper.make_tensor_value_info("output", TensorProto.FLOAT, dims)
    graph = helper.make_graph(g.nodes, "seqkern_nn", [inp, helper.make_tensor_value_info(
        "lengths", TensorProto.INT64, ["B"])], [out], initializer=g.inits)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="seqkern.nn")
    onnx.checker.check_model(proto)
    path = os.fspath(path)
    fd, tmp = _new_temp(path)  # written next to the target and renamed over it, as model files
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(proto.SerializeToString())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path
