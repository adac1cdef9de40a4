// ops/matmul.h: the blocked GEMM behind every kernel, exposed for tests and benchmarks
// (cpp/kernels/matmul.cpp).
#pragma once

#include <cstdint>

namespace seqkern {

template <typename T>
struct MatmulOps {
  // C (M, N) = beta C + alpha op(A) op(B); threads 0 = the caller's limit; packed_repeat > 0
  // packs B once and multiplies that many times (the pack-once path).
  void (*run)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, const T* B,
              T beta, T* C, int threads, int64_t packed_repeat) = nullptr;
};

}  // namespace seqkern
