// gemm.h: dense matrix multiply used inside the kernels, compiled once per ISA level.
//
//   C (M x N, row stride ldc) = beta * C + alpha * op(A) * op(B)
//   op(A) is M x K: A[m*lda + k], or with trans_a, A[k*lda + m].
//   op(B) is K x N: B[k*ldb + n], or with trans_b, B[n*ldb + k].
// beta == 0 overwrites C without reading it. Accumulation is in T, over k in increasing order
// for every element, whatever the blocking or thread split, so results are bitwise identical
// for any thread count.
// Cost: 2*M*N*K flops.
#pragma once

#include <cstdint>

#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace gemm {

namespace detail {

template <typename T>
void scale_rows(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  using V = simd::Vec<T>;
  for (int64_t m = 0; m < M; ++m) {
    T* c = C + m * ldc;
    if (beta == T(0)) {
      for (int64_t n = 0; n < N; ++n) c[n] = T(0);
    } else if (beta != T(1)) {
      for (int64_t n = 0; n < N; n += V::W) {
        const int cnt = static_cast<int>(N - n < V::W ? N - n : V::W);
        (V::load_n(c + n, cnt) * V::set1(beta)).store_n(c + n, cnt);
      }
    }
  }
}

}  // namespace detail

// Single-threaded, on the calling thread.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  using V = simd::Vec<T>;
  if (M <= 0 || N <= 0) return;
  detail::scale_rows(M, N, beta, C, ldc);
  if (K <= 0 || alpha == T(0)) return;
  for (int64_t m = 0; m < M; ++m) {
    T* c = C + m * ldc;
    if (!trans_b) {
      for (int64_t k = 0; k < K; ++k) {
        const V a = V::set1(alpha * (trans_a ? A[k * lda + m] : A[m * lda + k]));
        const T* b = B + k * ldb;
        for (int64_t n = 0; n < N; n += V::W) {
          const int cnt = static_cast<int>(N - n < V::W ? N - n : V::W);
          simd::fmadd(a, V::load_n(b + n, cnt), V::load_n(c + n, cnt)).store_n(c + n, cnt);
        }
      }
    } else {
      for (int64_t n = 0; n < N; ++n) {
        const T* b = B + n * ldb;
        T acc = T(0);
        for (int64_t k = 0; k < K; ++k) acc += (trans_a ? A[k * lda + m] : A[m * lda + k]) * b[k];
        c[n] += alpha * acc;
      }
    }
  }
}

// Spread over up to `nthreads` OpenMP threads by row blocks of C; each row is computed by one
// thread exactly as gemm() computes it, so the thread count never changes the result.
template <typename T>
void gemm_mt(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
             int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, int nthreads) {
  if (M <= 0 || N <= 0) return;
  const int64_t rows_per_block = 16;
  const int64_t blocks = (M + rows_per_block - 1) / rows_per_block;
#pragma omp parallel for num_threads(nthreads) schedule(static) if (nthreads > 1 && blocks > 1)
  for (int64_t blk = 0; blk < blocks; ++blk) {
    simd::DenormalGuard guard;
    const int64_t m0 = blk * rows_per_block;
    const int64_t mb = M - m0 < rows_per_block ? M - m0 : rows_per_block;
    const T* a = trans_a ? A + m0 : A + m0 * lda;
    gemm<T>(trans_a, trans_b, mb, N, K, alpha, a, lda, B, ldb, beta, C + m0 * ldc, ldc);
  }
}

}  // namespace gemm
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
