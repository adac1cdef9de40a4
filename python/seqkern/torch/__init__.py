"""seqkern.torch: the seqkern kernels as PyTorch operators and drop-in modules (``pip install 'seqkern[torch]'``).

- Operators ``torch.ops.seqkern.*`` (``lstm``, ``gru``, ``rnn``, ``attention``, ``additive_attention``,
  ``attention_pool`` and their ``*_backward``), registered with ``torch.library.custom_op`` with
  fake implementations and autograd formulas, so they work under ``torch.compile``.
- Modules :class:`LSTM` (plus ``peephole=True``), :class:`GRU` and :class:`RNN` with ``torch.nn``'s
  arguments, parameter names and state dicts; :class:`AttentionPool`.
- Functions :func:`scaled_dot_product_attention` (``torch.nn.functional``'s signature) and
  :func:`additive_attention`.

CPU tensors of float32 or float64 only. The ops pack the weights once per version of the
parameters (see :func:`clear_weight_cache` for the one case that needs a hand).
"""

from __future__ import annotations

try:
    import torch  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without torch
    raise ImportError("seqkern.torch needs PyTorch: pip install 'seqkern[torch]'") from e

from . import _ops as ops
from ._weights import CACHE_SIZE, clear_weight_cache, weight_cache_info
from .modules import GRU, LSTM, RNN, AttentionPool, additive_attention, scaled_dot_product_attention

__all__ = [
    "LSTM",
    "GRU",
    "RNN",
    "AttentionPool",
    "scaled_dot_product_attention",
    "additive_attention",
    "ops",
    "clear_weight_cache",
    "weight_cache_info",
    "CACHE_SIZE",
]
