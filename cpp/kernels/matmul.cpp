// matmul.cpp: C = beta C + alpha op(A) op(B) through gemm.h, for tests and benchmarks of the
// GEMM itself.
//
// A (M, K) or with trans_a (K, M); B (K, N) or with trans_b (N, K); C (M, N); all C-contiguous.
// beta == 0 never reads C. threads: the OpenMP team size (0: the caller's limit).
// packed_repeat > 0 packs op(B) once (PackedB) and runs gemm_packed that many times, as for a
// weight reused across steps; C is restored between runs so every run computes the same thing,
// and the result is the same bits as the plain path.
// Numerics and cost: see gemm.h (one fixed-order FMA chain per element; 2*M*N*K flops).
#include "kernels/gemm.h"
#include "kernels/registry.h"
#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

template <typename T>
void matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, const T* B,
            T beta, T* C, int threads, int64_t packed_repeat) {
  const int64_t lda = trans_a ? M : K;
  const int64_t ldb = trans_b ? K : N;
  const int nt = threads > 0 ? threads : simd::threads_for(1, 0);
  if (packed_repeat <= 0) {
    gemm::gemm_mt<T>(trans_a, trans_b, M, N, K, alpha, A, lda, B, ldb, beta, C, N, nt);
    return;
  }
  const gemm::PackedB<T> packed(trans_b, K, N, B, ldb);
  simd::Buffer<T> c0;
  const bool keep = beta != T(0) && packed_repeat > 1 && M * N > 0;
  if (keep) {
    c0.reset(M * N);
    for (int64_t i = 0; i < M * N; ++i) c0[i] = C[i];
  }
  for (int64_t r = 0; r < packed_repeat; ++r) {
    if (keep && r > 0) {
      for (int64_t i = 0; i < M * N; ++i) C[i] = c0[i];
    }
    gemm::gemm_packed_mt<T>(trans_a, M, alpha, A, lda, packed, beta, C, N, nt);
  }
}

SEQKERN_KERNELS(matmul) {
  SEQKERN_ENTRY(matmul, run, matmul);
}

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
