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

  // attention_forward.cpp / attention_backward.cpp. lse (batch, lq): per-row log-sum-exp of the
  // scaled, masked scores in base 2 (natural log-sum-exp · log2 e); +inf marks a row that sees
  // no key.
  void (*attention_forward)(const AttnShape& s, const AttnMask& m, const T* q, const T* k, const T* v,
                            T* out, T* lse) = nullptr;
  void (*attention_backward)(const AttnShape& s, const AttnMask& m, const T* q, const T* k, const T* v,
                             const T* out, const T* lse, const T* dout, T* dq, T* dk, T* dv) = nullptr;
  // additive_attention.cpp. qp (batch, lq, a) = q w_qᵀ and kp (batch, lk, a) = k w_kᵀ are saved.
  void (*additive_attention_forward)(const AdditiveAttnShape& s, const AttnMask& m, const T* q, const T* k,
                                     const T* v, const T* w_q, const T* w_k, const T* w_v, T* qp, T* kp,
                                     T* out, T* lse) = nullptr;
  void (*additive_attention_backward)(const AdditiveAttnShape& s, const AttnMask& m, const T* q, const T* k,
                                      const T* v, const T* w_q, const T* w_k, const T* w_v, const T* qp,
                                      const T* kp, const T* out, const T* lse, const T* dout, T* dq, T* dk,
                                      T* dv, T* dw_q, T* dw_k, T* dw_v) = nullptr;
  // attention_pool.cpp. lengths: nullptr or b entries in [0, t]. u (t, b, a) is saved.
  void (*attention_pool_forward)(const AttnPoolShape& s, const int64_t* lengths, const T* h, const T* w,
                                 const T* bias, const T* w_s, T* u, T* alpha, T* context) = nullptr;
  void (*attention_pool_backward)(const AttnPoolShape& s, const int64_t* lengths, const T* h, const T* w,
                                  const T* w_s, const T* u, const T* alpha, const T* dcontext, T* dh, T* dw,
                                  T* dbias, T* dw_s) = nullptr;
};

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
