// lstm_cell.h: the LSTM as a cell of the recurrent core (recurrent_forward.h, recurrent_backward.h).
//
// Gate columns i, f, g, o (G = 4), states h and c (h first: state 0 is always the output).
// Forward, per unit, from the pre-activations a (bias and both products included):
//   i = σ(a_i + p_i⊙c_{t-1})   f = σ(a_f + p_f⊙c_{t-1})   g = tanh(a_g)
//   c_t = f⊙c_{t-1} + i⊙g      o = σ(a_o + p_o⊙c_t)       h_t = o⊙tanh(c_t)
// saving the post-activation gates i, f, g, o. Backward, with dh = dy_t + dh_t and dc carried
// from step t+1:
//   da_o = dh⊙tanh(c_t)⊙o(1-o)
//   dc  += dh⊙o⊙(1-tanh²(c_t)) + da_o⊙p_o
//   da_i = dc⊙g⊙i(1-i)   da_f = dc⊙c_{t-1}⊙f(1-f)   da_g = dc⊙i⊙(1-g²)
//   dc_{t-1} = dc⊙f + da_i⊙p_i + da_f⊙p_f
//   dp_i = Σ da_i⊙c_{t-1}   dp_f = Σ da_f⊙c_{t-1}   dp_o = Σ da_o⊙c_t
// (the core adds dbias = Σ da and dh_{t-1} = da·w_hh). Cost: 2·T·B·4H·(D+H) flops forward,
// about twice that backward, plus ~5 transcendental evaluations per B·H per step.
#pragma once

#include <cstdint>

#include "kernels/recurrent.h"
#include "kernels/simd.h"
#include "seqkern/ops/lstm.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace rnn {

template <typename T>
struct LstmCell : CellBase<T, LstmParams<T>, 4, 2, false> {
  using V = simd::Vec<T>;
  using Params = LstmParams<T>;

  static int64_t param_size(int64_t H) { return 3 * H; }  // the peepholes

  // acc: the pre-activations a_i, a_f, a_g, a_o; prev/out: h and c before and after the step;
  // gates: nullptr or where gate q's post-activation goes (gates + q*H). Returns h_t.
  template <typename Io>
  static V forward(const Params& p, int64_t H, int64_t u, const V* acc, const T* const* prev, T* const* out,
                   T* gates, const Io& io) {
    const V c_old = io.load(prev[1]);
    V ai = acc[0], af = acc[1], ao = acc[3];
    if (p.peephole) {
      ai = simd::fmadd(io.load(p.peephole + u), c_old, ai);
      af = simd::fmadd(io.load(p.peephole + H + u), c_old, af);
    }
    const V i = simd::sigmoid(ai), f = simd::sigmoid(af), g = simd::tanh(acc[2]);
    const V c = simd::fmadd(f, c_old, i * g);
    if (p.peephole) ao = simd::fmadd(io.load(p.peephole + 2 * H + u), c, ao);
    const V og = simd::sigmoid(ao);
    const V h = og * simd::tanh(c);
    io.store(c, out[1]);
    if (gates) {
      io.store(i, gates);
      io.store(f, gates + H);
      io.store(g, gates + 2 * H);
      io.store(og, gates + 3 * H);
    }
    return h;
  }

  // gates: the saved post-activations (gate q at gates + q*H); prev/cur: the states at steps t
  // and t+1 (the state before and after step t); dh: dL/dh_t; dstate[s], s >= 1: the carried
  // gradient of state s, from step t+1 in and for step t-1 out; da: gate q's pre-activation
  // gradient at da + q*H; dbias (at + q*H) and dparam (the peepholes' gradient, (3, H)) accumulate
  // when not nullptr.
  template <typename Io>
  static void backward(const Params& p, int64_t H, int64_t u, const T* gates, const T* const* prev,
                       const T* const* cur, V dh, T* const* dstate, T* da, T* dbias, T* dparam, const Io& io) {
    const V one = V::set1(T(1));
    const V i = io.load(gates), f = io.load(gates + H), g = io.load(gates + 2 * H), og = io.load(gates + 3 * H);
    const V cp = io.load(prev[1]), c = io.load(cur[1]);
    const T* peep = p.peephole;
    const V tc = simd::tanh(c);
    const V da_o = dh * tc * og * (one - og);
    V dcv = simd::fmadd(dh * og, one - tc * tc, io.load(dstate[1]));
    if (peep) dcv = simd::fmadd(da_o, io.load(peep + 2 * H + u), dcv);
    const V da_i = dcv * g * i * (one - i);
    const V da_f = dcv * cp * f * (one - f);
    const V da_g = dcv * i * (one - g * g);
    V dc_prev = dcv * f;
    if (peep) {
      dc_prev = simd::fmadd(da_i, io.load(peep + u), dc_prev);
      dc_prev = simd::fmadd(da_f, io.load(peep + H + u), dc_prev);
    }
    io.store(dc_prev, dstate[1]);
    const V d[4] = {da_i, da_f, da_g, da_o};
    for (int q = 0; q < 4; ++q) io.store(d[q], da + q * H);
    if (dbias) {
      for (int q = 0; q < 4; ++q) io.store(io.load(dbias + q * H) + d[q], dbias + q * H);
    }
    if (dparam && peep) {
      T* pv = dparam + u;
      io.store(simd::fmadd(da_i, cp, io.load(pv)), pv);
      io.store(simd::fmadd(da_f, cp, io.load(pv + H)), pv + H);
      io.store(simd::fmadd(da_o, c, io.load(pv + 2 * H)), pv + 2 * H);
    }
  }
};

}  // namespace rnn
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
