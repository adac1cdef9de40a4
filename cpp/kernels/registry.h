// registry.h: how a kernel file puts its entry points into this level's table (seqkern/kernels.h).
//
// Every kernel file `<name>.cpp` ends with its fill function, inside namespace SEQKERN_ISA_NS:
//   SEQKERN_KERNELS(softmax) {
//     SEQKERN_ENTRY(softmax, forward, softmax_forward);   // table.f32.softmax.forward = ...<float>, and f64
//   }
//   SEQKERN_KERNELS(cells) {
//     SEQKERN_CELL(lstm, rnn::LstmCell, forward);          // a recurrent cell's pack, forward, step
//   }
// CMake lists the kernel files' names (generated seqkern_kernel_files.inc) and registry.cpp calls
// every fill function when the level's table is first needed, that is once the level has been
// chosen for a CPU that runs it. Nothing compiled for a level runs when the extension loads: code
// built with -mavx512f may use AVX-512 anywhere, even in a static initialiser.
#pragma once

#include "seqkern/kernels.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

const KernelTable& kernel_table();

#define SEQKERN_KERNELS(name) void fill_##name(KernelTable& table)

#define SEQKERN_ENTRY(family, entry, fn) \
  table.f32.family.entry = &fn<float>;   \
  table.f64.family.entry = &fn<double>

#define SEQKERN_CELL(family, Cell, part)                          \
  rnn::register_##part<Cell<float>, float>(table.f32.family);    \
  rnn::register_##part<Cell<double>, double>(table.f64.family)

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
