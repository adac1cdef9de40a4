// registry.h: how a kernel file puts its entry points into this level's table (seqkern/kernels.h).
//
// At the end of a kernel file, inside namespace SEQKERN_ISA_NS:
//   SEQKERN_REGISTER(lstm, forward, lstm_forward)
// sets table.f32.lstm.forward = &lstm_forward<float> and the float64 twin while the extension
// loads, before any call can read the table (the table itself is built on first use, so the
// order in which files register does not matter).
#pragma once

#include "seqkern/kernels.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

KernelTable& mutable_kernel_table();
const KernelTable& kernel_table();

#define SEQKERN_REGISTER(family, entry, fn)                             \
  [[maybe_unused]] static const bool seqkern_registered_##family##_##entry = [] { \
    KernelTable& table = mutable_kernel_table();                        \
    table.f32.family.entry = &fn<float>;                                \
    table.f64.family.entry = &fn<double>;                               \
    return true;                                                        \
  }();

// A recurrent cell's family: its forward entries (pack, forward, step; in a file that includes
// kernels/recurrent_forward.h) or its backward (kernels/recurrent_backward.h), in cells.cpp:
//   SEQKERN_REGISTER_CELL(lstm, rnn::LstmCell, forward)
#define SEQKERN_REGISTER_CELL(family, Cell, part)                                      \
  [[maybe_unused]] static const bool seqkern_registered_##family##_##part = [] {       \
    KernelTable& table = mutable_kernel_table();                                       \
    rnn::register_##part<Cell<float>, float>(table.f32.family);                        \
    rnn::register_##part<Cell<double>, double>(table.f64.family);                      \
    return true;                                                                       \
  }();

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
