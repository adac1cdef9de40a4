// additive_attention.cpp: additive (Bahdanau) attention, forward and backward.
//
// q (batch, Lq, Dq)  k (batch, Lk, Dk)  v (batch, Lk, Dv)  w_q (A, Dq)  w_k (A, Dk)  w_v (A)
//   qp = q w_qᵀ (batch, Lq, A)   kp = k w_kᵀ (batch, Lk, A)          two GEMMs, saved
//   t_ija = tanh(qp_ia + kp_ja)  s_ij = Σ_a w_v,a t_ija
//   s_ij = -inf where masked (bool keep mask false, or j >= kv_len[b])
//   a_ij = softmax_j(s_ij) = exp(s_ij - lse_i)    out_i = Σ_j a_ij v_j
//   A row that sees no key: out_i = 0, lse_i = +inf, zero gradients.
// Saved for backward: qp, kp, out, lse. The (batch, Lq, Lk, A) tensor of tanh values is never
// built: forward computes one A-wide row of t at a time, backward recomputes it.
// Backward, with D_i = dout_i · out_i:
//   da_ij = dout_i · v_j     ds_ij = a_ij (da_ij - D_i)     dv_j = Σ_i a_ij dout_i
//   dz_ija = ds_ij w_v,a (1 - t_ija²)   dqp_i = Σ_j dz_ij   dkp_j = Σ_i dz_ij   dw_v = Σ_ij ds_ij t_ij
//   dq = dqp w_q   dw_q = dqpᵀ q   dk = dkp w_k   dw_k = dkpᵀ k                 four GEMMs
// Threads: forward items are rows (problem, i); backward items are problems, each with its own
// rows of dqp, dkp, dv and its own partial dw_v, summed in problem order, so results do not
// depend on the thread count. The GEMMs are gemm::gemm_mt (thread-count independent).
// Cost: forward 2·batch·(Lq·Dq + Lk·Dk)·A for the projections plus batch·Lq·Lk·(2A + 2Dv) and
// batch·Lq·Lk·A tanh; backward about twice that.
#include <cmath>
#include <limits>

#include "kernels/attention_tile.h"
#include "kernels/gemm.h"
#include "kernels/registry.h"
#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

namespace {

using simd::axpy;
using simd::dot;
using simd::Vec;

// t = tanh(qp + kp) over A entries into `t`; returns w_v · t.
template <typename T>
T score(int64_t a, const T* qp, const T* kp, const T* w_v, T* t) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V acc = V::zero();
  for (int64_t c = 0; c < a; c += W) {
    const int cnt = static_cast<int>(a - c < W ? a - c : W);
    const V tv = simd::tanh(V::load_n(qp + c, cnt) + V::load_n(kp + c, cnt));
    tv.store_n(t + c, cnt);
    acc = simd::fmadd(V::load_n(w_v + c, cnt), tv, acc);
  }
  return simd::hsum(acc);
}

template <typename T>
bool sees(const AttnMask& m, int64_t b, int64_t i, int64_t j) {
  if (m.kv_len && j >= m.kv_len[b]) return false;
  if (m.keep && m.keep[m.keep_offset[b] + i * m.row_stride + j * m.col_stride] == 0) return false;
  return true;
}

}  // namespace

template <typename T>
void additive_attention_forward(const AdditiveAttnShape& s, const AttnMask& m, const T* q, const T* k,
                                const T* v, const T* w_q, const T* w_k, const T* w_v, T* qp, T* kp, T* out,
                                T* lse) {
  const int64_t rows = s.batch * s.lq;
  if (rows == 0) return;
  const int ntg = simd::threads_for(2 * s.batch * (s.lq * s.dq + s.lk * s.dk) * s.a, int64_t(1) << 16);
  gemm::gemm_mt<T>(false, true, rows, s.a, s.dq, T(1), q, s.dq, w_q, s.dq, T(0), qp, s.a, ntg);
  gemm::gemm_mt<T>(false, true, s.batch * s.lk, s.a, s.dk, T(1), k, s.dk, w_k, s.dk, T(0), kp, s.a, ntg);
  const T ninf = -std::numeric_limits<T>::infinity();
  const int nt = simd::threads_for(rows * (s.lk + 1) * (s.a + s.dv + 1), int64_t(1) << 16);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    simd::DenormalGuard guard;
    simd::Buffer<T> srow(s.lk);
    simd::Buffer<T> t(s.a);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t b = r / s.lq;
      const int64_t i = r % s.lq;
      T mx = ninf;
      for (int64_t j = 0; j < s.lk; ++j) {
        T x = ninf;
        if (sees<T>(m, b, i, j)) x = score(s.a, qp + r * s.a, kp + (b * s.lk + j) * s.a, w_v, t.data());
        srow[j] = x;
        mx = x > mx ? x : mx;
      }
      T* o = out + r * s.dv;
      for (int64_t c = 0; c < s.dv; ++c) o[c] = T(0);
      if (mx == ninf) {
        lse[r] = std::numeric_limits<T>::infinity();
        continue;
      }
      T l = T(0);
      for (int64_t j = 0; j < s.lk; ++j) {
        if (srow[j] == ninf) continue;
        const T p = std::exp(srow[j] - mx);
        l += p;
        axpy(s.dv, p, v + (b * s.lk + j) * s.dv, o);
      }
      const T inv = T(1) / l;
      for (int64_t c = 0; c < s.dv; ++c) o[c] *= inv;
      lse[r] = mx + std::log(l);
    }
  }
}

template <typename T>
void additive_attention_backward(const AdditiveAttnShape& s, const AttnMask& m, const T* q, const T* k,
                                 const T* v, const T* w_q, const T* w_k, const T* w_v, const T* qp,
                                 const T* kp, const T* out, const T* lse, const T* dout, T* dq, T* dk,
                                 T* dv, T* dw_q, T* dw_k, T* dw_v) {
  using V = Vec<T>;
  constexpr int W = V::W;
  simd::Buffer<T> dqp(s.batch * s.lq * s.a);
  simd::Buffer<T> dkp(s.batch * s.lk * s.a);
  simd::Buffer<T> dwv(s.batch * s.a);
  for (int64_t i = 0; i < s.batch * s.lq * s.a; ++i) dqp[i] = T(0);
  for (int64_t i = 0; i < s.batch * s.lk * s.a; ++i) dkp[i] = T(0);
  for (int64_t i = 0; i < s.batch * s.a; ++i) dwv[i] = T(0);
  for (int64_t i = 0; i < s.batch * s.lk * s.dv; ++i) dv[i] = T(0);
  const int nt = simd::threads_for(s.batch * (s.lq + 1) * (s.lk + 1) * (s.a + s.dv + 1), int64_t(1) << 16);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    simd::DenormalGuard guard;
    simd::Buffer<T> t(s.a);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < s.batch; ++b) {
      T* dwvb = dwv.data() + b * s.a;
      for (int64_t i = 0; i < s.lq; ++i) {
        const int64_t r = b * s.lq + i;
        const T* g = dout + r * s.dv;
        const T di = dot(s.dv, g, out + r * s.dv);
        const T l = lse[r];
        for (int64_t j = 0; j < s.lk; ++j) {
          if (!sees<T>(m, b, i, j)) continue;
          const int64_t rk = b * s.lk + j;
          const T sc = score(s.a, qp + r * s.a, kp + rk * s.a, w_v, t.data());
          const T p = std::exp(sc - l);
          if (p == T(0)) continue;
          const T ds = p * (dot(s.dv, g, v + rk * s.dv) - di);
          axpy(s.dv, p, g, dv + rk * s.dv);
          const V vds = V::set1(ds);
          T* dqr = dqp.data() + r * s.a;
          T* dkr = dkp.data() + rk * s.a;
          for (int64_t c = 0; c < s.a; c += W) {
            const int cnt = static_cast<int>(s.a - c < W ? s.a - c : W);
            const V tv = V::load_n(t.data() + c, cnt);
            const V dz = vds * V::load_n(w_v + c, cnt) * simd::fnmadd(tv, tv, V::set1(T(1)));
            (V::load_n(dqr + c, cnt) + dz).store_n(dqr + c, cnt);
            (V::load_n(dkr + c, cnt) + dz).store_n(dkr + c, cnt);
            simd::fmadd(vds, tv, V::load_n(dwvb + c, cnt)).store_n(dwvb + c, cnt);
          }
        }
      }
    }
  }
  for (int64_t c = 0; c < s.a; ++c) dw_v[c] = T(0);
  for (int64_t b = 0; b < s.batch; ++b) {
    for (int64_t c = 0; c < s.a; ++c) dw_v[c] += dwv[b * s.a + c];
  }
  const int64_t rq = s.batch * s.lq;
  const int64_t rk = s.batch * s.lk;
  const int ntg = simd::threads_for(2 * (rq * s.dq + rk * s.dk) * s.a, int64_t(1) << 16);
  gemm::gemm_mt<T>(false, false, rq, s.dq, s.a, T(1), dqp.data(), s.a, w_q, s.dq, T(0), dq, s.dq, ntg);
  gemm::gemm_mt<T>(true, false, s.a, s.dq, rq, T(1), dqp.data(), s.a, q, s.dq, T(0), dw_q, s.dq, ntg);
  gemm::gemm_mt<T>(false, false, rk, s.dk, s.a, T(1), dkp.data(), s.a, w_k, s.dk, T(0), dk, s.dk, ntg);
  gemm::gemm_mt<T>(true, false, s.a, s.dk, rk, T(1), dkp.data(), s.a, k, s.dk, T(0), dw_k, s.dk, ntg);
}

SEQKERN_KERNELS(additive_attention) {
  SEQKERN_ENTRY(additive, forward, additive_attention_forward);
  SEQKERN_ENTRY(additive, backward, additive_attention_backward);
}

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
