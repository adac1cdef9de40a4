// ops/softmax.h: the softmax family's entry points (cpp/kernels/softmax.cpp fills them in).
#pragma once

#include <cstdint>

#include "seqkern/shapes.h"

namespace seqkern {

template <typename T>
struct SoftmaxOps {
  // mask: nullptr or a dense uint8 array shaped like x (nonzero = keep).
  void (*forward)(const SoftmaxShape& s, const T* x, const uint8_t* mask, T* y) = nullptr;
  void (*backward)(const SoftmaxShape& s, const T* y, const T* dy, T* dx) = nullptr;
  // The log-softmax: the same shapes; its backward takes the log-softmax output.
  void (*log_forward)(const SoftmaxShape& s, const T* x, const uint8_t* mask, T* y) = nullptr;
  void (*log_backward)(const SoftmaxShape& s, const T* y, const T* dy, T* dx) = nullptr;
};

}  // namespace seqkern
