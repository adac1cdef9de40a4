// features.h: the CPU's sub-features of a level that some kernels use when present (dispatch.cpp
// detects them once; the kernels of every level may ask).
#pragma once

namespace seqkern {

struct CpuSubFeatures {
  bool avx512_vnni = false;  // vpdpbusd on 512-bit registers (the int8 products)
  bool avx512_bf16 = false;  // reported only: the bf16 weights widen in registers on every level
  bool avx_vnni = false;     // reported only
};
const CpuSubFeatures& cpu_sub_features();

// Whether the int8 kernels use AVX512-VNNI: the CPU has it and it is not switched off
// (SEQKERN_VNNI=0 in the environment at first use, or set_int8_vnni(false)).
bool int8_vnni();
// Switches it (on only takes effect where the CPU has it); returns the previous setting.
bool set_int8_vnni(bool on);

}  // namespace seqkern
