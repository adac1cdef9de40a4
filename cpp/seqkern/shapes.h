// shapes.h: the small structs that kernels receive beside raw pointers, and the ISA enum.
//
// Kernels never see Python objects: bindings.cpp validates, allocates, and hands over pointers
// plus one of these. All sizes are int64_t element counts; every array is C-contiguous.
#pragma once

#include <cstdint>

namespace seqkern {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

// softmax over the middle axis of x viewed as (outer, n, inner).
struct SoftmaxShape {
  int64_t outer = 0;
  int64_t n = 0;
  int64_t inner = 0;
};

// LSTM over a time-major sequence: x (T, B, D), hidden size H, gate rows ordered i, f, g, o.
struct LstmShape {
  int64_t T = 0;
  int64_t B = 0;
  int64_t D = 0;
  int64_t H = 0;
};

}  // namespace seqkern
