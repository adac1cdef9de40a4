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
void attention_forward(const AttnShape& s, const AttnMask& m, const T* q, const T* k, const T* v, T* out,
                       T* lse);
template <typename T>
void attention_backward(const AttnShape& s, const AttnMask& m, const T* q, const T* k, const T* v,
                        const T* out, const T* lse, const T* dout, T* dq, T* dk, T* dv);
template <typename T>
void additive_attention_forward(const AdditiveAttnShape& s, const AttnMask& m, const T* q, const T* k,
                                const T* v, const T* w_q, const T* w_k, const T* w_v, T* qp, T* kp, T* out,
                                T* lse);
template <typename T>
void additive_attention_backward(const AdditiveAttnShape& s, const AttnMask& m, const T* q, const T* k,
                                 const T* v, const T* w_q, const T* w_k, const T* w_v, const T* qp,
                                 const T* kp, const T* out, const T* lse, const T* dout, T* dq, T* dk,
                                 T* dv, T* dw_q, T* dw_k, T* dw_v);
template <typename T>
void attention_pool_forward(const AttnPoolShape& s, const int64_t* lengths, const T* h, const T* w,
                            const T* bias, const T* w_s, T* u, T* alpha, T* context);
template <typename T>
void attention_pool_backward(const AttnPoolShape& s, const int64_t* lengths, const T* h, const T* w,
                             const T* w_s, const T* u, const T* alpha, const T* dcontext, T* dh, T* dw,
                             T* dbias, T* dw_s);

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
