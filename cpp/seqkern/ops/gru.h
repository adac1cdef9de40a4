// ops/gru.h: the GRU families: reset after the product (kernels/gru_cell.h on the recurrent core,
// ops/recurrent.h), and reset before it (kernels/gru_reset_before.cpp, the same entry points).
#pragma once

#include "seqkern/ops/recurrent.h"

namespace seqkern {

// The weights of one GRU layer as the kernels see them: the column forms of PyTorch's w_ih (3H, D),
// w_hh (3H, H), b_ih and b_hh (3H), four gate columns r, z, n_x, n_h per unit:
//   w_ih (4H, D) = [W_ir; W_iz; W_in; 0]      w_hh (4H, H) = [W_hr; W_hz; 0; W_hn]
//   bias (4H)    = [b_ir + b_hr; b_iz + b_hz; b_in; b_hn]
// and their packed panels. One state, h; no dparam. The gradients come in the column forms too
// (the rows of the zero blocks carry nothing; the caller drops them).
// The reset-before family takes the same column forms; its panels are plain transposes,
// wih_p = W_ihᵀ (D, 3H) and whh_p = [W_hr; W_hz; W_hn]ᵀ (H, 3H), and its gradient of b_hn equals
// that of b_in (both enter n's pre-activation directly).
template <typename T>
using GruParams = RnnParams<T>;

template <typename T>
using GruOps = RecurrentOps<T, GruParams<T>>;

}  // namespace seqkern
