"""seqkern: fast, exact CPU kernels for recurrent cells (LSTM, GRU, RNN) and softmax attention, with a NumPy API.

The kernels are C++17, compiled once per instruction-set level (portable scalar, AVX2+FMA,
AVX-512) and chosen at import; ``SEQKERN_ISA`` caps the choice. ``seqkern.reference`` holds
plain-NumPy versions of every function with the same signatures: it is the specification.
"""

from __future__ import annotations

from ._runtime import (
    available_isas,
    cache_sizes,
    get_isa,
    get_num_threads,
    isa_info,
    max_num_threads,
    set_isa,
    set_num_threads,
    use_cache_sizes,
    use_isa,
)
from ._lstm import LSTMCache, LSTMGrads, LSTMOutput, LSTMWeights, lstm_backward, lstm_forward
from ._gru import GRUCache, GRUGrads, GRUOutput, GRUWeights, gru_backward, gru_forward
from ._rnn import RNNCache, RNNGrads, RNNOutput, RNNWeights, rnn_backward, rnn_forward
from ._layers import (
    LayersCache,
    LayersGrads,
    LayersOutput,
    gru_layers_backward,
    gru_layers_forward,
    lstm_layers_backward,
    lstm_layers_forward,
    recurrent_dropout_mask,
    rnn_layers_backward,
    rnn_layers_forward,
)
from ._attention import (
    KVCache,
    additive_attention_backward,
    additive_attention_forward,
    attention_backward,
    attention_forward,
    attention_scores,
    attention_pool_backward,
    attention_pool_forward,
)
from ._softmax import log_softmax, log_softmax_backward, softmax, softmax_backward, softmax_forward

__version__ = "0.1.0"

__all__ = [
    "KVCache",
    "attention_scores",
    "lstm_layers_forward",
    "lstm_layers_backward",
    "gru_layers_forward",
    "gru_layers_backward",
    "rnn_layers_forward",
    "rnn_layers_backward",
    "recurrent_dropout_mask",
    "LayersOutput",
    "LayersGrads",
    "LayersCache",
    "available_isas",
    "get_isa",
    "set_isa",
    "use_isa",
    "isa_info",
    "cache_sizes",
    "use_cache_sizes",
    "get_num_threads",
    "set_num_threads",
    "max_num_threads",
    "softmax",
    "softmax_forward",
    "softmax_backward",
    "log_softmax",
    "log_softmax_backward",
    "lstm_forward",
    "lstm_backward",
    "LSTMWeights",
    "LSTMCache",
    "LSTMOutput",
    "LSTMGrads",
    "gru_forward",
    "gru_backward",
    "GRUWeights",
    "GRUCache",
    "GRUOutput",
    "GRUGrads",
    "rnn_forward",
    "rnn_backward",
    "RNNWeights",
    "RNNCache",
    "RNNOutput",
    "RNNGrads",
    "attention_forward",
    "attention_backward",
    "additive_attention_forward",
    "additive_attention_backward",
    "attention_pool_forward",
    "attention_pool_backward",
]
