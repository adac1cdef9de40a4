// gru_cell.h: the GRU (PyTorch's math, reset after the recurrent product) as a cell of the
// recurrent core (recurrent_forward.h, recurrent_backward.h; lstm_cell.h lists what a cell provides).
//
// Four gate columns per unit, r, z, n_x, n_h, fed by the column forms of the weights
// (ops/gru.h): a_r and a_z sum both products and both biases, a_nx = x·W_inᵀ + b_in and
// a_nh = h·W_hnᵀ + b_hn stay apart, because the reset gate multiplies only the latter:
//   r = σ(a_r)   z = σ(a_z)   n = tanh(a_nx + r⊙a_nh)   h_t = (1 - z)⊙n + z⊙h_{t-1}
// saving r, z, n and a_nh. One state, h. Backward, with dh = dy_t + dh_t:
//   da_n = dh⊙(1-z)⊙(1-n²)   da_nx = da_n   da_nh = da_n⊙r
//   da_r = da_n⊙a_nh⊙r(1-r)   da_z = dh⊙(h_{t-1} - n)⊙z(1-z)
//   dh_{t-1} = dh⊙z + [da_r | da_z | da_nx | da_nh]·w_hh (the core adds the product)
// Cost: 2·T·B·4H·(D+H) flops forward (a quarter of them on the column forms' zero blocks), about
// twice that backward, plus 3 transcendental evaluations per B·H per step.
#pragma once

#include <cstdint>

#include "kernels/recurrent.h"
#include "kernels/simd.h"
#include "seqkern/ops/gru.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace rnn {

template <typename T>
struct GruCell : CellBase<T, GruParams<T>, 4, 1, true> {
  using V = simd::Vec<T>;
  static constexpr int kInputColumns = 3;                      // r, z, n_x
  static constexpr bool reads_h(int q) { return q != 2; }      // r, z, n_h

  template <typename Io>
  static V forward(const GruParams<T>&, int64_t H, int64_t, const V* acc, const T* const* prev, T* const*, T* gates,
                   const Io& io) {
    const V one = V::set1(T(1));
    const V r = simd::sigmoid(acc[0]), z = simd::sigmoid(acc[1]);
    const V n = simd::tanh(simd::fmadd(r, acc[3], acc[2]));
    const V h = simd::fmadd(z, io.load(prev[0]), (one - z) * n);
    if (gates) {
      io.store(r, gates);
      io.store(z, gates + H);
      io.store(n, gates + 2 * H);
      io.store(acc[3], gates + 3 * H);
    }
    return h;
  }

  template <typename Io>
  static void backward(const GruParams<T>&, int64_t H, int64_t, const T* gates, const T* const* prev, const T* const*,
                       V dh, T* const* dstate, T* da, T* dbias, T*, const Io& io) {
    const V one = V::set1(T(1));
    const V r = io.load(gates), z = io.load(gates + H), n = io.load(gates + 2 * H), anh = io.load(gates + 3 * H);
    const V hp = io.load(prev[0]);
    const V da_n = dh * (one - z) * (one - n * n);
    const V da_nh = da_n * r;
    const V da_r = da_n * anh * r * (one - r);
    const V da_z = dh * (hp - n) * z * (one - z);
    io.store(dh * z, dstate[0]);
    const V d[4] = {da_r, da_z, da_n, da_nh};
    for (int q = 0; q < 4; ++q) io.store(d[q], da + q * H);
    if (dbias) {
      for (int q = 0; q < 4; ++q) io.store(io.load(dbias + q * H) + d[q], dbias + q * H);
    }
  }
};

}  // namespace rnn
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
