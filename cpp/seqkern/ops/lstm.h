// ops/lstm.h: the LSTM family's entry points (cpp/kernels/lstm_forward.cpp, lstm_backward.cpp).
#pragma once

#include <cstdint>

#include "seqkern/shapes.h"

namespace seqkern {

// The weights of one LSTM layer as the kernels see them. w_ih (4H, D), w_hh (4H, H), bias (4H) and
// peephole (3, H, rows i, f, o) are in PyTorch's layout; bias and peephole may be nullptr.
// pack derives the gate-interleaved panels of kernels/recurrent.h once: whh_p (the forward with few
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
struct LstmOps {
  // pack fills wih_p (D*4H values) and whh_p (4H*H values); either may be nullptr.
  void (*pack)(const LstmShape& s, const T* w_ih, const T* w_hh, T* wih_p, T* whh_p) = nullptr;
  // h0, c0, lengths may be nullptr (zeros, all T). gates (T, B, 4H), hs and cs (T+1, B, H) form
  // the cache; all three nullptr for no cache.
  void (*forward)(const LstmShape& s, const T* x, const LstmParams<T>& p, const T* h0, const T* c0,
                  const int64_t* lengths, T* y, T* h_n, T* c_n, T* gates, T* hs, T* cs) = nullptr;
  // One step (s.T ignored) for B rows; h_out/c_out must not overlap x, h or c.
  void (*step)(const LstmShape& s, const T* x, const LstmParams<T>& p, const T* h, const T* c, T* h_out,
               T* c_out) = nullptr;
  // dy, dh_n, dc_n may be nullptr (zeros); dpeephole nullptr without peepholes.
  void (*backward)(const LstmShape& s, const T* x, const LstmParams<T>& p, const int64_t* lengths,
                   const T* gates, const T* hs, const T* cs, const T* dy, const T* dh_n, const T* dc_n, T* dx,
                   T* dw_ih, T* dw_hh, T* dbias, T* dh0, T* dc0, T* dpeephole) = nullptr;
};

}  // namespace seqkern
