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

template <typename T>
void lstm_pack(const LstmShape& s, const T* w_ih, const T* w_hh, T* wih_p, T* whh_p);
template <typename T>
void lstm_forward(const LstmShape& s, const T* x, const LstmParams<T>& p, const T* h0, const T* c0,
                  const int64_t* lengths, T* y, T* h_n, T* c_n, T* gates, T* hs, T* cs);
template <typename T>
void lstm_step(const LstmShape& s, const T* x, const LstmParams<T>& p, const T* h, const T* c, T* h_out,
               T* c_out);
template <typename T>
void lstm_backward(const LstmShape& s, const T* x, const LstmParams<T>& p, const int64_t* lengths,
                   const T* gates, const T* hs, const T* cs, const T* dy, const T* dh_n, const T* dc_n, T* dx,
                   T* dw_ih, T* dw_hh, T* dbias, T* dh0, T* dc0, T* dpeephole);

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
