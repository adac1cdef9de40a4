// registry.cpp: this level's table of kernel entry points, filled in by every kernel file's fill
// function (registry.h) on first use.
#include "kernels/registry.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

#define SEQKERN_FILL(name) void fill_##name(KernelTable& table);
#include "seqkern_kernel_files.inc"
#undef SEQKERN_FILL

const KernelTable& kernel_table() {
  static const KernelTable table = [] {
    KernelTable t;
#define SEQKERN_FILL(name) fill_##name(t);
#include "seqkern_kernel_files.inc"
#undef SEQKERN_FILL
    return t;
  }();
  return table;
}

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
