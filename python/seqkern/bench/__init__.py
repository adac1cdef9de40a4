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

The modules: ``timing`` (the timer, thread control, the matmul rate), ``peers`` (importing the
peers, their adapters), ``setups`` (one per op: inputs and callables), ``suite`` (the entries,
flop formulas and shape tables), ``check`` (``--check``: peer results against seqkern's),
``report`` (machine information, table, plot) and ``cli`` (arguments, the run, the printout).
Every public name of them is importable from ``seqkern.bench``.

Usage::

    python -m seqkern bench [--quick] [--op NAME ...] [--threads N] [--repeats N]
                            [--json FILE] [--plot FILE.png] [--no-peers] [--all-isas]
"""

from . import check
from .cli import Results, Settings, check_peers, log, main, parse_args, run_suite
from .peers import PEER_MODULES, PEERS, Context, import_peers, onnx_model, openvino_runner, ort_session
from .report import (cache_line, cpu_model, fmt_ratio, fmt_time, format_table, machine_info, make_row,
                     plot_ratios, ratio_keys)
from .setups import (nn_train_tokens, setup_additive, setup_attention_forward, setup_attention_train,
                     setup_lstm_forward, setup_lstm_lowp, setup_lstm_step, setup_lstm_train, setup_nn_train, setup_pool,
                     setup_softmax, setup_softmax_backward)
from .suite import (ATTENTION_TRAIN, FULL_SHAPES, LSTM_TRAIN, QUICK, SMOKE_SHAPES, Entry, additive_flops,
                    attention_flops, build_entries, lstm_flops, op_matches, pool_flops)
from .timing import ThreadControl, Timing, matmul_rate, time_call

__all__ = [
    "check",
    # timing
    "Timing", "time_call", "ThreadControl", "matmul_rate",
    # peers
    "PEERS", "PEER_MODULES", "Context", "import_peers", "onnx_model", "ort_session", "openvino_runner",
    # setups
    "setup_softmax", "setup_softmax_backward", "setup_lstm_forward", "setup_lstm_train",
    "setup_lstm_step", "setup_lstm_lowp", "setup_attention_forward", "setup_attention_train", "setup_additive",
    "setup_pool", "setup_nn_train", "nn_train_tokens",
    # suite
    "Entry", "lstm_flops", "attention_flops", "additive_flops", "pool_flops", "LSTM_TRAIN",
    "ATTENTION_TRAIN", "FULL_SHAPES", "QUICK", "SMOKE_SHAPES", "build_entries", "op_matches",
    # report
    "cpu_model", "machine_info", "cache_line", "fmt_time", "fmt_ratio", "ratio_keys",
    "format_table", "plot_ratios", "make_row",
    # cli
    "parse_args", "log", "Settings", "Results", "check_peers", "run_suite", "main",
]
