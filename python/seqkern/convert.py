"""Weight converters between other frameworks' LSTM, GRU and RNN layouts and seqkern's.

seqkern's LSTM layout is PyTorch's: ``w_ih`` (4H, D), ``w_hh`` (4H, H), ``bias`` (4H,), gate rows
ordered i, f, g, o, plus optional diagonal peepholes ``peephole`` (3, H) with rows i, f, o.
Every LSTM ``from_*`` function returns a dict with the keys ``w_ih``, ``w_hh``, ``bias`` and
``peephole`` (None where absent), ready for ``seqkern.lstm_forward(x, **d)`` or
``seqkern.LSTMWeights(**d)``.

seqkern's GRU layout is PyTorch's too: ``w_ih`` (3H, D), ``w_hh`` (3H, H), ``b_ih`` and ``b_hh``
(3H,), gate rows ordered r, z, n. Every GRU ``from_*`` function returns a dict with the keys
``w_ih``, ``w_hh``, ``b_ih``, ``b_hh`` (None where absent) and ``linear_before_reset`` (True: the
reset gate multiplies ``h W_hnᵀ + b_hn``; False: it multiplies h before the product), ready for
``seqkern.gru_forward(x, **d)``, ``seqkern.GRUWeights(**d)`` and
``seqkern.reference.gru_forward(x, **d)`` (the kernels implement both variants).

seqkern's plain RNN layout is PyTorch's ``nn.RNN`` with the two biases summed: ``w_ih`` (H, D),
``w_hh`` (H, H), ``bias`` (H,). Every RNN ``from_*`` function returns a dict with the keys ``w_ih``,
``w_hh``, ``bias`` (None where absent) and ``nonlinearity`` ("tanh" or "relu"), ready for
``seqkern.rnn_forward(x, **d)`` or ``seqkern.RNNWeights(**d)``.

The ``*_layers`` functions convert a whole PyTorch module, every layer and direction, to the
``layers`` list that ``seqkern.lstm_layers_forward`` (``gru_``, ``rnn_``) takes, and back.

Plain NumPy in, plain NumPy out: framework tensors are accepted through ``np.asarray`` (PyTorch
tensors after ``.detach()``), and no framework is imported here.

Only the standard cells convert exactly: sigmoid gates and tanh cell/output activations, no
clipping, no coupled input-forget gate, no projection (PyTorch ``proj_size``).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "from_torch_lstm", "to_torch_lstm", "from_keras_lstm", "from_onnx_lstm",
    "from_torch_gru", "to_torch_gru", "from_keras_gru", "from_onnx_gru",
    "from_torch_rnn", "to_torch_rnn", "from_onnx_rnn",
    "from_torch_lstm_layers", "to_torch_lstm_layers", "from_torch_gru_layers", "to_torch_gru_layers",
    "from_torch_rnn_layers", "to_torch_rnn_layers",
]


def _np(a) -> np.ndarray:
    if hasattr(a, "detach"):  # a torch.Tensor, without importing torch
        a = a.detach().cpu().numpy()
    return np.array(a, copy=True)


def _contiguous(**arrays) -> dict:
    return {k: None if a is None else np.ascontiguousarray(a) for k, a in arrays.items()}


def _result(w_ih, w_hh, bias=None, peephole=None) -> dict:
    return _contiguous(w_ih=w_ih, w_hh=w_hh, bias=bias, peephole=peephole)


def _gru_result(w_ih, w_hh, b_ih, b_hh, linear_before_reset) -> dict:
    return {**_contiguous(w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh), "linear_before_reset": bool(linear_before_reset)}


def _stacked(w_ih, w_hh, gates: int) -> bool:
    """w_ih (gates*H, D) and w_hh (gates*H, H), the gate blocks stacked along the rows."""
    return w_ih.ndim == 2 and w_hh.ndim == 2 and w_hh.shape[0] == gates * w_hh.shape[1] and w_ih.shape[0] == w_hh.shape[0]


def _blocks(a, H: int, order) -> np.ndarray:
    """The H-row gate blocks of ``a`` in the given order (block indices into ``a``)."""
    return np.concatenate([a[k * H : (k + 1) * H] for k in order], axis=0)


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
        cell = fn.removesuffix("_layers").rsplit("_", 1)[-1].upper()
        raise ValueError(f"{fn}: several keys end with {name!r}: {hits}; pass the {cell}'s own state_dict")
    if hits:
        return state_dict[hits[0]]
    if required:
        raise KeyError(f"{fn}: state_dict has no {name!r} (keys: {sorted(state_dict)[:8]}...)")
    return None


def _torch_layer(fn: str, state_dict, sfx: str, gates: int):
    """weight_ih, weight_hh, bias_ih, bias_hh of one layer and direction (biases None if absent)."""
    w_ih = _np(_find(state_dict, "weight_ih" + sfx, True, fn))
    w_hh = _np(_find(state_dict, "weight_hh" + sfx, True, fn))
    if not _stacked(w_ih, w_hh, gates):
        raise ValueError(
            f"{fn}: expected weight_ih{sfx} ({gates}H, D) and weight_hh{sfx} ({gates}H, H), "
            f"got {w_ih.shape} and {w_hh.shape}"
        )
    biases = []
    for name in ("bias_ih", "bias_hh"):
        b = _find(state_dict, name + sfx, False, fn)
        if b is not None:
            b = _np(b)
            if b.shape != w_hh.shape[:1]:
                raise ValueError(f"{fn}: {name}{sfx} must have shape {w_hh.shape[:1]}, got {b.shape}")
        biases.append(b)
    return w_ih, w_hh, biases[0], biases[1]


def _summed_bias(w_hh, b_ih, b_hh):
    """PyTorch's two biases as the one seqkern's LSTM and RNN use: their sum (a missing one counts
    as zeros), or None when the module has neither."""
    if b_ih is None and b_hh is None:
        return None
    return sum((b for b in (b_ih, b_hh) if b is not None), np.zeros(w_hh.shape[0], w_hh.dtype))


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
    w_ih, w_hh, b_ih, b_hh = _torch_layer("from_torch_lstm", state_dict, sfx, 4)
    return _result(w_ih, w_hh, _summed_bias(w_hh, b_ih, b_hh))


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
    if not _stacked(k.T, r.T, 4):
        raise ValueError(f"from_keras_lstm: expected kernel (D, 4H) and recurrent_kernel (H, 4H), got {k.shape} and {r.shape}")
    b = None if bias is None else _np(bias)
    if b is not None and b.shape != (r.shape[1],):
        raise ValueError(f"from_keras_lstm: bias must have shape (4H,) = ({r.shape[1]},), got {b.shape}")
    return _result(k.T, r.T, b)


# ONNX orders the LSTM's gate blocks i, o, f, c and the peepholes i, o, f, the GRU's z, r, h;
# Keras orders the GRU's gate columns z, r, h as well.
_ONNX_GATES = (0, 2, 3, 1)  # seqkern's i, f, g, o as ONNX block indices
_ONNX_PEEP = (0, 2, 1)  # seqkern's peephole rows i, f, o as ONNX block indices
_ZRH_GATES = (1, 0, 2)  # seqkern's GRU gates r, z, n as ONNX (and Keras) block indices


def _onnx_dir(a, direction: int, name: str, ndim: int, fn: str = "from_onnx_lstm") -> np.ndarray:
    a = _np(a)
    if a.ndim != ndim:
        raise ValueError(f"{fn}: {name} must be {ndim}-D with a leading num_directions axis, got shape {a.shape}")
    if not 0 <= direction < a.shape[0]:
        raise ValueError(f"{fn}: {name} has {a.shape[0]} direction(s); direction {direction} is out of range")
    return a[direction]


def _onnx_layer(fn: str, W, R, B, direction: int, order):
    """H and one direction's W, R, Wb, Rb, gate blocks reordered to seqkern's (biases None without B)."""
    g = len(order)
    w, r = _onnx_dir(W, direction, "W", 3, fn), _onnx_dir(R, direction, "R", 3, fn)
    H = r.shape[-1]
    if not _stacked(w, r, g):
        raise ValueError(f"{fn}: expected W (dirs, {g}H, D) and R (dirs, {g}H, H), got {np.shape(W)} and {np.shape(R)}")
    wb = rb = None
    if B is not None:
        b = _onnx_dir(B, direction, "B", 2, fn)
        if b.shape != (2 * g * H,):
            raise ValueError(f"{fn}: B must have shape (dirs, {2 * g}H) = (dirs, {2 * g * H}), got {np.shape(B)}")
        wb, rb = _blocks(b[: g * H], H, order), _blocks(b[g * H :], H, order)
    return H, _blocks(w, H, order), _blocks(r, H, order), wb, rb


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
    H, w_ih, w_hh, wb, rb = _onnx_layer("from_onnx_lstm", W, R, B, direction, _ONNX_GATES)
    bias = None if wb is None else wb + rb
    peephole = None
    if P is not None:
        p = _onnx_dir(P, direction, "P", 2)
        if p.shape != (3 * H,):
            raise ValueError(f"from_onnx_lstm: P must have shape (dirs, 3H) = (dirs, {3 * H}), got {np.shape(P)}")
        peephole = np.stack([p[k * H : (k + 1) * H] for k in _ONNX_PEEP])
    return _result(w_ih, w_hh, bias, peephole)


# ---------------------------------------------------------------------------------------------
# GRU


def from_torch_gru(state_dict, layer: int = 0, direction: int = 0) -> dict:
    """Weights of one layer and direction of a PyTorch ``nn.GRU`` from its ``state_dict()``.

    The parameters are :func:`from_torch_lstm`'s: ``gru.state_dict()`` (tensors or arrays, keys
    perhaps with a module prefix), the layer index, and the direction, 1 for the reverse one of a
    bidirectional GRU (which runs over the time-reversed sequence).

    Returns
    -------
    dict
        ``w_ih`` (3H, D_layer), ``w_hh`` (3H, H), ``b_ih`` and ``b_hh`` (3H,) (None for
        ``bias=False``), ``linear_before_reset`` True. PyTorch's gate order is already r, z, n.
    """
    sfx = _torch_suffix("from_torch_gru", layer, direction)
    w_ih, w_hh, b_ih, b_hh = _torch_layer("from_torch_gru", state_dict, sfx, 3)
    return _gru_result(w_ih, w_hh, b_ih, b_hh, True)


def to_torch_gru(w_ih, w_hh, b_ih=None, b_hh=None, layer: int = 0, direction: int = 0, *,
                 linear_before_reset: bool = True) -> dict:
    """The inverse of :func:`from_torch_gru`: state-dict entries for one layer and direction.

    Returns NumPy arrays under PyTorch's names (``weight_ih_l0`` ...); when either bias is given
    the other one, if None, gets zeros (no bias entries when both are None). Wrap them with
    ``torch.from_numpy`` before ``load_state_dict``. PyTorch's nn.GRU resets after the product:
    ``ValueError`` for ``linear_before_reset=False``.
    """
    if not linear_before_reset:
        raise ValueError("to_torch_gru: linear_before_reset must be True: PyTorch's nn.GRU resets after the product")
    sfx = _torch_suffix("to_torch_gru", layer, direction)
    out = {"weight_ih" + sfx: _np(w_ih), "weight_hh" + sfx: _np(w_hh)}
    if b_ih is not None or b_hh is not None:
        b_ih = None if b_ih is None else _np(b_ih)
        b_hh = None if b_hh is None else _np(b_hh)
        out["bias_ih" + sfx] = np.zeros_like(b_hh) if b_ih is None else b_ih
        out["bias_hh" + sfx] = np.zeros_like(b_ih) if b_hh is None else b_hh
    return out


def from_keras_gru(kernel, recurrent_kernel, bias=None, reset_after: bool = True) -> dict:
    """Weights of a Keras ``GRU`` layer (``layer.get_weights()``).

    Parameters
    ----------
    kernel : ndarray (D, 3H)
        Input kernel, gate columns ordered z, r, h (h is seqkern's n).
    recurrent_kernel : ndarray (H, 3H)
        Recurrent kernel, same order.
    bias : ndarray, optional
        ``use_bias=True``'s bias, same order: (2, 3H) with ``reset_after=True`` (row 0 the input
        bias, row 1 the recurrent one), (3H,) with ``reset_after=False`` (the input bias only).
    reset_after : bool
        The layer's ``reset_after`` (Keras' default True, the reset gate after the product).

    Returns
    -------
    dict
        ``w_ih`` (3H, D) and ``w_hh`` (3H, H), the transposed kernels reordered to r, z, n, ``b_ih``
        and ``b_hh`` likewise (``b_hh`` None with ``reset_after=False``), ``linear_before_reset`` =
        ``reset_after``. Keras runs batch-major: transpose its (B, T, D) input to (T, B, D). Only
        the default activations (tanh, sigmoid recurrent activation) convert.
    """
    k, r = _np(kernel), _np(recurrent_kernel)
    if not _stacked(k.T, r.T, 3):
        raise ValueError(f"from_keras_gru: expected kernel (D, 3H) and recurrent_kernel (H, 3H), got {k.shape} and {r.shape}")
    H = r.shape[0]
    b_ih = b_hh = None
    if bias is not None:
        b = _np(bias)
        want = (2, 3 * H) if reset_after else (3 * H,)
        if b.shape != want:
            form = "(2, 3H)" if reset_after else "(3H,)"
            raise ValueError(
                f"from_keras_gru: bias must have shape {form} = {want} with reset_after={bool(reset_after)}, got {b.shape}"
            )
        if reset_after:
            b_ih, b_hh = _blocks(b[0], H, _ZRH_GATES), _blocks(b[1], H, _ZRH_GATES)
        else:
            b_ih = _blocks(b, H, _ZRH_GATES)
    return _gru_result(_blocks(k.T, H, _ZRH_GATES), _blocks(r.T, H, _ZRH_GATES), b_ih, b_hh, reset_after)


def from_onnx_gru(W, R, B=None, linear_before_reset: int = 0, direction: int = 0) -> dict:
    """Weights of one direction of an ONNX ``GRU`` operator, from its initializers.

    Parameters
    ----------
    W : ndarray (num_directions, 3H, D)
        Input weights, gate blocks ordered z, r, h.
    R : ndarray (num_directions, 3H, H)
        Recurrent weights, same order.
    B : ndarray (num_directions, 6H), optional
        ``[Wb, Rb]``, the input and recurrent biases (same order).
    linear_before_reset : int
        The operator's attribute, 0 (ONNX's default: the reset gate before the recurrent
        product) or 1.
    direction : int
        As for :func:`from_onnx_lstm`: 1 is the reverse direction of a bidirectional GRU.

    Returns
    -------
    dict
        ``w_ih``, ``w_hh``, ``b_ih`` (= Wb) and ``b_hh`` (= Rb) reordered to r, z, n,
        ``linear_before_reset`` as a bool. Only the default activations (Sigmoid, Tanh) and no
        ``clip`` convert exactly.
    """
    if linear_before_reset not in (0, 1):
        raise ValueError(f"from_onnx_gru: linear_before_reset must be 0 or 1, got {linear_before_reset!r}")
    _, w_ih, w_hh, b_ih, b_hh = _onnx_layer("from_onnx_gru", W, R, B, direction, _ZRH_GATES)
    return _gru_result(w_ih, w_hh, b_ih, b_hh, linear_before_reset)


# ---------------------------------------------------------------------------------------------
# Plain RNN


def _rnn_result(w_ih, w_hh, bias, nonlinearity: str, fn: str) -> dict:
    if nonlinearity not in ("tanh", "relu"):
        raise ValueError(f"{fn}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return {**_contiguous(w_ih=w_ih, w_hh=w_hh, bias=bias), "nonlinearity": nonlinearity}


def from_torch_rnn(state_dict, layer: int = 0, direction: int = 0, nonlinearity: str = "tanh") -> dict:
    """Weights of one layer and direction of a PyTorch ``nn.RNN`` from its ``state_dict()``.

    The parameters are :func:`from_torch_lstm`'s, plus the module's ``nonlinearity`` ("tanh" or
    "relu"; a state dict does not record it).

    Returns
    -------
    dict
        ``w_ih`` (H, D_layer), ``w_hh`` (H, H), ``bias`` (H,) = ``bias_ih + bias_hh`` (None for
        ``bias=False``), ``nonlinearity``.
    """
    sfx = _torch_suffix("from_torch_rnn", layer, direction)
    w_ih, w_hh, b_ih, b_hh = _torch_layer("from_torch_rnn", state_dict, sfx, 1)
    return _rnn_result(w_ih, w_hh, _summed_bias(w_hh, b_ih, b_hh), nonlinearity, "from_torch_rnn")


def to_torch_rnn(w_ih, w_hh, bias=None, layer: int = 0, direction: int = 0) -> dict:
    """The inverse of :func:`from_torch_rnn`: state-dict entries for one layer and direction.

    NumPy arrays under PyTorch's names; ``bias`` goes to ``bias_ih`` and ``bias_hh`` gets zeros
    (PyTorch only ever uses their sum). Wrap them with ``torch.from_numpy`` before
    ``load_state_dict``; the module's ``nonlinearity`` is the caller's to set.
    """
    sfx = _torch_suffix("to_torch_rnn", layer, direction)
    out = {"weight_ih" + sfx: _np(w_ih), "weight_hh" + sfx: _np(w_hh)}
    if bias is not None:
        out["bias_ih" + sfx] = _np(bias)
        out["bias_hh" + sfx] = np.zeros_like(out["bias_ih" + sfx])
    return out


_ONNX_RNN_ACTIVATIONS = {"Tanh": "tanh", "Relu": "relu"}


def from_onnx_rnn(W, R, B=None, activation: str = "Tanh", direction: int = 0) -> dict:
    """Weights of one direction of an ONNX ``RNN`` operator, from its initializers.

    Parameters
    ----------
    W : ndarray (num_directions, H, D)
    R : ndarray (num_directions, H, H)
    B : ndarray (num_directions, 2H), optional
        ``[Wb, Rb]``; seqkern uses their sum.
    activation : str
        The direction's entry of the operator's ``activations`` (ONNX's default "Tanh", or "Relu").
    direction : int
        As for :func:`from_onnx_lstm`.

    Returns
    -------
    dict
        ``w_ih``, ``w_hh``, ``bias`` (or None), ``nonlinearity``. No ``clip`` converts exactly.
    """
    if activation not in _ONNX_RNN_ACTIVATIONS:
        raise ValueError(f"from_onnx_rnn: activation must be 'Tanh' or 'Relu', got {activation!r}")
    _, w_ih, w_hh, wb, rb = _onnx_layer("from_onnx_rnn", W, R, B, direction, (0,))
    bias = None if wb is None else wb + rb
    return _rnn_result(w_ih, w_hh, bias, _ONNX_RNN_ACTIVATIONS[activation], "from_onnx_rnn")


# ----------------------------------------------------------------------------------------------
# Whole models: every layer and direction of a PyTorch module as the layer list that
# seqkern.lstm_layers_forward / gru_layers_forward / rnn_layers_forward take, and back.


def _torch_shape(fn: str, state_dict) -> tuple[int, int]:
    """(num_layers, num_directions) of a PyTorch recurrent module's state dict."""
    layers = 0
    while _find(state_dict, f"weight_ih_l{layers}", False, fn) is not None:
        layers += 1
    if layers == 0:
        raise KeyError(f"{fn}: the state dict has no 'weight_ih_l0' (is it a PyTorch nn.LSTM/GRU/RNN's?)")
    dirs = 2 if _find(state_dict, "weight_ih_l0_reverse", False, fn) is not None else 1
    return layers, dirs


def _layer_list(fn: str, state_dict, make) -> list:
    layers, dirs = _torch_shape(fn, state_dict)
    out = []
    for k in range(layers):
        ws = tuple(make(k, j) for j in range(dirs))
        out.append(ws if dirs == 2 else ws[0])
    return out


def _cast(d: dict, dtype) -> dict:
    """The converter's dict with its arrays cast to ``dtype`` (None: as they are)."""
    if dtype is None:
        return d
    return {k: v.astype(dtype) if isinstance(v, np.ndarray) else v for k, v in d.items()}


def from_torch_lstm_layers(state_dict, *, dtype=None) -> list:
    """Every layer and direction of a PyTorch ``nn.LSTM``'s ``state_dict()`` as the ``layers`` list
    of ``seqkern.lstm_layers_forward``: one ``LSTMWeights`` a layer, or a pair (forward, reverse)
    when the module is bidirectional. ``dtype`` (e.g. ``np.float32``) casts; None keeps the state
    dict's. The number of layers and directions is read off the keys (a module prefix is fine)."""
    from ._lstm import LSTMWeights

    def make(k, j):
        return LSTMWeights(**_cast(from_torch_lstm(state_dict, k, j), dtype))

    return _layer_list("from_torch_lstm_layers", state_dict, make)


def from_torch_gru_layers(state_dict, *, dtype=None) -> list:
    """:func:`from_torch_lstm_layers` for a PyTorch ``nn.GRU``: ``GRUWeights`` for
    ``seqkern.gru_layers_forward``."""
    from ._gru import GRUWeights

    def make(k, j):
        return GRUWeights(**_cast(from_torch_gru(state_dict, k, j), dtype))

    return _layer_list("from_torch_gru_layers", state_dict, make)


def from_torch_rnn_layers(state_dict, nonlinearity: str = "tanh", *, dtype=None) -> list:
    """:func:`from_torch_lstm_layers` for a PyTorch ``nn.RNN`` (whose ``nonlinearity`` the state
    dict does not record: pass the module's): ``RNNWeights`` for ``seqkern.rnn_layers_forward``."""
    from ._rnn import RNNWeights

    def make(k, j):
        return RNNWeights(**_cast(from_torch_rnn(state_dict, k, j, nonlinearity), dtype))

    return _layer_list("from_torch_rnn_layers", state_dict, make)


def _to_torch_layers(fn: str, layers, kind: type, one) -> dict:
    if not isinstance(layers, (list, tuple)) or not layers:
        raise TypeError(f"{fn}: layers must be a non-empty list (one entry a layer), got {type(layers).__name__}")
    out = {}
    for k, entry in enumerate(layers):
        dirs = tuple(entry) if isinstance(entry, (list, tuple)) else (entry,)
        for j, w in enumerate(dirs):
            if not isinstance(w, kind):
                raise TypeError(f"{fn}: layers[{k}] must hold {kind.__name__} objects, got {type(w).__name__}")
            out.update(one(w, k, j))
    return out


def to_torch_lstm_layers(layers) -> dict:
    """The inverse of :func:`from_torch_lstm_layers`: a state dict (NumPy arrays under PyTorch's
    names; ``torch.from_numpy`` them) for ``nn.LSTM(num_layers=len(layers), bidirectional=...)``.
    Each layer's one bias goes to ``bias_ih`` and ``bias_hh`` gets zeros; peepholes have no
    PyTorch equivalent (``ValueError``)."""
    from ._lstm import LSTMWeights

    return _to_torch_layers("to_torch_lstm_layers", layers, LSTMWeights,
                            lambda w, k, j: to_torch_lstm(w.w_ih, w.w_hh, w.bias, w.peephole, k, j))


def to_torch_gru_layers(layers) -> dict:
    """The inverse of :func:`from_torch_gru_layers`: a state dict for ``nn.GRU``."""
    from ._gru import GRUWeights

    return _to_torch_layers("to_torch_gru_layers", layers, GRUWeights,
                            lambda w, k, j: to_torch_gru(w.w_ih, w.w_hh, w.b_ih, w.b_hh, k, j))


def to_torch_rnn_layers(layers) -> dict:
    """The inverse of :func:`from_torch_rnn_layers`: a state dict for ``nn.RNN`` (of the
    weights' nonlinearity)."""
    from ._rnn import RNNWeights

    return _to_torch_layers("to_torch_rnn_layers", layers, RNNWeights,
                            lambda w, k, j: to_torch_rnn(w.w_ih, w.w_hh, w.bias, k, j))
