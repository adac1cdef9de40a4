"""The benchmark's suite: every entry's op, named shape, flop (or byte, or token) formula and
setup, the full, ``--quick`` and smoke shape tables, and the ``--op`` filter."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from . import check
from .peers import Context
from .setups import (
    nn_train_tokens,
    setup_additive,
    setup_attention_forward,
    setup_attention_train,
    setup_gru_forward,
    setup_gru_reset_before_forward,
    setup_gru_step,
    setup_gru_train,
    setup_rnn_forward,
    setup_rnn_step,
    setup_bilstm_forward,
    setup_attention_decode,
    setup_attention_variant,
    setup_bilstm_train,
    setup_rnn_train,
    setup_lstm_forward,
    setup_lstm_lowp,
    setup_lstm_step,
    setup_lstm_train,
    setup_nn_train,
    setup_pool,
    setup_log_softmax,
    setup_log_softmax_backward,
    setup_softmax,
    setup_softmax_backward,
)


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
    tolerance: float = check.TOLERANCE  # --check's bound on a peer's difference from seqkern

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


def gru_flops(T: int, B: int, D: int, H: int) -> int:
    """GRU forward: 2*T*B*3H*(D+H), its two matrix products of every step (the useful work: the
    kernels' column forms spend a quarter more on zero blocks, not counted)."""
    return 2 * T * B * 3 * H * (D + H)


def rnn_flops(T: int, B: int, D: int, H: int) -> int:
    """Plain RNN forward: 2*T*B*H*(D+H), its two matrix products of every step."""
    return 2 * T * B * H * (D + H)


# Backward costs about twice the forward where every forward product has two backward products
# (LSTM, attention pooling), 2.5 times for attention (it also recomputes the score tiles); the
# +backward rows time both passes.
LSTM_TRAIN = 1 + 2.0
ATTENTION_TRAIN = 1 + 2.5

# The recurrent cells: family, flop formula, forward, forward+backward and step setups.
RECURRENT = (
    ("lstm", lstm_flops, setup_lstm_forward, setup_lstm_train, setup_lstm_step),
    ("gru", gru_flops, setup_gru_forward, setup_gru_train, setup_gru_step),
    ("rnn", rnn_flops, setup_rnn_forward, setup_rnn_train, setup_rnn_step),
)

FULL_SHAPES = {
    "softmax": [((4096, 1024), -1), ((64, 8, 128, 128), -1), ((256, 32000), -1),
                ((32, 1024, 256), 1)],
    "softmax_backward": [((4096, 1024), -1), ((32, 1024, 256), 1)],
    "log_softmax": [((4096, 1024), -1), ((256, 32000), -1)],
    "log_softmax_backward": [((4096, 1024), -1)],
    # (128, 32, 100, 100) is the SST-2 model's size; (128, 32, 96, 96) the nearest multiple of 16
    "lstm": [(128, 32, 128, 256), (256, 1, 64, 128), (64, 64, 256, 512), (512, 16, 128, 128),
             (128, 32, 100, 100), (128, 32, 96, 96)],
    "lstm_step": [(1, 128, 256)],
    "gru": [(128, 32, 128, 256), (256, 1, 64, 128), (512, 16, 128, 128)],
    "gru_step": [(1, 128, 256)],
    # reset before the product (ONNX's default GRU): ONNX Runtime, OpenVINO (no PyTorch peer)
    "gru_reset_before": [(128, 32, 128, 256), (256, 1, 64, 128)],
    "rnn": [(128, 32, 128, 256), (256, 1, 64, 128), (512, 16, 128, 128)],
    "rnn_step": [(1, 128, 256)],
    # bidirectional layers (T, B, D, H, layers): the SST-2 layer, a wider one, one sequence;
    # forward+backward of the SST-2 model's two layers
    "bilstm": [(64, 32, 100, 100, 1), (256, 8, 128, 256, 1), (128, 1, 128, 128, 1)],
    "bilstm_train": [(64, 32, 100, 100, 2)],
    "attention": [(8, 8, 512, 64), (32, 4, 128, 64)],
    # the same kernel with an additive bias and with grouped heads (8 query heads, 2 key heads)
    "attention_variants": [(8, 8, 512, 64)],
    # one decoding step against a cache (B, NH, Lk, Dh)
    "attention_decode": [(1, 8, 2048, 64)],
    "additive": [(32, 64, 64, 256, 128)],
    "pool": [(128, 32, 256, 128)],
    "nn_train": [(32, 20, 15000, 100, 100)],
    # low-precision weights: the step, one sequence, a batch of 64 and one row of the same layer
    "lstm_lowp_step": [(1, 128, 256)],
    "lstm_lowp": [(256, 1, 64, 128), (64, 64, 256, 512), (64, 1, 256, 512)],
}
QUICK = {  # the --quick subset: (op family, shape) pairs from FULL_SHAPES
    ("softmax", ((4096, 1024), -1)), ("softmax", ((32, 1024, 256), 1)),
    ("lstm", (128, 32, 128, 256)), ("lstm", (256, 1, 64, 128)), ("lstm_step", (1, 128, 256)),
    ("attention", (32, 4, 128, 64)), ("attention", (8, 8, 512, 64)),
}
SMOKE_SHAPES = {  # tiny shapes that run every code path in well under a second
    "softmax": [((8, 16), -1), ((3, 5, 4), 1)],
    "softmax_backward": [((8, 16), -1)],
    "log_softmax": [((8, 16), -1), ((3, 5, 4), 1)],
    "log_softmax_backward": [((8, 16), -1)],
    "lstm": [(3, 16, 4, 8), (3, 1, 4, 8)],
    "lstm_step": [(1, 4, 8)],
    "gru": [(3, 16, 4, 8), (3, 1, 4, 8)],
    "gru_step": [(1, 4, 8)],
    "gru_reset_before": [(3, 16, 4, 8), (3, 1, 4, 8)],
    "rnn": [(3, 16, 4, 8), (3, 1, 4, 8)],
    "rnn_step": [(1, 4, 8)],
    "bilstm": [(3, 16, 4, 8, 1), (3, 1, 4, 8, 2)],
    "bilstm_train": [(3, 4, 4, 8, 2)],
    "attention": [(1, 2, 8, 4)],
    "attention_variants": [(1, 4, 8, 4)],
    "attention_decode": [(1, 2, 16, 4)],
    "additive": [(2, 3, 5, 4, 6)],
    "pool": [(4, 2, 5, 3)],
    "nn_train": [(4, 2, 50, 6, 5)],
    "lstm_lowp_step": [(1, 4, 8)],
    "lstm_lowp": [(3, 1, 4, 8), (3, 16, 4, 8)],
}


def build_entries(quick: bool = False, smoke: bool = False) -> list[Entry]:
    """The suite in run order (the --quick subset when ``quick``, tiny shapes when ``smoke``)."""
    table = SMOKE_SHAPES if smoke else FULL_SHAPES
    out: list[Entry] = []

    def add(family: str, shape: tuple, entry: Entry) -> None:
        if not quick or smoke or (family, shape) in QUICK:
            out.append(replace(entry, quick=(family, shape) in QUICK))

    for name, setup, per_elem in (("softmax", setup_softmax, 2), ("softmax_backward", setup_softmax_backward, 3),
                                  ("log_softmax", setup_log_softmax, 2),
                                  ("log_softmax_backward", setup_log_softmax_backward, 3)):
        for shape, axis in table[name]:
            # Read x (and dy), write y: 4 bytes per float32 element and pass.
            nbytes = per_elem * 4 * math.prod(shape)
            add(name, (shape, axis), Entry(name, {"x": shape, "axis": axis}, setup,
                                           bytes=nbytes))
    for cell, flops, fwd, train, step in RECURRENT:
        for T, B, D, H in table[cell]:
            dims, f, big = dict(T=T, B=B, D=D, H=H), flops(T, B, D, H), B >= 16
            add(cell, (T, B, D, H), Entry(cell + "_forward", dims, fwd, flops=f, scaling=big))
            add(cell, (T, B, D, H), Entry(cell + "_forward+backward", dims, train, flops=LSTM_TRAIN * f,
                                          scaling=big))
        for B, D, H in table[cell + "_step"]:
            add(cell + "_step", (B, D, H), Entry(cell + "_step", dict(B=B, D=D, H=H), step, flops=flops(1, B, D, H)))
    for T, B, D, H in table["gru_reset_before"]:
        dims = dict(T=T, B=B, D=D, H=H)
        add("gru_reset_before", (T, B, D, H), Entry("gru_reset_before_forward", dims, setup_gru_reset_before_forward,
                                                    flops=gru_flops(T, B, D, H), scaling=B >= 16))
    for T, B, D, H, L in table["bilstm"]:
        dims = dict(T=T, B=B, D=D, H=H, L=L)
        f = 2 * sum(lstm_flops(T, B, D if k == 0 else 2 * H, H) for k in range(L))
        add("bilstm", (T, B, D, H, L), Entry("bilstm_forward", dims, setup_bilstm_forward, flops=f, scaling=B >= 8))
    for T, B, D, H, L in table["bilstm_train"]:
        dims = dict(T=T, B=B, D=D, H=H, L=L)
        f = 2 * sum(lstm_flops(T, B, D if k == 0 else 2 * H, H) for k in range(L))
        add("bilstm", (T, B, D, H, L), Entry("bilstm_forward+backward", dims, setup_bilstm_train,
                                             flops=LSTM_TRAIN * f, scaling=True))
    for B, NH, L, Dh in table["attention"]:
        dims, f = dict(B=B, NH=NH, L=L, Dh=Dh), attention_flops(B, NH, L, L, Dh)
        big = L >= 512
        add("attention", (B, NH, L, Dh), Entry("attention_forward", dims,
                                               setup_attention_forward, flops=f, scaling=big))
        add("attention", (B, NH, L, Dh), Entry("attention_forward+backward", dims,
                                               setup_attention_train, flops=ATTENTION_TRAIN * f,
                                               scaling=big))
    for B, NH, L, Dh in table["attention_variants"]:
        f = attention_flops(B, NH, L, L, Dh)
        for kind in ("bias", "gqa"):
            dims = dict(B=B, NH=NH, L=L, Dh=Dh, kind=kind)
            add("attention", (B, NH, L, Dh), Entry(f"attention_{kind}_forward", dims, setup_attention_variant, flops=f))
    for B, NH, Lk, Dh in table["attention_decode"]:
        dims = dict(B=B, NH=NH, Lk=Lk, Dh=Dh)
        # Bytes: the keys and values read once (a decoding step is a stream of the cache).
        add("attention", (B, NH, Lk, Dh), Entry("attention_decode_step", dims, setup_attention_decode,
                                                bytes=2 * 4 * B * NH * Lk * Dh))
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
    for fmt in ("bf16", "int8"):
        for B, D, H in table["lstm_lowp_step"]:
            dims = dict(B=B, D=D, H=H, fmt=fmt)
            add("lstm_lowp", (B, D, H), Entry(f"lstm_step_{fmt}", dims, setup_lstm_lowp, flops=lstm_flops(1, B, D, H),
                                              tolerance=check.LOW_PRECISION_TOLERANCE))
        for T, B, D, H in table["lstm_lowp"]:
            dims = dict(T=T, B=B, D=D, H=H, fmt=fmt)
            add("lstm_lowp", (T, B, D, H), Entry(f"lstm_forward_{fmt}", dims, setup_lstm_lowp,
                                                 flops=lstm_flops(T, B, D, H), scaling=B >= 16,
                                                 tolerance=check.LOW_PRECISION_TOLERANCE))
    return out


def op_matches(op: str, name: str) -> bool:
    """``--op`` filter: the exact op, a family prefix (``lstm``, ``attention``), or
    ``<op>_backward`` for the ``<op>_forward+backward`` rows."""
    if name.endswith("_backward") and op == name[: -len("_backward")] + "_forward+backward":
        return True
    return op == name or op.startswith(name + "_") or op.startswith(name + "+")
