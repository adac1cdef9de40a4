// ops/recurrent.h: the entry points every recurrent cell family has (LSTM, GRU), filled in by
// the recurrent core for that cell (kernels/recurrent_forward.h, recurrent_backward.h).
//
// States are arrays of the cell's S state arrays, state 0 being h (the LSTM's S = 2: h, c; the
// GRU's S = 1). Weights come as the cell's Params: w_ih (G*H, D), w_hh (G*H, H) and bias (G*H)
// in the cell's G gate columns, and the packed panels wih_p, whh_p.
#pragma once

#include <cstdint>

#include "seqkern/ops/lowp.h"
#include "seqkern/shapes.h"

namespace seqkern {

// The weights every cell has, as the kernels see them (a cell's Params may add its own).
template <typename T>
struct RnnParams {
  const T* w_ih = nullptr;
  const T* w_hh = nullptr;
  const T* bias = nullptr;
  const T* wih_p = nullptr;
  const T* whh_p = nullptr;
  // Run every step on the fused tiles, which skip a cell's zero blocks, instead of the per-step
  // GEMM over [x | h] (which multiplies them): the bindings set it when x or h0 holds an
  // infinity, so that 0 * inf never makes a NaN the cell's math does not have.
  bool tiles_only = false;
  // Low-precision weights (float layers only, ops/lowp.h). wih_b, whh_b: the panels wih_p, whh_p
  // in bfloat16, streamed by the fused tiles in their place; the weights' values are exactly
  // those of w_ih and w_hh (bf16 numbers), so the results are the float kernels' bit for bit.
  // i8: the int8 form, which changes the arithmetic (ops/lowp.h): forward and step then run the
  // int8 kernels, and no cache is kept.
  const uint16_t* wih_b = nullptr;
  const uint16_t* whh_b = nullptr;
  const Int8Weights* i8 = nullptr;
  // Variational recurrent dropout: (B, H), multiplies h_{t-1} where it enters the recurrent
  // product, the same mask at every step (the states themselves, and the cell's own use of
  // h_{t-1}, are not masked); nullptr for none. Read by forward and backward (float weights, not
  // the step, the int8 form or the reset-before GRU: the bindings refuse those).
  const T* h_mask = nullptr;
};

template <typename T, typename Params>
struct RecurrentOps {
  // Fills wih_p (D*G*H values) and whh_p (G*H*H values) from w_ih and w_hh; either may be nullptr.
  void (*pack)(const RnnShape& s, const T* w_ih, const T* w_hh, T* wih_p, T* whh_p) = nullptr;
  // init[s] may be nullptr (zeros), lengths nullptr (all T); last[s] (B, H) the states after each
  // row's last step; gates (T, B, G*H) and saved[s] (T+1, B, H) form the cache (gates nullptr and
  // saved nullptr for none).
  void (*forward)(const RnnShape& s, const T* x, const Params& p, const T* const* init, const int64_t* lengths,
                  T* y, T* const* last, T* gates, T* const* saved) = nullptr;
  // One step (s.T ignored) for B rows; out[s] must not overlap x or prev[s'].
  void (*step)(const RnnShape& s, const T* x, const Params& p, const T* const* prev, T* const* out) = nullptr;
  // d_last[s] and dy may be nullptr (zeros); d_init[s] (B, H) out; dw_ih, dw_hh, dbias in the gate
  // columns; dparam the cell's own parameter gradient (nullptr when it has none).
  void (*backward)(const RnnShape& s, const T* x, const Params& p, const int64_t* lengths, const T* gates,
                   const T* const* saved, const T* dy, const T* const* d_last, T* dx, T* dw_ih, T* dw_hh, T* dbias,
                   T* const* d_init, T* dparam) = nullptr;
};

}  // namespace seqkern
