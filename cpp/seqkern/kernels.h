// kernels.h: the table of kernel entry points, one per instruction-set level.
//
// Each level (scalar, avx2, avx512) compiles every file in cpp/kernels/ into its own namespace
// and exposes `const KernelTable& seqkern::<level>::kernel_table()`. dispatch.cpp picks one.
// Entries are plain function pointers taking raw pointers and a shape struct; inputs first,
// then saved state, then outputs (non-const).
#pragma once

#include <cstdint>

#include "seqkern/shapes.h"

namespace seqkern {

template <typename T>
struct Ops {
  // softmax.cpp. mask: nullptr or a dense uint8 array shaped like x (nonzero = keep).
  void (*softmax_forward)(const SoftmaxShape& s, const T* x, const uint8_t* mask, T* y) = nullptr;
  void (*softmax_backward)(const SoftmaxShape& s, const T* y, const T* dy, T* dx) = nullptr;
  // matmul.cpp. C (M, N) = beta C + alpha op(A) op(B); threads 0 = the caller's limit;
  // packed_repeat > 0 packs B once and multiplies that many times (the pack-once path).
  void (*matmul)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, const T* B,
                 T beta, T* C, int threads, int64_t packed_repeat) = nullptr;
};

// Threads a kernel may use when called from this thread: OpenMP's max threads, or 1 in a child
// process forked after the parent ran OpenMP threads (GNU OpenMP's pool does not survive fork;
// using it there would hang). Defined in dispatch.cpp, outside the per-ISA code.
int max_threads();

struct KernelTable {
  Ops<float> f32;
  Ops<double> f64;

  template <typename T>
  const Ops<T>& ops() const;
};

template <>
inline const Ops<float>& KernelTable::ops<float>() const { return f32; }
template <>
inline const Ops<double>& KernelTable::ops<double>() const { return f64; }

}  // namespace seqkern
