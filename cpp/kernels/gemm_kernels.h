// gemm_kernels.h: the register-blocked micro-kernels and packing routines behind gemm.h,
// compiled once per ISA level.
//
// Packed layouts (T elements, 64-byte aligned buffers):
//   A row panel of mr <= MR rows and kc columns: a[k*mr + i] = alpha * op(A)(i, k).
//   B column panel of NR columns and kc rows:    b[k*NR + j] = op(B)(k, j), zero past N.
// A micro-kernel computes an mr x (np*NR) tile of C, walking k in increasing order with one
// fused multiply-add per (i, j, k) into a register that starts at 0, C or beta*C. Every tile
// shape and every blocking therefore gives each C element the same chain of operations.
#pragma once

#include <cstdint>
#include <utility>

#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace gemm {
namespace detail {

// Register blocking and cache blocking for this level and type. KC (the largest K slice; gemm.h
// splits K into equal slices of at most KC) and MC (the most rows per packed A block; gemm.h
// lowers it to half the L2 detected at run time) were picked by measurement on Zen 4 (AVX-512,
// 1 MiB L2) and Zen 3 (AVX2, 512 KiB L2); the kc x nc B block lives in L3.
template <typename T>
struct Tiles {
  using V = simd::Vec<T>;
  static constexpr int W = V::W;
#if defined(__AVX512F__)
  static constexpr int kRegs = 32;
  static constexpr int NV = 2;   // vectors per B panel row: NR = 32 floats / 16 doubles
  static constexpr int MR = 12;  // 24 accumulators + 2 B vectors + 1 broadcast
  static constexpr int KC = 512;  // measured best: 64 KiB B micro-panel from L2, A block in L2
  static constexpr int MC = 96;
#elif defined(__AVX2__) && defined(__FMA__)
  static constexpr int kRegs = 16;
  static constexpr int NV = 2;  // NR = 16 floats / 8 doubles
  static constexpr int MR = 6;  // 12 accumulators + 2 B vectors + 1 broadcast
  static constexpr int KC = 512;  // Zen 3: the per-step LSTM product 32 x 1024 x 384 in one slice ran
                                  // 1.3x faster than as 256 + 128 (32 KiB B micro-panel from L1/L2)
  static constexpr int MC = 144;
#else
  static constexpr int kRegs = 16;
  static constexpr int NV = 4;  // NR = 4 scalars
  static constexpr int MR = 4;
  static constexpr int KC = 256;
  static constexpr int MC = 128;
#endif
  static constexpr int NR = NV * W;
  static constexpr int NC = 4096;
  // Panels per kernel call for an mr-row tile: few rows leave registers for more columns,
  // which keeps enough independent FMA chains in flight (4-cycle latency, 2 pipes).
  static constexpr int panels_for(int mr) {
    const int np = (kRegs - 1) / ((mr + 1) * NV);
    return np < 1 ? 1 : (np > 4 ? 4 : np);
  }
};

// How the accumulators start: 0 (beta == 0, C never read), C, or beta * C.
enum StartMode : int { kStartZero = 0, kStartC = 1, kStartBetaC = 2 };

// C (mr x ncols, ncols <= NP*NR) op= a (packed, mr rows) * b (NP panels, row k of panel p at
// b + p*bp + k*bk). Columns past ncols are computed from the zero padding and never stored.
template <typename T, int MR, int NP>
void micro_kernel(int64_t kc, const T* a, const T* b, int64_t bk, int64_t bp, T* c, int64_t ldc,
                  int64_t ncols, int mode, T beta) {
  using V = simd::Vec<T>;
  constexpr int W = V::W;
  constexpr int NV = Tiles<T>::NV;
  constexpr int NJ = NP * NV;
  V acc[MR][NJ];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < NJ; ++j) acc[i][j] = V::zero();
  }
  if (mode != kStartZero) {
    const V vb = V::set1(beta);
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
      for (int j = 0; j < NJ; ++j) {
        const int64_t cnt = ncols - j * W;
        if (cnt >= W) {
          acc[i][j] = V::load(c + i * ldc + j * W);
        } else if (cnt > 0) {
          acc[i][j] = V::load_n(c + i * ldc + j * W, static_cast<int>(cnt));
        }
        if (mode == kStartBetaC) acc[i][j] = acc[i][j] * vb;
      }
    }
  }
  const T* bpan[NP];
#pragma GCC unroll 4
  for (int p = 0; p < NP; ++p) bpan[p] = b + p * bp;
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NJ];
#pragma GCC unroll 4
    for (int p = 0; p < NP; ++p) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) bv[p * NV + v] = V::load(bpan[p] + k * bk + v * W);
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const V av = V::set1(a[k * MR + i]);
#pragma GCC unroll 16
      for (int j = 0; j < NJ; ++j) acc[i][j] = simd::fmadd(av, bv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < NJ; ++j) {
      const int64_t cnt = ncols - j * W;
      if (cnt >= W) {
        acc[i][j].store(c + i * ldc + j * W);
      } else if (cnt > 0) {
        acc[i][j].store_n(c + i * ldc + j * W, static_cast<int>(cnt));
      }
    }
  }
}

template <typename T>
using MicroKernel = void (*)(int64_t, const T*, const T*, int64_t, int64_t, T*, int64_t, int64_t, int, T);

// kernel_for(mr, wide): the kernel for mr rows, one panel wide, or Tiles::panels_for(mr) wide.
template <typename T, int... Ms>
MicroKernel<T> kernel_from(int mr, bool wide, std::integer_sequence<int, Ms...>) {
  static constexpr MicroKernel<T> narrow[] = {&micro_kernel<T, Ms + 1, 1>...};
  static constexpr MicroKernel<T> broad[] = {&micro_kernel<T, Ms + 1, Tiles<T>::panels_for(Ms + 1)>...};
  return wide ? broad[mr - 1] : narrow[mr - 1];
}

template <typename T>
MicroKernel<T> kernel_for(int mr, bool wide) {
  return kernel_from<T>(mr, wide, std::make_integer_sequence<int, Tiles<T>::MR>{});
}

// dst[r * ldd + c] = src[c * lds + r] for a size x size block (size 1: no vector transpose).
// run_rows: the same with only the first `rows` source rows read (the others taken as 0).
template <typename T>
struct TransposeBlock {
  static constexpr int size = 1;
  static void run(const T*, int64_t, T*, int64_t) {}
  static void run_rows(const T*, int64_t, int, T*, int64_t) {}
};

#if defined(__AVX2__)
template <>
struct TransposeBlock<float> {
  static constexpr int size = 8;
  static void run(const float* src, int64_t lds, float* dst, int64_t ldd) { run_rows(src, lds, 8, dst, ldd); }
  static void run_rows(const float* src, int64_t lds, int rows, float* dst, int64_t ldd) {
    __m256 r[8], t[8], u[8];
    for (int i = 0; i < 8; ++i) r[i] = i < rows ? _mm256_loadu_ps(src + i * lds) : _mm256_setzero_ps();
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
      u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
      u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
      u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
      u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
      _mm256_storeu_ps(dst + i * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x20));
      _mm256_storeu_ps(dst + (i + 4) * ldd, _mm256_permute2f128_ps(u[i], u[i + 4], 0x31));
    }
  }
};

template <>
struct TransposeBlock<double> {
  static constexpr int size = 4;
  static void run(const double* src, int64_t lds, double* dst, int64_t ldd) { run_rows(src, lds, 4, dst, ldd); }
  static void run_rows(const double* src, int64_t lds, int rows, double* dst, int64_t ldd) {
    const __m256d z = _mm256_setzero_pd();
    const __m256d r0 = _mm256_loadu_pd(src), r1 = rows > 1 ? _mm256_loadu_pd(src + lds) : z;
    const __m256d r2 = rows > 2 ? _mm256_loadu_pd(src + 2 * lds) : z;
    const __m256d r3 = rows > 3 ? _mm256_loadu_pd(src + 3 * lds) : z;
    const __m256d t0 = _mm256_unpacklo_pd(r0, r1), t1 = _mm256_unpackhi_pd(r0, r1);
    const __m256d t2 = _mm256_unpacklo_pd(r2, r3), t3 = _mm256_unpackhi_pd(r2, r3);
    _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t0, t2, 0x20));
    _mm256_storeu_pd(dst + ldd, _mm256_permute2f128_pd(t1, t3, 0x20));
    _mm256_storeu_pd(dst + 2 * ldd, _mm256_permute2f128_pd(t0, t2, 0x31));
    _mm256_storeu_pd(dst + 3 * ldd, _mm256_permute2f128_pd(t1, t3, 0x31));
  }
};
#endif

// The row tiles of an mc-row block: as few as MR allows, of equal height (32 rows = 6+6+5+5+5+5
// on AVX2, not 6*5+2): a thin last tile would run a kernel with too few accumulators to keep the
// FMA pipes busy (measured on Zen 3: a 4 x 16 tile costs 2.6x a 6 x 16 tile per multiply-add).
// Tile t covers rows [start(t), start(t+1)); every tile has at most MR rows.
template <typename T>
struct RowTiles {
  int64_t mc, n;
  explicit RowTiles(int64_t rows) : mc(rows), n((rows + Tiles<T>::MR - 1) / Tiles<T>::MR) {}
  int64_t start(int64_t t) const { return mc * t / n; }
  int rows(int64_t t) const { return static_cast<int>(start(t + 1) - start(t)); }
};

// Packs rows [0, mc) and columns [0, kc) of op(A) (already offset to the block) into the row
// panels of RowTiles (tile t of mr rows at out + start(t) * kc), scaled by alpha.
// With alpha == 1 (every kernel's case) the copies are vector moves: rows of op(A)^T are
// contiguous, and op(A) itself is transposed in TB x TB register blocks (the last block of a
// panel overlaps the previous one when TB does not divide mr; it writes the same values; a panel
// of fewer than TB rows goes through a buffer).
template <typename T>
void pack_a(bool trans_a, int64_t mc, int64_t kc, const T* A, int64_t lda, T alpha, T* out) {
  using V = simd::Vec<T>;
  constexpr int W = V::W;
  constexpr int TB = TransposeBlock<T>::size;
  const RowTiles<T> tiles(mc);
  for (int64_t tile = 0; tile < tiles.n; ++tile) {
    const int64_t i0 = tiles.start(tile);
    const int mr = tiles.rows(tile);
    T* o = out + i0 * kc;
    if (alpha == T(1) && trans_a && W > 1) {
      const T* a = A + i0;
      for (int64_t k = 0; k < kc; ++k) {
        for (int i = 0; i < mr; i += W) V::load_n(a + k * lda + i, mr - i).store_n(o + k * mr + i, mr - i);
      }
      continue;
    }
    if (alpha == T(1) && !trans_a && TB > 1) {
      const T* a = A + i0 * lda;
      alignas(64) T tmp[TB * TB];
      int64_t k0 = 0;
      for (; k0 + TB <= kc; k0 += TB) {
        if (mr >= TB) {
          for (int r0 = 0; r0 < mr; r0 += TB) {
            const int r = r0 + TB <= mr ? r0 : mr - TB;
            TransposeBlock<T>::run(a + r * lda + k0, lda, o + k0 * mr + r, mr);
          }
        } else {
          // Fewer rows than a transpose block (AVX2's 5- and 6-row tiles of floats): transpose
          // through a small buffer, then copy each column's mr values.
          TransposeBlock<T>::run_rows(a + k0, lda, mr, tmp, TB);
          for (int k = 0; k < TB; ++k) V::load_n(tmp + k * TB, mr).store_n(o + (k0 + k) * mr, mr);
        }
      }
      for (int i = 0; i < mr; ++i) {
        for (int64_t k = k0; k < kc; ++k) o[k * mr + i] = a[i * lda + k];
      }
      continue;
    }
    if (trans_a) {
      const T* a = A + i0;
      for (int64_t k = 0; k < kc; ++k) {
        for (int i = 0; i < mr; ++i) o[k * mr + i] = alpha * a[k * lda + i];
      }
    } else {
      const T* a = A + i0 * lda;
      for (int i = 0; i < mr; ++i) {
        const T* row = a + i * lda;
        for (int64_t k = 0; k < kc; ++k) o[k * mr + i] = alpha * row[k];
      }
    }
  }
}

// Packs rows [0, kc) and columns [0, nc) of op(B) (already offset to the block) into column
// panels of NR, zero-padded; panel p lands at out + p * panel_stride.
template <typename T>
void pack_b(bool trans_b, int64_t kc, int64_t nc, const T* B, int64_t ldb, T* out, int64_t panel_stride) {
  using V = simd::Vec<T>;
  constexpr int W = V::W;
  constexpr int NR = Tiles<T>::NR;
  for (int64_t j0 = 0; j0 < nc; j0 += NR) {
    const int nr = static_cast<int>(nc - j0 < NR ? nc - j0 : NR);
    T* o = out + (j0 / NR) * panel_stride;
    if (!trans_b) {
      const T* b = B + j0;
      for (int64_t k = 0; k < kc; ++k) {
        for (int j = 0; j < NR; j += W) {
          (nr - j > 0 ? V::load_n(b + k * ldb + j, nr - j) : V::zero()).store(o + k * NR + j);
        }
      }
    } else {
      if (nr < NR) {
        for (int64_t k = 0; k < kc; ++k) {
          for (int j = nr; j < NR; ++j) o[k * NR + j] = T(0);
        }
      }
      // Rows of op(B)^T are contiguous: transpose TB x TB blocks in registers; the panel
      // (kc * NR elements) stays in L1/L2 while it fills.
      constexpr int TB = TransposeBlock<T>::size;
      const T* b = B + j0 * ldb;
      int j = 0;
      int64_t k0 = 0;
      if (TB > 1) {
        for (; j + TB <= nr; j += TB) {
          for (k0 = 0; k0 + TB <= kc; k0 += TB) {
            TransposeBlock<T>::run(b + j * ldb + k0, ldb, o + k0 * NR + j, NR);
          }
          for (int64_t k = k0; k < kc; ++k) {
            for (int jj = j; jj < j + TB; ++jj) o[k * NR + jj] = b[jj * ldb + k];
          }
        }
      }
      for (; j < nr; ++j) {
        for (int64_t k = 0; k < kc; ++k) o[k * NR + j] = b[j * ldb + k];
      }
    }
  }
}

}  // namespace detail
}  // namespace gemm
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
