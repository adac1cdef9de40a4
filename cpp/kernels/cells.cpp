// cells.cpp: the kernels of every recurrent cell family (pack, forward, step, backward): the
// recurrent core (recurrent_forward.h, recurrent_backward.h) with each cell. A new cell is its
// header and two lines here.
#include "kernels/gru_cell.h"
#include "kernels/lstm_cell.h"
#include "kernels/recurrent_backward.h"
#include "kernels/recurrent_forward.h"
#include "kernels/registry.h"
#include "kernels/rnn_cell.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

SEQKERN_KERNELS(cells) {
  SEQKERN_CELL(lstm, rnn::LstmCell, forward);
  SEQKERN_CELL(lstm, rnn::LstmCell, backward);
  SEQKERN_CELL(gru, rnn::GruCell, forward);
  SEQKERN_CELL(gru, rnn::GruCell, backward);
  SEQKERN_CELL(rnn, rnn::ElmanCell, forward);
  SEQKERN_CELL(rnn, rnn::ElmanCell, backward);
}

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
