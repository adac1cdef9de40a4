"""Plain-NumPy reference of every seqkern kernel: the specification.

Each function has the signature of its compiled twin in ``seqkern`` and computes in the dtype it
is given (pass float64 for an accurate reference). It is written to be read, not to be fast: no
tricks beyond the max-subtraction that keeps a softmax finite. The tests compare the kernels with
these functions, and these functions with finite differences.

One module a family: ``softmax``, ``lstm``, ``gru``, ``rnn``, ``layers`` (stacked and
bidirectional layers of the three cells), ``attention`` (scaled dot-product and
additive) and ``pool`` (attention pooling); every name is importable from ``seqkern.reference``.
``lowp`` holds the low-precision weight formats (bf16, int8) and the int8 forwards of the three
cells (``seqkern.reference.lowp``).
"""

from __future__ import annotations

from .attention import (
    additive_attention_backward,
    additive_attention_forward,
    attention_backward,
    attention_forward,
    attention_scores,
)
from .attention import attention_keep as attention_keep
from .gru import GRUGrads as GRUGrads
from .gru import GRUOutput as GRUOutput
from .gru import gru_backward, gru_forward
from .lstm import LSTMGrads as LSTMGrads
from .lstm import LSTMOutput as LSTMOutput
from .lstm import lstm_backward, lstm_forward
from .rnn import RNNGrads as RNNGrads
from .rnn import RNNOutput as RNNOutput
from .rnn import rnn_backward, rnn_forward
from .layers import LayersGrads as LayersGrads
from .layers import LayersOutput as LayersOutput
from .layers import (
    gru_layers_backward,
    gru_layers_forward,
    lstm_layers_backward,
    lstm_layers_forward,
    rnn_layers_backward,
    rnn_layers_forward,
)
from . import lowp as lowp
from .pool import attention_pool_backward, attention_pool_forward
from .softmax import log_softmax, log_softmax_backward, softmax, softmax_backward, softmax_forward

# A star import takes the kernels' twins only; attention_keep and the Output and Grads tuples are
# public too, re-exported by the `name as name` imports above.
__all__ = [
    "softmax", "softmax_forward", "softmax_backward", "log_softmax", "log_softmax_backward",
    "lstm_forward", "lstm_backward",
    "gru_forward", "gru_backward",
    "rnn_forward", "rnn_backward",
    "lstm_layers_forward", "lstm_layers_backward",
    "gru_layers_forward", "gru_layers_backward",
    "rnn_layers_forward", "rnn_layers_backward",
    "attention_forward", "attention_backward", "attention_scores",
    "additive_attention_forward", "additive_attention_backward",
    "attention_pool_forward", "attention_pool_backward",
]
