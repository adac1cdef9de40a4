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

// The weights of one LSTM layer as the kernels see them. w_ih (4H, D), w_hh (4H, H), bias (4H) and
// peephole (3, H, rows i, f, o) are in PyTorch's layout; bias and peephole may be nullptr.
// lstm_pack derives the gate-interleaved panels of lstm_common.h once: whh_p (the forward with few
// rows, the step) and wih_p (the step only).
template <typename T>
struct LstmParams {
  const T* w_ih = nullptr;
  const T* w_hh = nullptr;
  const T* bias = nullptr;
  const T* peephole = nullptr;
  const T* wih_p = nullptr;
  const T* whh_p = nullptr;
};

template <typename T>
struct Ops {
  // softmax.cpp. mask: nullptr or a dense uint8 array shaped like x (nonzero = keep).
  void (*softmax_forward)(const SoftmaxShape& s, const T* x, const uint8_t* mask, T* y) = nullptr;
  void (*softmax_backward)(const SoftmaxShape& s, const T* y, const T* dy, T* dx) = nullptr;

  // lstm_forward.cpp. lstm_pack fills wih_p (D*4H values) and whh_p (4H*H values); either may be nullptr.
  // h0, c0, lengths may be nullptr (zeros, all T). gates (T, B, 4H), hs and cs (T+1, B, H) form
  // the cache; all three nullptr for no cache.
  void (*lstm_pack)(const LstmShape& s, const T* w_ih, const T* w_hh, T* wih_p, T* whh_p) = nullptr;
  void (*lstm_forward)(const LstmShape& s, const T* x, const LstmParams<T>& p, const T* h0, const T* c0,
                       const int64_t* lengths, T* y, T* h_n, T* c_n, T* gates, T* hs, T* cs) = nullptr;
  // One step (s.T ignored) for B rows; h_out/c_out must not overlap x, h or c.
  void (*lstm_step)(const LstmShape& s, const T* x, const LstmParams<T>& p, const T* h, const T* c,
                    T* h_out, T* c_out) = nullptr;
  // lstm_backward.cpp. dy, dh_n, dc_n may be nullptr (zeros); dpeephole nullptr without peepholes.
  void (*lstm_backward)(const LstmShape& s, const T* x, const LstmParams<T>& p, const int64_t* lengths,
                        const T* gates, const T* hs, const T* cs, const T* dy, const T* dh_n, const T* dc_n,
                        T* dx, T* dw_ih, T* dw_hh, T* dbias, T* dh0, T* dc0, T* dpeephole) = nullptr;
  // matmul.cpp. C (M, N) = beta C + alpha op(A) op(B); threads 0 = the caller's limit;
  // packed_repeat > 0 packs B once and multiplies that many times (the pack-once path).
  void (*matmul)(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, const T* B,
                 T beta, T* C, int threads, int64_t packed_repeat) = nullptr;
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
