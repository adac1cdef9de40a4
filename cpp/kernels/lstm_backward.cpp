// lstm_backward.cpp: the LSTM's exact backward (BPTT) from lstm_forward's cache: the recurrent
// core (recurrent_backward.h) with the LSTM cell (lstm_cell.h, which spells the gradients).
//
// Saved: gates i, f, g, o (T, B, 4H), hs and cs (T+1, B, H); tanh(c_t) is recomputed.
// Outputs dx, dw_ih, dw_hh, dbias (4H), dh0, dc0 and dpeephole (3, H, nullptr without peepholes).
#include "kernels/lstm_cell.h"
#include "kernels/recurrent_backward.h"
#include "kernels/registry.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

template <typename T>
void lstm_backward(const LstmShape& s, const T* x, const LstmParams<T>& p, const int64_t* lengths,
                   const T* gates, const T* hs, const T* cs, const T* dy, const T* dh_n, const T* dc_n, T* dx,
                   T* dw_ih, T* dw_hh, T* dbias, T* dh0, T* dc0, T* dpeephole) {
  const T* saved[2] = {hs, cs};
  const T* d_last[2] = {dh_n, dc_n};
  T* d_init[2] = {dh0, dc0};
  rnn::rnn_backward<rnn::LstmCell<T>>(s.T, s.B, s.D, s.H, x, p, lengths, gates, saved, dy, d_last, dx, dw_ih, dw_hh,
                                      dbias, d_init, dpeephole);
}

SEQKERN_REGISTER(lstm, backward, lstm_backward)

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
