// attention_pool.cpp: attention pooling over time-major LSTM outputs, forward and backward.
//
// h (T, B, H)  w (A, H)  bias (A)  w_s (A)  lengths (B) optional, each in [0, T]
//   u_tb = tanh(h_tb wᵀ + bias)  (T, B, A)      one GEMM over all T·B rows, saved
//   e_tb = u_tb · w_s
//   alpha_tb = softmax over t < lengths[b] of e_tb, 0 for t >= lengths[b]; all 0 when lengths[b] = 0
//   or when every valid e_tb is -inf (as the reference's softmax)
//   context_b = Σ_t alpha_tb h_tb   (B, H)
// Backward from dcontext (B, H):
//   dalpha_tb = dcontext_b · h_tb     de_tb = alpha_tb (dalpha_tb - Σ_t alpha_tb dalpha_tb)
//   dz_tb = de_tb w_s ⊙ (1 - u_tb²)   dw_s = Σ_tb de_tb u_tb   dbias = Σ_tb dz_tb
//   dh_tb = alpha_tb dcontext_b + dz_tb w      dw = dzᵀ h                   two GEMMs
// Numerics: the softmax subtracts the max over valid t. Reductions over t and b run in index
// order on one thread (or inside gemm_mt, thread-count independent).
// Cost: 2·T·B·A·H (forward GEMM) + 4·T·B·H; backward twice the GEMM work.
#include <cmath>
#include <limits>

#include "kernels/gemm.h"
#include "kernels/registry.h"
#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

using simd::axpy;
using simd::dot;
using simd::Vec;

template <typename T>
void attention_pool_forward(const AttnPoolShape& s, const int64_t* lengths, const T* h, const T* w,
                            const T* bias, const T* w_s, T* u, T* alpha, T* context) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const int64_t rows = s.t * s.b;
  for (int64_t i = 0; i < s.b * s.h; ++i) context[i] = T(0);
  if (rows == 0) return;
  const int nt = simd::threads_for(2 * rows * s.a * (s.h + 1), int64_t(1) << 16);
  gemm::gemm_mt<T>(false, true, rows, s.a, s.h, T(1), h, s.h, w, s.h, T(0), u, s.a, nt);
#pragma omp parallel for num_threads(nt) schedule(static) if (nt > 1)
  for (int64_t r = 0; r < rows; ++r) {
    simd::DenormalGuard guard;
    T* ur = u + r * s.a;
    for (int64_t c = 0; c < s.a; c += W) {
      const int cnt = static_cast<int>(s.a - c < W ? s.a - c : W);
      simd::tanh(V::load_n(ur + c, cnt) + V::load_n(bias + c, cnt)).store_n(ur + c, cnt);
    }
    alpha[r] = dot(s.a, ur, w_s);  // the score e_tb, turned into alpha below
  }
  const int ntb = simd::threads_for(rows * s.h, int64_t(1) << 15);
#pragma omp parallel for num_threads(ntb) schedule(static) if (ntb > 1)
  for (int64_t b = 0; b < s.b; ++b) {
    simd::DenormalGuard guard;
    const int64_t len = lengths ? lengths[b] : s.t;
    T mx = -std::numeric_limits<T>::infinity();
    for (int64_t t = 0; t < len; ++t) mx = alpha[t * s.b + b] > mx ? alpha[t * s.b + b] : mx;
    // Every valid score -inf (or none valid): shift by 0, so the row's alpha is all 0, not NaN.
    const T shift = mx == -std::numeric_limits<T>::infinity() ? T(0) : mx;
    T l = T(0);
    for (int64_t t = 0; t < len; ++t) {
      const T e = std::exp(alpha[t * s.b + b] - shift);
      alpha[t * s.b + b] = e;
      l += e;
    }
    const T inv = l == T(0) ? T(0) : T(1) / l;  // a NaN sum makes the whole row NaN
    for (int64_t t = 0; t < s.t; ++t) {
      const T a = t < len ? alpha[t * s.b + b] * inv : T(0);
      alpha[t * s.b + b] = a;
      if (t < len) axpy(s.h, a, h + (t * s.b + b) * s.h, context + b * s.h);
    }
  }
}

template <typename T>
void attention_pool_backward(const AttnPoolShape& s, const int64_t* lengths, const T* h, const T* w,
                             const T* w_s, const T* u, const T* alpha, const T* dcontext, T* dh, T* dw,
                             T* dbias, T* dw_s) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const int64_t rows = s.t * s.b;
  simd::Buffer<T> de(rows);
  simd::Buffer<T> dz(rows * s.a);
  const int ntb = simd::threads_for(rows * s.h, int64_t(1) << 15);
#pragma omp parallel for num_threads(ntb) schedule(static) if (ntb > 1)
  for (int64_t b = 0; b < s.b; ++b) {
    simd::DenormalGuard guard;
    const int64_t len = lengths ? lengths[b] : s.t;
    const T* g = dcontext + b * s.h;
    T c = T(0);
    for (int64_t t = 0; t < s.t; ++t) {
      const int64_t r = t * s.b + b;
      const T da = t < len ? dot(s.h, g, h + r * s.h) : T(0);
      de[r] = da;
      c += alpha[r] * da;
      T* d = dh + r * s.h;
      const V va = V::set1(alpha[r]);
      for (int64_t k = 0; k < s.h; k += W) {
        const int cnt = static_cast<int>(s.h - k < W ? s.h - k : W);
        (va * V::load_n(g + k, cnt)).store_n(d + k, cnt);
      }
    }
    for (int64_t t = 0; t < s.t; ++t) {
      const int64_t r = t * s.b + b;
      de[r] = alpha[r] * (de[r] - c);
      const V vde = V::set1(de[r]);
      const T* ur = u + r * s.a;
      T* dzr = dz.data() + r * s.a;
      for (int64_t k = 0; k < s.a; k += W) {
        const int cnt = static_cast<int>(s.a - k < W ? s.a - k : W);
        const V uv = V::load_n(ur + k, cnt);
        (vde * V::load_n(w_s + k, cnt) * simd::fnmadd(uv, uv, V::set1(T(1)))).store_n(dzr + k, cnt);
      }
    }
  }
  for (int64_t k = 0; k < s.a; ++k) {
    dw_s[k] = T(0);
    dbias[k] = T(0);
  }
  for (int64_t r = 0; r < rows; ++r) {
    axpy(s.a, de[r], u + r * s.a, dw_s);
    axpy(s.a, T(1), dz.data() + r * s.a, dbias);
  }
  const int nt = simd::threads_for(4 * rows * s.a * (s.h + 1), int64_t(1) << 16);
  gemm::gemm_mt<T>(true, false, s.a, s.h, rows, T(1), dz.data(), s.a, h, s.h, T(0), dw, s.h, nt);
  gemm::gemm_mt<T>(false, false, rows, s.h, s.a, T(1), dz.data(), s.a, w, s.h, T(1), dh, s.h, nt);
}

SEQKERN_KERNELS(attention_pool) {
  SEQKERN_ENTRY(pool, forward, attention_pool_forward);
  SEQKERN_ENTRY(pool, backward, attention_pool_backward);
}

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
