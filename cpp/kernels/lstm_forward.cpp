// lstm_forward.cpp: the LSTM's forward over a full sequence, its streaming step and its weight
// packing: the recurrent core (recurrent_forward.h) with the LSTM cell (lstm_cell.h).
//
// x (T, B, D)  w_ih (4H, D)  w_hh (4H, H)  bias (4H)  peephole (3, H)  h0, c0 (B, H);
// gate rows ordered i, f, g, o; peephole rows i, f, o (diagonal). Saves for lstm_backward (when
// asked): the post-activation gates (T, B, 4H, order i, f, g, o) and the states hs, cs
// (T+1, B, H) with hs[0] = h0, hs[t+1] = h after step t.
// Cost: 2·T·B·4H·(D+H) flops, plus ~5 transcendental evaluations per B·H per step.
#include "kernels/lstm_cell.h"
#include "kernels/recurrent_forward.h"
#include "kernels/registry.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

template <typename T>
void lstm_pack(const LstmShape& s, const T* w_ih, const T* w_hh, T* wih_p, T* whh_p) {
  rnn::rnn_pack<4>(s.D, s.H, w_ih, w_hh, wih_p, whh_p);
}

template <typename T>
void lstm_forward(const LstmShape& s, const T* x, const LstmParams<T>& p, const T* h0, const T* c0,
                  const int64_t* lengths, T* y, T* h_n, T* c_n, T* gates, T* hs, T* cs) {
  const T* init[2] = {h0, c0};
  T* last[2] = {h_n, c_n};
  T* saved[2] = {hs, cs};
  rnn::rnn_forward<rnn::LstmCell<T>>(s.T, s.B, s.D, s.H, x, p, init, lengths, y, last, gates, hs ? saved : nullptr);
}

template <typename T>
void lstm_step(const LstmShape& s, const T* x, const LstmParams<T>& p, const T* h, const T* c, T* h_out,
               T* c_out) {
  const T* prev[2] = {h, c};
  T* out[2] = {h_out, c_out};
  rnn::rnn_step<rnn::LstmCell<T>>(s.B, s.D, s.H, x, p, prev, out);
}

SEQKERN_REGISTER(lstm, pack, lstm_pack)
SEQKERN_REGISTER(lstm, forward, lstm_forward)
SEQKERN_REGISTER(lstm, step, lstm_step)

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
