// attention_tile.h: tile products and mask helpers shared by the attention kernels, compiled once
// per ISA level.
//
// tile_mm computes C (M x N, row stride ldc) (+)= op(A) · B for the small tiles of a fused attention
// kernel, B row-major (K x N, row stride ldb), op(A) = A (M x K, A[m*lda + k]) or, with TA, Aᵀ
// (A[k*lda + m]). Register-blocked: kMR rows x kNV vectors of accumulators stay in registers over
// the whole K loop; elements of A are broadcast, rows of B loaded as vectors (the last one masked
// for N tails), so neither operand needs packing and a tile is used where it lies. Every C element
// is accumulated over k in increasing order, so the result does not depend on the tiling of the
// caller or the thread that runs it.
#pragma once

#include <cstdint>
#include <limits>

#include "kernels/simd.h"
#include "seqkern/shapes.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace attn {

using simd::Vec;

#if defined(__AVX512F__)
constexpr int kMR = 4;  // 16 accumulators + 4 rows of B + 1 broadcast of 32 registers
constexpr int kNV = 4;
#elif defined(__AVX2__)
constexpr int kMR = 6;  // 12 accumulators + 2 rows of B + 1 broadcast of 16 registers
constexpr int kNV = 2;
#else
constexpr int kMR = 4;
constexpr int kNV = 4;
#endif

template <typename T, int MR, int NV, bool TA>
inline void mm_block(int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc, int last,
                     bool acc) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V c[MR][NV];
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      const T* p = C + r * ldc + v * W;
      c[r][v] = !acc ? V::zero() : (v == NV - 1 ? V::load_n(p, last) : V::load(p));
    }
  }
  for (int64_t k = 0; k < K; ++k) {
    const T* b = B + k * ldb;
    V bv[NV];
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) bv[v] = v == NV - 1 ? V::load_n(b + v * W, last) : V::load(b + v * W);
#pragma GCC unroll 8
    for (int r = 0; r < MR; ++r) {
      const V a = V::set1(TA ? A[k * lda + r] : A[r * lda + k]);
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) c[r][v] = simd::fmadd(a, bv[v], c[r][v]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) {
      T* p = C + r * ldc + v * W;
      if (v == NV - 1) {
        c[r][v].store_n(p, last);
      } else {
        c[r][v].store(p);
      }
    }
  }
}

template <typename T, int MR, bool TA>
inline void mm_rows(int nv, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C, int64_t ldc,
                    int last, bool acc) {
  switch (nv) {
    case 1: mm_block<T, MR, 1, TA>(K, A, lda, B, ldb, C, ldc, last, acc); break;
    case 2: mm_block<T, MR, (kNV >= 2 ? 2 : 1), TA>(K, A, lda, B, ldb, C, ldc, last, acc); break;
    case 3: mm_block<T, MR, (kNV >= 3 ? 3 : 1), TA>(K, A, lda, B, ldb, C, ldc, last, acc); break;
    default: mm_block<T, MR, kNV, TA>(K, A, lda, B, ldb, C, ldc, last, acc); break;
  }
}

// C (M x N) = op(A) · B, or C += op(A) · B with `acc`.
template <typename T, bool TA>
void tile_mm(int64_t M, int64_t N, int64_t K, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
             int64_t ldc, bool acc) {
  constexpr int W = Vec<T>::W;
  constexpr int64_t NB = int64_t(kNV) * W;
  for (int64_t n0 = 0; n0 < N; n0 += NB) {
    const int64_t nn = N - n0 < NB ? N - n0 : NB;
    const int nv = static_cast<int>((nn + W - 1) / W);
    const int last = static_cast<int>(nn - int64_t(nv - 1) * W);
    for (int64_t m0 = 0; m0 < M; m0 += kMR) {
      const int64_t mr = M - m0 < kMR ? M - m0 : kMR;
      const T* a = TA ? A + m0 : A + m0 * lda;
      T* c = C + m0 * ldc + n0;
      switch (mr) {
        case 1: mm_rows<T, 1, TA>(nv, K, a, lda, B + n0, ldb, c, ldc, last, acc); break;
        case 2: mm_rows<T, 2, TA>(nv, K, a, lda, B + n0, ldb, c, ldc, last, acc); break;
        case 3: mm_rows<T, 3, TA>(nv, K, a, lda, B + n0, ldb, c, ldc, last, acc); break;
        case 4: mm_rows<T, (kMR >= 4 ? 4 : 1), TA>(nv, K, a, lda, B + n0, ldb, c, ldc, last, acc); break;
        case 5: mm_rows<T, (kMR >= 5 ? 5 : 1), TA>(nv, K, a, lda, B + n0, ldb, c, ldc, last, acc); break;
        default: mm_rows<T, kMR, TA>(nv, K, a, lda, B + n0, ldb, c, ldc, last, acc); break;
      }
    }
  }
}

#if defined(__AVX512F__)
// 16 x 16 floats in registers: pairs of rows interleaved, then 64-bit pairs, then 128-bit lanes
// twice (shuffle_f32x4 0x88 takes lanes 0 and 2 of each source, 0xdd lanes 1 and 3).
inline void transpose_block(const float* src, int64_t ld_src, float* dst, int64_t ld_dst) {
  __m512 t[16], u[16];
  for (int i = 0; i < 16; i += 2) {
    const __m512 a = _mm512_loadu_ps(src + i * ld_src);
    const __m512 b = _mm512_loadu_ps(src + (i + 1) * ld_src);
    t[i] = _mm512_unpacklo_ps(a, b);
    t[i + 1] = _mm512_unpackhi_ps(a, b);
  }
  for (int g = 0; g < 16; g += 4) {  // u[g + m]: column 4L + m of rows g .. g+3, in lane L
    u[g] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
    u[g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g]), _mm512_castps_pd(t[g + 2])));
    u[g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
    u[g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[g + 1]), _mm512_castps_pd(t[g + 3])));
  }
  for (int m = 0; m < 4; ++m) {
    const __m512 a88 = _mm512_shuffle_f32x4(u[m], u[4 + m], 0x88);
    const __m512 add = _mm512_shuffle_f32x4(u[m], u[4 + m], 0xdd);
    const __m512 b88 = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0x88);
    const __m512 bdd = _mm512_shuffle_f32x4(u[8 + m], u[12 + m], 0xdd);
    _mm512_storeu_ps(dst + m * ld_dst, _mm512_shuffle_f32x4(a88, b88, 0x88));
    _mm512_storeu_ps(dst + (8 + m) * ld_dst, _mm512_shuffle_f32x4(a88, b88, 0xdd));
    _mm512_storeu_ps(dst + (4 + m) * ld_dst, _mm512_shuffle_f32x4(add, bdd, 0x88));
    _mm512_storeu_ps(dst + (12 + m) * ld_dst, _mm512_shuffle_f32x4(add, bdd, 0xdd));
  }
}
constexpr int64_t kTransposeBlock = 16;
#elif defined(__AVX2__)
// 8 x 8 floats in registers: pairs of rows interleaved, then 64-bit pairs, then 128-bit halves.
inline void transpose_block(const float* src, int64_t ld_src, float* dst, int64_t ld_dst) {
  __m256 t[8], u[8];
  for (int i = 0; i < 8; i += 2) {
    const __m256 a = _mm256_loadu_ps(src + i * ld_src);
    const __m256 b = _mm256_loadu_ps(src + (i + 1) * ld_src);
    t[i] = _mm256_unpacklo_ps(a, b);
    t[i + 1] = _mm256_unpackhi_ps(a, b);
  }
  for (int g = 0; g < 8; g += 4) {
    u[g] = _mm256_shuffle_ps(t[g], t[g + 2], 0x44);
    u[g + 1] = _mm256_shuffle_ps(t[g], t[g + 2], 0xEE);
    u[g + 2] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0x44);
    u[g + 3] = _mm256_shuffle_ps(t[g + 1], t[g + 3], 0xEE);
  }
  for (int m = 0; m < 4; ++m) {
    _mm256_storeu_ps(dst + m * ld_dst, _mm256_permute2f128_ps(u[m], u[4 + m], 0x20));
    _mm256_storeu_ps(dst + (4 + m) * ld_dst, _mm256_permute2f128_ps(u[m], u[4 + m], 0x31));
  }
}
constexpr int64_t kTransposeBlock = 8;
#else
constexpr int64_t kTransposeBlock = 16;
#endif

// dst (cols x rows, row stride ld_dst) = srcᵀ, src (rows x cols, row stride ld_src).
template <typename T>
void transpose(int64_t rows, int64_t cols, const T* src, int64_t ld_src, T* dst, int64_t ld_dst) {
  constexpr int64_t kB = kTransposeBlock;  // blocks keep both sides' cache lines live
  for (int64_t r0 = 0; r0 < rows; r0 += kB) {
    const int64_t r1 = r0 + kB < rows ? r0 + kB : rows;
    for (int64_t c0 = 0; c0 < cols; c0 += kB) {
      const int64_t c1 = c0 + kB < cols ? c0 + kB : cols;
#if defined(__AVX512F__) || defined(__AVX2__)
      if (sizeof(T) == sizeof(float) && r1 - r0 == kB && c1 - c0 == kB) {
        transpose_block(reinterpret_cast<const float*>(src + r0 * ld_src + c0), ld_src,
                        reinterpret_cast<float*>(dst + c0 * ld_dst + r0), ld_dst);
        continue;
      }
#endif
      for (int64_t c = c0; c < c1; ++c) {
        for (int64_t r = r0; r < r1; ++r) dst[c * ld_dst + r] = src[r * ld_src + c];
      }
    }
  }
}

// Row stride for a transposed (D x n) operand: n rounded up to an odd number of cache lines, so
// that the rows a micro-kernel walks down do not all map to the same few L1 sets (a power-of-two
// stride such as n = 512 floats would leave 2 of 64 sets in use).
template <typename T>
inline int64_t padded_ld(int64_t n) {
  constexpr int64_t kLine = 64 / static_cast<int64_t>(sizeof(T));
  return (((n + kLine - 1) / kLine) | 1) * kLine;
}

// Asks for x[0, n) in L2 (the next problem's operands while this one computes).
template <typename T>
inline void prefetch_l2(const T* x, int64_t n) {
#if defined(SEQKERN_X86)
  const char* p = reinterpret_cast<const char*>(x);
  const int64_t bytes = n * static_cast<int64_t>(sizeof(T));
  for (int64_t o = 0; o < bytes; o += 64) _mm_prefetch(p + o, _MM_HINT_T1);
#else
  (void)x;
  (void)n;
#endif
}

constexpr double kLog2e = 1.44269504088896340735992468100189214;

// y[0, n) = f · x[0, n).
template <typename T>
void scale_rows(int64_t n, const T* x, T f, T* y) {
  using V = Vec<T>;
  const V vf = V::set1(f);
  for (int64_t e = 0; e < n; e += V::W) {
    const int cnt = static_cast<int>(n - e < V::W ? n - e : V::W);
    (V::load_n(x + e, cnt) * vf).store_n(y + e, cnt);
  }
}

// 2^t for t <= 0 (a score minus its row max, in log2 units); -inf gives 0. simd.h's exp
// polynomial on r = (t - round(t))·ln2, |r| <= ln2/2: its bound (<= 2 ulp) plus half an ulp
// from forming r. Results below the smallest normal number are 0, as with simd::exp.
template <typename T>
inline Vec<T> exp2_nonpos(Vec<T> t) {
  using V = Vec<T>;
  const V ln2 = V::set1(T(0.693147180559945309417232121458176568));
#if defined(__AVX512F__)
  // scalef applies 2^n without the integer add/shift and needs no underflow select: below the
  // normal range it gives a denormal that flush-to-zero (set by the kernels) turns into 0.
  const V tc = simd::max(V::set1(T(sizeof(T) == 4 ? -160 : -1100)), t);  // NaN propagates
  const V n = simd::round(tc);
  const V y = simd::exp_poly((tc - n) * ln2);
  if constexpr (sizeof(T) == 4) {
    return {_mm512_scalef_ps(y.v, n.v)};
  } else {
    return {_mm512_scalef_pd(y.v, n.v)};
  }
#else
  const V lo = V::set1(T(std::numeric_limits<T>::min_exponent - 1));
  const V tc = simd::max(lo, t);
  const V n = simd::round(tc);
  const V y = simd::exp_poly((tc - n) * ln2) * simd::pow2i(n);
  return simd::select(simd::cmp_lt(t, lo), V::zero(), y);
#endif
}

// Max over x[0, n).
template <typename T>
T row_max(const T* x, int64_t n) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V vmax = V::set1(-std::numeric_limits<T>::infinity());
  int64_t j = 0;
  for (; j + W <= n; j += W) vmax = simd::max(vmax, V::load(x + j));
  if (j < n) {
    const int cnt = static_cast<int>(n - j);
    vmax = simd::max(vmax, simd::select(V::first(cnt), V::load_n(x + j, cnt), V::set1(-std::numeric_limits<T>::infinity())));
  }
  return simd::hmax(vmax);
}

// Number of leading keys query row i of problem b may see by structure (causal with its
// alignment, kv_len); the bool mask then removes more.
// C[r*ldc + j] = A_r · B_j for M <= kDotRows rows of A (M x K) and N rows of B (N x K), both
// row-major: the scores of a few query rows straight from the keys, without transposing them
// (attention_forward's decoding path, where a transpose would cost more than the products).
constexpr int kDotRows = 4;
template <typename T>
void dot_rows(int64_t M, int64_t N, int64_t K, const T* A, const T* B, T* C, int64_t ldc) {
  using V = Vec<T>;
  constexpr int W = V::W;
  for (int64_t r = 0; r < M; ++r) {
    const T* a = A + r * K;
    int64_t j = 0;
    // Four keys at a time: four independent accumulator chains.
    for (; j + 4 <= N; j += 4) {
      const T* b0 = B + j * K;
      V acc0 = V::zero(), acc1 = V::zero(), acc2 = V::zero(), acc3 = V::zero();
      for (int64_t c = 0; c < K; c += W) {
        const int cnt = static_cast<int>(K - c < W ? K - c : W);
        const V av = V::load_n(a + c, cnt);
        acc0 = simd::fmadd(av, V::load_n(b0 + c, cnt), acc0);
        acc1 = simd::fmadd(av, V::load_n(b0 + K + c, cnt), acc1);
        acc2 = simd::fmadd(av, V::load_n(b0 + 2 * K + c, cnt), acc2);
        acc3 = simd::fmadd(av, V::load_n(b0 + 3 * K + c, cnt), acc3);
      }
      T* out = C + r * ldc + j;
      out[0] = simd::hsum(acc0);
      out[1] = simd::hsum(acc1);
      out[2] = simd::hsum(acc2);
      out[3] = simd::hsum(acc3);
    }
    for (; j < N; ++j) {
      const T* bj = B + j * K;
      V acc = V::zero();
      for (int64_t c = 0; c < K; c += W) {
        const int cnt = static_cast<int>(K - c < W ? K - c : W);
        acc = simd::fmadd(V::load_n(a + c, cnt), V::load_n(bj + c, cnt), acc);
      }
      C[r * ldc + j] = simd::hsum(acc);
    }
  }
}

// Problem b's keys and values (rows of dh and dv values, one after the other): of key/value
// problem b / group, k_stride (v_stride) elements apart.
template <typename T>
const T* k_of(const AttnShape& s, const T* k, int64_t b) {
  return k + (b / s.group) * (s.k_stride ? s.k_stride : s.lk * s.dh);
}
template <typename T>
const T* v_of(const AttnShape& s, const T* v, int64_t b) {
  return v + (b / s.group) * (s.v_stride ? s.v_stride : s.lk * s.dv);
}

inline int64_t causal_offset(const AttnShape& s, const AttnMask& m, int64_t b) {
  return s.causal_to_len && m.kv_len ? m.kv_len[b] - s.lq : s.causal_offset;
}

inline int64_t key_limit(const AttnShape& s, const AttnMask& m, int64_t b, int64_t i) {
  int64_t e = s.lk;
  if (m.kv_len && m.kv_len[b] < e) e = m.kv_len[b];
  if (s.causal || s.window_right >= 0) {
    const int64_t o = causal_offset(s, m, b);
    if (s.causal && i + 1 + o < e) e = i + 1 + o;
    if (s.window_right >= 0 && i + 1 + o + s.window_right < e) e = i + 1 + o + s.window_right;
  }
  return e < 0 ? 0 : e;
}

// The first key query row i of problem b may see: 0, or with a left window i + offset - left.
inline int64_t key_start(const AttnShape& s, const AttnMask& m, int64_t b, int64_t i) {
  if (s.window_left < 0) return 0;
  const int64_t j = i + causal_offset(s, m, b) - s.window_left;
  return j < 0 ? 0 : j;
}

// The first query row of problem b that may see key j: 0, or with causal masking j - offset.
inline int64_t first_row_seeing(const AttnShape& s, const AttnMask& m, int64_t b, int64_t j) {
  if (!s.causal) return 0;
  const int64_t i = j - causal_offset(s, m, b);
  return i < 0 ? 0 : i;
}

// Soft capping of a score row in base-2 units, x = log2(e)·s -> log2(e)·c·tanh(s / c), in place;
// with `slope` (not null) also 1 - tanh², the derivative the backward needs.
template <typename T>
void softcap_row(T* x, int64_t n, double cap, T* slope) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const V inv = V::set1(static_cast<T>(1.0 / (kLog2e * cap)));
  const V out = V::set1(static_cast<T>(kLog2e * cap));
  const V one = V::set1(T(1));
  for (int64_t j = 0; j < n; j += W) {
    const int cnt = static_cast<int>(n - j < W ? n - j : W);
    const V u = simd::tanh(V::load_n(x + j, cnt) * inv);
    (u * out).store_n(x + j, cnt);
    if (slope) (one - u * u).store_n(slope + j, cnt);
  }
}

// x[0, n) += log2(e) · bias row b[0, n·stride) (stride 0: one value for the whole row): the
// additive bias in the kernels' base-2 score units.
template <typename T>
void add_bias_row(T* x, int64_t n, const T* b, int64_t stride) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const T f = static_cast<T>(kLog2e);
  if (stride == 1) {
    const V vf = V::set1(f);
    for (int64_t j = 0; j < n; j += W) {
      const int cnt = static_cast<int>(n - j < W ? n - j : W);
      simd::fmadd(V::load_n(b + j, cnt), vf, V::load_n(x + j, cnt)).store_n(x + j, cnt);
    }
  } else if (stride == 0) {
    const V add = V::set1(b[0] * f);
    for (int64_t j = 0; j < n; j += W) {
      const int cnt = static_cast<int>(n - j < W ? n - j : W);
      (V::load_n(x + j, cnt) + add).store_n(x + j, cnt);
    }
  } else {
    for (int64_t j = 0; j < n; ++j) x[j] += b[j * stride] * f;
  }
}

// Problem b's bias row i from key j0 on, or nullptr without a bias.
template <typename T>
const T* bias_row(const AttnMask& m, int64_t b, int64_t i, int64_t j0) {
  if (!m.bias) return nullptr;
  return static_cast<const T*>(m.bias) + m.bias_offset[b] + i * m.bias_row_stride + j0 * m.bias_col_stride;
}

// Scales row x[0, n) (keys j0 .. j0+n-1 of query i) by `scale` in place, sets the keys the row
// does not see to -inf, and returns the row's max (-inf when it sees none of them).
// Keys before `from` (a left window) are unseen too.
template <typename T>
T scale_mask_row(T* x, int64_t n, T scale, int64_t visible, const uint8_t* keep, int64_t keep_stride,
                 int64_t from = 0) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const V ninf = V::set1(-std::numeric_limits<T>::infinity());
  const V vs = V::set1(scale);
  if (keep && keep_stride == 0 && keep[0] == 0) visible = 0;  // mask broadcast over keys
  const bool per_key = keep && keep_stride != 0;
  V vmax = ninf;
  for (int64_t j = 0; j < n; j += W) {
    const int cnt = static_cast<int>(n - j < W ? n - j : W);
    const int64_t vis64 = visible - j;
    const int vis = static_cast<int>(vis64 < 0 ? 0 : (vis64 > W ? W : vis64));
    V s = V::load_n(x + j, cnt) * vs;
    if (vis < W) s = simd::select(V::first(vis), s, ninf);
    if (from > j) {
      const int64_t skip64 = from - j;
      const int skip = static_cast<int>(skip64 > W ? W : skip64);
      s = simd::select(V::first(skip), ninf, s);
    }
    if (per_key) s = simd::select(V::keep_bytes(keep + j, cnt), s, ninf);
    s.store_n(x + j, cnt);
    vmax = simd::max(vmax, s);
  }
  return simd::hmax(vmax);
}

}  // namespace attn
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
