// ops/lstm.h: the LSTM family (kernels/lstm_cell.h on the recurrent core, ops/recurrent.h).
#pragma once

#include "seqkern/ops/recurrent.h"

namespace seqkern {

// One LSTM layer's weights as the kernels see them: w_ih (4H, D), w_hh (4H, H), bias (4H) and
// peephole (3, H, rows i, f, o) in PyTorch's layout (gate columns i, f, g, o); bias and peephole
// may be nullptr. wih_p and whh_p are the packed panels (kernels/recurrent.h): whh_p for the
// forward with few rows and the step, wih_p for the step. States: h, c; dparam: dpeephole.
template <typename T>
struct LstmParams : RnnParams<T> {
  const T* peephole = nullptr;
};

template <typename T>
using LstmOps = RecurrentOps<T, LstmParams<T>>;

}  // namespace seqkern
