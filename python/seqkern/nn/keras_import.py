"""nn.from_keras: a trained Keras ``Sequential`` model as the equivalent ``seqkern.nn`` model.

Reads the layers' configurations and ``get_weights()`` (duck-typed: no Keras import unless a file
path is given), so a Keras 3 model on any backend converts. Each Keras layer maps to one nn layer:

    Embedding (mask_zero: padding index 0)   Embedding
    LSTM, GRU (both reset_after), SimpleRNN  LSTM, GRU, SimpleRNN, one layer each
    Bidirectional(LSTM | GRU | SimpleRNN)    the same with bidirectional=True (merge_mode "concat")
    Dense                                    Dense, or TimeDistributed(Dense) over a sequence
    TimeDistributed(Dense)                   TimeDistributed(Dense)
    Conv1D (padding same/causal, stride 1)   Conv1D
    GlobalAveragePooling1D / GlobalMaxPooling1D   MeanPool / GlobalMaxPool1D
    Dropout, SpatialDropout1D, InputLayer    Dropout (inference: the identity), nothing

Anything else, or an option whose math differs (an activation other than the defaults, stride > 1,
``go_backwards``, another merge mode), raises ``ValueError`` naming the layer. Masking follows the
nn model's rule: with ``mask_zero`` the padding is the trailing zeros of each row (Keras masks a
zero anywhere).
"""

from __future__ import annotations

import numpy as np

from .. import convert
from .conv import Conv1D, GlobalMaxPool1D
from .layers import Dense, Dropout, Embedding, MeanPool, TimeDistributed
from .model import Sequential
from .recurrent import GRU, LSTM, SimpleRNN

__all__ = ["from_keras"]

_DENSE_ACTIVATIONS = {"linear": None, "relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "softmax": "softmax"}


def _fail(layer, why: str):
    raise ValueError(f"from_keras: layer {layer.name!r} ({type(layer).__name__}): {why}")


def _activation(layer, cfg, key="activation", allowed=_DENSE_ACTIVATIONS):
    act = cfg.get(key, "linear")
    if not isinstance(act, str) or act not in allowed:
        _fail(layer, f"{key}={act!r} is not one of {sorted(allowed)}")
    return allowed[act]


def _recurrent_params(layer, sfx: str) -> tuple[str, dict]:
    """The cell kind and the nn parameters (suffix ``sfx``) of one Keras recurrent layer."""
    cfg = layer.get_config()
    kind = getattr(layer, "kind", type(layer).__name__)
    if cfg.get("go_backwards"):
        _fail(layer, "go_backwards=True is not supported (use Bidirectional)")
    if cfg.get("stateful"):
        _fail(layer, "stateful=True is not converted")
    weights = layer.get_weights()
    kernel, rec = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else None
    if kind == "SimpleRNN":
        act = _activation(layer, cfg, allowed={"tanh": "tanh", "relu": "relu"})
        H = rec.shape[0]
        return kind, {"nonlinearity": act, f"w_ih{sfx}": kernel.T, f"w_hh{sfx}": rec.T,
                      f"bias{sfx}": np.zeros(H) if bias is None else bias}
    _activation(layer, cfg, allowed={"tanh": "tanh"})
    _activation(layer, cfg, "recurrent_activation", allowed={"sigmoid": "sigmoid"})
    if kind == "LSTM":
        w = convert.from_keras_lstm(kernel, rec, bias)
        H = rec.shape[0]
        return kind, {f"w_ih{sfx}": w["w_ih"], f"w_hh{sfx}": w["w_hh"],
                      f"bias{sfx}": np.zeros(4 * H) if w["bias"] is None else w["bias"]}
    reset_after = bool(cfg.get("reset_after", True))
    w = convert.from_keras_gru(kernel, rec, bias, reset_after=reset_after)
    H = rec.shape[0]
    zero = np.zeros(3 * H)
    return kind, {"reset_after": reset_after, f"w_ih{sfx}": w["w_ih"], f"w_hh{sfx}": w["w_hh"],
                  f"b_ih{sfx}": zero if w["b_ih"] is None else w["b_ih"],
                  f"b_hh{sfx}": zero if w["b_hh"] is None else w["b_hh"]}


def _recurrent(layer, dtype):
    """(nn layer, whether its output is a sequence) for a Keras LSTM/GRU/SimpleRNN, perhaps
    inside Bidirectional."""
    inner, bidirectional = layer, False
    if type(layer).__name__ == "Bidirectional":
        merge = layer.get_config().get("merge_mode", "concat")
        if merge != "concat":
            _fail(layer, f"merge_mode={merge!r} is not supported (only 'concat')")
        inner, bidirectional = layer.forward_layer, True
        back = layer.backward_layer
        if type(back).__name__ != type(inner).__name__ or not back.get_config().get("go_backwards"):
            _fail(layer, "the backward layer must be the forward layer's kind, running backwards")
    if type(inner).__name__ not in ("LSTM", "GRU", "SimpleRNN"):
        _fail(layer, f"cannot convert a recurrent layer of kind {type(inner).__name__}")
    kind, params = _recurrent_params(inner, "_l0")
    if bidirectional:
        _, back_params = _recurrent_params(_Forwards(layer.backward_layer), "_l0_reverse")
        params.update({k: v for k, v in back_params.items() if k.endswith("_reverse")})
    cfg = inner.get_config()
    D = params["w_ih_l0"].shape[1]
    H = params["w_hh_l0"].shape[1]
    seq = bool(cfg.get("return_sequences", False))
    opts = {k: params.pop(k) for k in ("nonlinearity", "reset_after") if k in params}
    # recurrent_dropout (training only) carries over where the nn layer has it: every cell but the
    # reset-before GRU. The input dropout of a single Keras layer has no nn counterpart.
    rec_dp = float(cfg.get("recurrent_dropout", 0.0) or 0.0)
    if rec_dp and opts.get("reset_after", True):
        opts["recurrent_dropout"] = rec_dp
    cls = {"LSTM": LSTM, "GRU": GRU, "SimpleRNN": SimpleRNN}[kind]
    nn_layer = cls(D, H, bidirectional=bidirectional, return_sequences=seq, dtype=dtype, **opts)
    nn_layer.set_params(params)
    return nn_layer, seq


class _Forwards:
    """A Keras backward layer seen as a forward one (Bidirectional reverses its input itself; the
    nn layer's reverse direction does the same), for ``_recurrent_params``."""

    def __init__(self, layer):
        self._layer = layer
        self.name = layer.name
        self.kind = type(layer).__name__

    def get_config(self):
        cfg = dict(self._layer.get_config())
        cfg["go_backwards"] = False
        return cfg

    def get_weights(self):
        return self._layer.get_weights()


def _dense(layer, dtype) -> Dense:
    cfg = layer.get_config()
    act = _activation(layer, cfg)
    weights = layer.get_weights()
    kernel = weights[0]
    if kernel.ndim != 2:
        _fail(layer, f"expected a 2-D kernel, got shape {kernel.shape}")
    d = Dense(kernel.shape[0], kernel.shape[1], activation=act, use_bias=len(weights) > 1, dtype=dtype)
    d.set_params({"weight": kernel.T, **({"bias": weights[1]} if len(weights) > 1 else {})})
    return d


def _conv(layer, dtype) -> Conv1D:
    cfg = layer.get_config()
    strides = cfg.get("strides", (1,))
    if tuple(np.atleast_1d(strides)) != (1,):
        _fail(layer, f"strides={strides!r} is not supported (only 1)")
    padding = cfg.get("padding", "valid")
    if padding not in ("same", "causal"):
        _fail(layer, f"padding={padding!r} is not supported ('same' or 'causal': the paddings that keep lengths)")
    if cfg.get("groups", 1) != 1:
        _fail(layer, "groups > 1 is not supported")
    weights = layer.get_weights()
    kernel = weights[0]
    k, C, F = kernel.shape
    dil = int(np.atleast_1d(cfg.get("dilation_rate", 1))[0])
    conv = Conv1D(C, F, k, padding=padding, dilation_rate=dil, activation=_activation(layer, cfg),
                  use_bias=len(weights) > 1, dtype=dtype)
    conv.set_params({"kernel": kernel, **({"bias": weights[1]} if len(weights) > 1 else {})})
    return conv


def from_keras(model, *, dtype=np.float32) -> Sequential:
    """The ``seqkern.nn.Sequential`` equivalent of a Keras ``Sequential`` model (or the path of a
    saved ``.keras`` file, loaded with Keras), with its trained weights.

    ``predict`` of the result on token ids (B, T) gives Keras's ``predict`` on the same ids, up to
    float rounding, for the layers listed in this module's documentation. A recurrent layer's
    ``recurrent_dropout`` carries over (it acts in training only; not for a reset-before GRU, whose
    kernels take no mask); its input ``dropout`` does not.
    """
    if isinstance(model, (str, bytes)) or hasattr(model, "__fspath__"):
        try:
            import keras
        except ImportError as exc:  # pragma: no cover - exercised only without keras
            raise ImportError("from_keras: loading a .keras file needs Keras (pip install keras)") from exc
        model = keras.saving.load_model(model)
    if not hasattr(model, "layers"):
        raise TypeError(f"from_keras: expected a Keras Sequential model or a path, got {type(model).__name__}")
    layers, seq = [], None  # seq: whether the current output is a sequence (None before the first layer)
    for layer in model.layers:
        kind = type(layer).__name__
        cfg = layer.get_config()
        if kind == "InputLayer":
            continue
        if kind == "Embedding":
            if layers:
                _fail(layer, "an Embedding must be the first layer")
            (w,) = layer.get_weights()
            emb = Embedding(w.shape[0], w.shape[1], padding_idx=0 if cfg.get("mask_zero") else None, dtype=dtype)
            emb.set_params({"weight": w})
            layers.append(emb)
            seq = True
        elif kind in ("LSTM", "GRU", "SimpleRNN", "Bidirectional"):
            if seq is False:
                _fail(layer, "a recurrent layer needs a sequence as input")
            rnn, seq = _recurrent(layer, dtype)
            layers.append(rnn)
        elif kind == "Dense":
            d = _dense(layer, dtype)
            layers.append(TimeDistributed(d) if seq else d)
        elif kind == "TimeDistributed":
            if type(layer.layer).__name__ != "Dense":
                _fail(layer, f"only TimeDistributed(Dense) converts, got TimeDistributed({type(layer.layer).__name__})")
            layers.append(TimeDistributed(_dense(layer.layer, dtype)))
        elif kind == "Conv1D":
            layers.append(_conv(layer, dtype))
        elif kind in ("GlobalAveragePooling1D", "GlobalMaxPooling1D"):
            if cfg.get("keepdims"):
                _fail(layer, "keepdims=True is not supported")
            layers.append(MeanPool(dtype=dtype) if kind == "GlobalAveragePooling1D" else GlobalMaxPool1D(dtype=dtype))
            seq = False
        elif kind in ("Dropout", "SpatialDropout1D"):
            layers.append(Dropout(float(cfg.get("rate", 0.0)), dtype=dtype))
        else:
            _fail(layer, "no seqkern.nn equivalent")
    if not layers:
        raise ValueError("from_keras: the model has no layers to convert")
    return Sequential(layers)
