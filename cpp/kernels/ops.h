// ops.h: declarations of every kernel inside the per-ISA namespace, for table.cpp.
// Each kernel file defines and explicitly instantiates its templates for float and double.
#pragma once

#include <cstdint>

#include "seqkern/kernels.h"
#include "seqkern/shapes.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

const KernelTable& kernel_table();

template <typename T>
void softmax_forward(const SoftmaxShape& s, const T* x, const uint8_t* mask, T* y);
template <typename T>
void softmax_backward(const SoftmaxShape& s, const T* y, const T* dy, T* dx);
template <typename T>
void matmul(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, const T* B,
            T beta, T* C, int threads, int64_t packed_repeat);

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
