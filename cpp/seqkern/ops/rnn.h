// ops/rnn.h: the plain (Elman) RNN family, PyTorch's nn.RNN math (kernels/rnn_cell.h on the
// recurrent core, ops/recurrent.h).
#pragma once

#include "seqkern/ops/recurrent.h"

namespace seqkern {

// One RNN layer's weights as the kernels see them: w_ih (H, D), w_hh (H, H), bias (H) = b_ih + b_hh
// or nullptr, one gate column per unit, and the packed panels. One state, h; no dparam.
// relu: h_t = max(a, 0) instead of tanh(a).
template <typename T>
struct ElmanParams : RnnParams<T> {
  bool relu = false;
};

template <typename T>
using RnnOps = RecurrentOps<T, ElmanParams<T>>;

}  // namespace seqkern
