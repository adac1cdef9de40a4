"""Weight converters between other frameworks' LSTM layouts and seqkern's.

seqkern's layout is PyTorch's: ``w_ih`` (4H, D), ``w_hh`` (4H, H), ``bias`` (4H,), gate rows
ordered i, f, g, o, plus optional diagonal peepholes ``peephole`` (3, H) with rows i, f, o.
Every ``from_*`` function returns a dict with the keys ``w_ih``, ``w_hh``, ``bias`` and
``peephole`` (None where absent), ready for ``seqkern.lstm_forward(x, **d)`` or
``seqkern.LSTMWeights(**d)``. Plain NumPy in, plain NumPy out: framework tensors are accepted
through ``np.asarray`` (PyTorch tensors after ``.detach()``), and no framework is imported here.

Only the standard cell converts exactly: sigmoid gates and tanh cell/output activations, no
clipping, no coupled input-forget gate, no projection (PyTorch ``proj_size``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["from_torch_lstm", "to_torch_lstm", "from_keras_lstm", "from_onnx_lstm"]


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch.Tensor, without importing torch
        a = a.detach().cpu().numpy()
    return np.array(a, copy=True)


def _result(w_ih, w_hh, bias=None, peephole=None) -> dict:
    return {
        "w_ih": np.ascontiguousarray(w_ih),
        "w_hh": np.ascontiguousarray(w_hh),
        "bias": None if bias is None else np.ascontiguousarray(bias),
        "peephole": None if peephole is None else np.ascontiguousarray(peephole),
    }


def _torch_suffix(fn: str, layer: int, direction: int) -> str:
    if direction not in (0, 1):
        raise ValueError(f"{fn}: direction must be 0 (forward) or 1 (reverse), got {direction}")
    return f"_l{int(layer)}" + ("_reverse" if direction == 1 else "")


def _find(state_dict, name: str, required: bool, fn: str = "from_torch_lstm"):
    if name in state_dict:
        return state_dict[name]
    # A module nested in a model: keys carry a prefix such as "encoder.lstm.".
    hits = [k for k in state_dict if k.endswith("." + name)]
    if len(hits) > 1:
        raise ValueError(f"{fn}: several keys end with {name!r}: {hits}; pass the LSTM's own state_dict")
    if hits:
        return state_dict[hits[0]]
    if required:
        raise KeyError(f"{fn}: state_dict has no {name!r} (keys: {sorted(state_dict)[:8]}...)")
    return None


def from_torch_lstm(state_dict, layer: int = 0, direction: int = 0) -> dict:
    """Weights of one layer and direction of a PyTorch ``nn.LSTM`` from its ``state_dict()``.

    Parameters
    ----------
    state_dict : mapping
        ``lstm.state_dict()`` (tensors or arrays); keys may carry a module prefix.
    layer : int
        Layer index (``weight_ih_l{layer}``).
    direction : int
        0 for the forward direction, 1 for the reverse one of a bidirectional LSTM (which
        runs over the time-reversed sequence).

    Returns
    -------
    dict
        ``w_ih`` (4H, D_layer), ``w_hh`` (4H, H), ``bias`` (4H,) = ``bias_ih + bias_hh`` (None for
        ``bias=False``), ``peephole`` None. PyTorch's gate order is already i, f, g, o.
    """
    sfx = _torch_suffix("from_torch_lstm", layer, direction)
    if _find(state_dict, "weight_hr" + sfx, required=False) is not None:
        raise ValueError("from_torch_lstm: nn.LSTM with proj_size > 0 is not supported")
    w_ih = _np(_find(state_dict, "weight_ih" + sfx, True))
    w_hh = _np(_find(state_dict, "weight_hh" + sfx, True))
    if w_ih.ndim != 2 or w_hh.ndim != 2 or w_hh.shape[0] != 4 * w_hh.shape[1] or w_ih.shape[0] != w_hh.shape[0]:
        raise ValueError(
            f"from_torch_lstm: expected weight_ih{sfx} (4H, D) and weight_hh{sfx} (4H, H), "
            f"got {w_ih.shape} and {w_hh.shape}"
        )
    b_ih = _find(state_dict, "bias_ih" + sfx, False)
    b_hh = _find(state_dict, "bias_hh" + sfx, False)
    bias = None
    if b_ih is not None or b_hh is not None:
        bias = np.zeros(w_hh.shape[0], w_hh.dtype)
        for name, b in (("bias_ih", b_ih), ("bias_hh", b_hh)):
            if b is not None:
                b = _np(b)
                if b.shape != bias.shape:
                    raise ValueError(f"from_torch_lstm: {name}{sfx} must have shape {bias.shape}, got {b.shape}")
                bias = bias + b
    return _result(w_ih, w_hh, bias)


def to_torch_lstm(w_ih, w_hh, bias=None, peephole=None, layer: int = 0, direction: int = 0) -> dict:
    """The inverse of :func:`from_torch_lstm`: state-dict entries for one layer and direction.

    Returns NumPy arrays under PyTorch's names (``weight_ih_l0`` ...); the bias goes to
    ``bias_ih`` and ``bias_hh`` gets zeros. Wrap them with ``torch.from_numpy`` before
    ``load_state_dict``. Peepholes have no PyTorch equivalent: ``ValueError`` if given.
    """
    if peephole is not None:
        raise ValueError("to_torch_lstm: peephole must be None: PyTorch's nn.LSTM has no peepholes")
    sfx = _torch_suffix("to_torch_lstm", layer, direction)
    w_ih, w_hh = _np(w_ih), _np(w_hh)
    out = {"weight_ih" + sfx: w_ih, "weight_hh" + sfx: w_hh}
    if bias is not None:
        out["bias_ih" + sfx] = _np(bias)
        out["bias_hh" + sfx] = np.zeros_like(out["bias_ih" + sfx])
    return out


def from_keras_lstm(kernel, recurrent_kernel, bias=None) -> dict:
    """Weights of a Keras ``LSTM`` layer (``layer.get_weights()``).

    Parameters
    ----------
    kernel : ndarray (D, 4H)
        Input kernel, gate columns ordered i, f, c, o (c is seqkern's g).
    recurrent_kernel : ndarray (H, 4H)
        Recurrent kernel, same order.
    bias : ndarray (4H,), optional
        ``use_bias=True``'s bias, same order.

    Returns
    -------
    dict
        ``w_ih`` = kernel.T (4H, D), ``w_hh`` = recurrent_kernel.T (4H, H), ``bias``, ``peephole``
        None. Keras' gate order i, f, c, o matches seqkern's i, f, g, o. Keras runs batch-major:
        transpose its (B, T, D) input to (T, B, D). Only the default activations convert.
    """
    k, r = _np(kernel), _np(recurrent_kernel)
    if k.ndim != 2 or r.ndim != 2 or r.shape[1] != 4 * r.shape[0] or k.shape[1] != r.shape[1]:
        raise ValueError(f"from_keras_lstm: expected kernel (D, 4H) and recurrent_kernel (H, 4H), got {k.shape} and {r.shape}")
    b = None if bias is None else _np(bias)
    if b is not None and b.shape != (r.shape[1],):
        raise ValueError(f"from_keras_lstm: bias must have shape (4H,) = ({r.shape[1]},), got {b.shape}")
    return _result(k.T, r.T, b)


# ONNX orders the gate blocks i, o, f, c and the peepholes i, o, f.
_ONNX_GATES = (0, 2, 3, 1)  # seqkern's i, f, g, o as ONNX block indices
_ONNX_PEEP = (0, 2, 1)  # seqkern's peephole rows i, f, o as ONNX block indices


def _onnx_dir(a, direction: int, name: str, ndim: int) -> np.ndarray:
    a = _np(a)
    if a.ndim != ndim:
        raise ValueError(f"from_onnx_lstm: {name} must be {ndim}-D with a leading num_directions axis, got shape {a.shape}")
    if not 0 <= direction < a.shape[0]:
        raise ValueError(f"from_onnx_lstm: {name} has {a.shape[0]} direction(s); direction {direction} is out of range")
    return a[direction]


def from_onnx_lstm(W, R, B=None, P=None, direction: int = 0) -> dict:
    """Weights of one direction of an ONNX ``LSTM`` operator, from its initializers.

    Parameters
    ----------
    W : ndarray (num_directions, 4H, D)
        Input weights, gate blocks ordered i, o, f, c.
    R : ndarray (num_directions, 4H, H)
        Recurrent weights, same order.
    B : ndarray (num_directions, 8H), optional
        ``[Wb, Rb]``, the input and recurrent biases (same order); seqkern uses their sum.
    P : ndarray (num_directions, 3H), optional
        Peepholes, ordered i, o, f.
    direction : int
        0 for forward (or the only direction), 1 for the reverse direction of a bidirectional
        LSTM, which runs over each sequence backwards.

    Returns
    -------
    dict
        ``w_ih``, ``w_hh`` and ``bias`` reordered to i, f, g, o, ``peephole`` (3, H) ordered i, f, o
        (or None). Only the default activations (Sigmoid, Tanh, Tanh), no ``clip`` and
        ``input_forget=0`` convert exactly.
    """
    w, r = _onnx_dir(W, direction, "W", 3), _onnx_dir(R, direction, "R", 3)
    H = r.shape[-1]
    if r.shape != (4 * H, H) or w.shape[0] != 4 * H:
        raise ValueError(f"from_onnx_lstm: expected W (dirs, 4H, D) and R (dirs, 4H, H), got {np.shape(W)} and {np.shape(R)}")

    def gates(a):
        return np.concatenate([a[k * H : (k + 1) * H] for k in _ONNX_GATES], axis=0)

    bias = None
    if B is not None:
        b = _onnx_dir(B, direction, "B", 2)
        if b.shape != (8 * H,):
            raise ValueError(f"from_onnx_lstm: B must have shape (dirs, 8H) = (dirs, {8 * H}), got {np.shape(B)}")
        bias = gates(b[: 4 * H] + b[4 * H :])
    peephole = None
    if P is not None:
        p = _onnx_dir(P, direction, "P", 2)
        if p.shape != (3 * H,):
            raise ValueError(f"from_onnx_lstm: P must have shape (dirs, 3H) = (dirs, {3 * H}), got {np.shape(P)}")
        peephole = np.stack([p[k * H : (k + 1) * H] for k in _ONNX_PEEP])
    return _result(gates(w), gates(r), bias, peephole)
