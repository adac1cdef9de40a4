// lstm_common.h: the packed weight layout and register-tile sizes shared by the LSTM kernels.
//
// Hidden units are grouped in blocks of kUnits<T> = 64 bytes of T (16 floats, 8 doubles), the
// same for every ISA level so packed weights work at any level. Block j covers units
// [j*U, j*U + w) with w = min(U, H - j*U). Threads own whole blocks.
// Forward panels (wih_p with K = D, whh_p with K = H): block j's panel starts at j*4U*K and holds
// K rows of 4w values, row k = [i | f | g | o] weights of the block's units for input k. One
// register tile streams one contiguous panel and produces i, f, g and o of the same units, so
// the cell update runs on the accumulators.
// Gate pre-activations, the saved gates and da use the natural (B, 4H) order i, f, g, o.
#pragma once

#include <cstdint>

#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace lstm {

// Per-step work of at least this many multiply-adds per thread before a second thread helps
// (the per-step barrier costs about a microsecond); the one-off GEMMs need more.
constexpr int64_t kStepGrain = 1 << 16;
constexpr int64_t kGemmGrain = 1 << 18;

template <typename T>
constexpr int kUnits = 64 / static_cast<int>(sizeof(T));

// Vector registers of this level: the tiles below are sized to keep accumulators in them.
#if defined(__AVX512F__)
constexpr int kRegs = 32;
#else
constexpr int kRegs = 16;
#endif

// Vectors per gate in one block, and rows per forward cell tile: 4*NV accumulators per row, plus
// 4*NV weight vectors and a broadcast (AVX-512: 6 rows x 4 gates = 24 of 32 registers).
template <typename T>
constexpr int kVecs = kUnits<T> / simd::Vec<T>::W;
template <typename T>
constexpr int kCellRows = (kRegs - 4 * kVecs<T> - 1) / (4 * kVecs<T>) < 1 ? 1
                          : (kRegs - 4 * kVecs<T> - 1) / (4 * kVecs<T>) > 6 ? 6
                          : (kRegs - 4 * kVecs<T> - 1) / (4 * kVecs<T>);

inline int64_t num_blocks(int64_t H, int64_t U) { return (H + U - 1) / U; }

inline int block_width(int64_t j, int64_t H, int64_t U) {
  return static_cast<int>(H - j * U < U ? H - j * U : U);
}

// Lane counts of the NV vectors covering a block of width w.
template <typename T>
struct BlockLanes {
  int cnt[kVecs<T>];
  explicit BlockLanes(int w) {
    constexpr int W = simd::Vec<T>::W;
    for (int v = 0; v < kVecs<T>; ++v) {
      const int n = w - v * W;
      cnt[v] = n < 0 ? 0 : n > W ? W : n;
    }
  }
};

// Splits `n` items into `parts` contiguous ranges that depend only on n and parts.
inline void split_range(int64_t n, int parts, int idx, int64_t* lo, int64_t* hi) {
  *lo = n * idx / parts;
  *hi = n * (idx + 1) / parts;
}

}  // namespace lstm
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
