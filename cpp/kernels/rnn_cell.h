// rnn_cell.h: the plain (Elman) RNN, PyTorch's nn.RNN math, as a cell of the recurrent core
// (recurrent_forward.h, recurrent_backward.h; lstm_cell.h lists what a cell provides).
//
// One gate column per unit: a = x·W_ihᵀ + h_{t-1}·W_hhᵀ + bias, h_t = tanh(a) or relu(a), saving
// h_t as the gate. Backward, with dh = dy_t + dh_t:
//   da = dh⊙(1 - h_t²) (tanh) or dh where h_t ≠ 0 (relu: a > 0, and NaN passes as in PyTorch)
//   dh_{t-1} = da·W_hh (the core's product)
// Cost: 2·T·B·H·(D+H) flops forward, about twice that backward, one tanh per B·H per step.
#pragma once

#include <cstdint>

#include "kernels/recurrent.h"
#include "kernels/simd.h"
#include "seqkern/ops/rnn.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace rnn {

template <typename T>
struct ElmanCell : CellBase<T, ElmanParams<T>, 1, 1, false> {
  using V = simd::Vec<T>;

  template <typename Io>
  static V forward(const ElmanParams<T>& p, int64_t, int64_t, const V* acc, const T* const*, T* const*, T* gates,
                   const Io& io) {
    const V zero = V::zero();
    // relu by comparison, so that a NaN pre-activation stays NaN on every level.
    const V h = p.relu ? simd::select(simd::cmp_lt(acc[0], zero), zero, acc[0]) : simd::tanh(acc[0]);
    if (gates) io.store(h, gates);
    return h;
  }

  template <typename Io>
  static void backward(const ElmanParams<T>& p, int64_t, int64_t, const T* gates, const T* const*, const T* const*,
                       V dh, T* const*, T* da, T* dbias, T*, const Io& io) {
    const V zero = V::zero();
    const V h = io.load(gates);
    const V d = p.relu ? simd::select(simd::cmp_eq(h, zero), zero, dh) : dh * (V::set1(T(1)) - h * h);
    io.store(d, da);
    if (dbias) io.store(io.load(dbias) + d, dbias);
  }
};

}  // namespace rnn
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
