// registry.cpp: this level's table of kernel entry points, filled in by the kernel files
// (registry.h).
#include "kernels/registry.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

KernelTable& mutable_kernel_table() {
  static KernelTable table;
  return table;
}

const KernelTable& kernel_table() { return mutable_kernel_table(); }

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
