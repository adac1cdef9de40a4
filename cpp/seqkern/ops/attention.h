// ops/attention.h: the attention families' entry points: scaled dot-product
// (cpp/kernels/attention_forward.cpp, attention_backward.cpp), additive
// (additive_attention.cpp) and attention pooling (attention_pool.cpp).
#pragma once

#include <cstdint>

#include "seqkern/shapes.h"

namespace seqkern {

template <typename T>
struct AttentionOps {
  // lse (batch, lq): per-row log-sum-exp of the scaled, masked scores in base 2 (natural
  // log-sum-exp · log2 e); +inf marks a row that sees no key.
  void (*forward)(const AttnShape& s, const AttnMask& m, const T* q, const T* k, const T* v, T* out,
                  T* lse) = nullptr;
  void (*backward)(const AttnShape& s, const AttnMask& m, const T* q, const T* k, const T* v, const T* out,
                   const T* lse, const T* dout, T* dq, T* dk, T* dv) = nullptr;
  // The (batch, lq, lk) score matrix the forward never builds, at one stage: 0 scale·q·kᵀ
  // (soft-capped with a softcap), 1 plus the bias and -inf where masked, 2 the softmax
  // weights from forward's lse (0 where masked and on rows that see no key).
  void (*scores)(const AttnShape& s, const AttnMask& m, const T* q, const T* k, const T* lse, int stage,
                 T* out) = nullptr;
};

template <typename T>
struct AdditiveOps {
  // qp (batch, lq, a) = q w_qᵀ and kp (batch, lk, a) = k w_kᵀ are saved.
  void (*forward)(const AdditiveAttnShape& s, const AttnMask& m, const T* q, const T* k, const T* v,
                  const T* w_q, const T* w_k, const T* w_v, T* qp, T* kp, T* out, T* lse) = nullptr;
  void (*backward)(const AdditiveAttnShape& s, const AttnMask& m, const T* q, const T* k, const T* v,
                   const T* w_q, const T* w_k, const T* w_v, const T* qp, const T* kp, const T* out,
                   const T* lse, const T* dout, T* dq, T* dk, T* dv, T* dw_q, T* dw_k, T* dw_v) = nullptr;
};

template <typename T>
struct PoolOps {
  // lengths: nullptr or b entries in [0, t]. u (t, b, a) is saved.
  void (*forward)(const AttnPoolShape& s, const int64_t* lengths, const T* h, const T* w, const T* bias,
                  const T* w_s, T* u, T* alpha, T* context) = nullptr;
  void (*backward)(const AttnPoolShape& s, const int64_t* lengths, const T* h, const T* w, const T* w_s,
                   const T* u, const T* alpha, const T* dcontext, T* dh, T* dw, T* dbias, T* dw_s) = nullptr;
};

}  // namespace seqkern
