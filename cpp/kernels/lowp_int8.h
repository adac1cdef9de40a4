// lowp_int8.h: the int8 forward and streaming step of any cell (ops/lowp.h defines the format:
// per-column int8 weights, the rows of x_t and h_{t-1} quantized at every step, the products'
// sums exact in 32-bit integers).
//
// Per step: each row's x_t and h_{t-1} become bytes u + 128 (quantize_row); one register tile of
// R rows and one unit block sums bytes times weights over the block's panel (4 inputs per 32-bit
// lane: vpdpbusd where the CPU has AVX512-VNNI, vpmaddubsw of |x| by the signed weights and
// vpmaddwd otherwise, plain integers at the portable level), turns the sums of both products into the float
// pre-activations of those rows and units, and runs the cell update on them (cell_tile of
// recurrent_forward.h with `pre`). Threads claim each step's unit blocks (RoundClaims); the
// integers do not depend on who computes them, so results are bitwise the same for any thread
// count, and for AVX512-VNNI on or off.
// Cost per step: B·G·H·(D+H) byte multiply-adds (64 per vpdpbusd), plus B·(D+H) to quantize.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/recurrent.h"
#include "kernels/recurrent_forward.h"
#include "kernels/simd.h"
#include "seqkern/features.h"
#include "seqkern/ops/lowp.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace rnn {

// Rows per int8 register tile (R x G int32 accumulators of 16 lanes, as many vectors per lane
// group as the level needs).
#if defined(__AVX512F__)
constexpr int kI8Rows = 6;
#elif defined(__AVX2__)
constexpr int kI8Rows = 2;
#else
constexpr int kI8Rows = 4;
#endif

// Row v[0, K) as bytes u + 128 in u[0, 4·ceil(K/4)) (128, that is 0, past K); returns its scale a
// (ops/lowp.h). The inputs are finite (the bindings check x and the initial states).
inline float quantize_row(const float* v, int64_t K, uint8_t* u) {
  using V = simd::Vec<float>;
  constexpr int W = V::W;
  V mv = V::zero();
  for (int64_t k = 0; k < K; k += W) mv = simd::max(mv, simd::abs(V::load_n(v + k, static_cast<int>(K - k))));
  const float a = simd::hmax(mv) / 127.0f;
  // rint by the 1.5·2^23 trick (round to nearest even, exact for |v/a| < 2^22; |v/a| <= 127 here
  // up to rounding), clamped, as bytes u + 128. a = 0: every v is 0.
  const V d = V::set1(a > 0.0f ? a : 1.0f), magic = V::set1(12582912.0f);
  const V hi = V::set1(127.0f), lo = V::set1(-127.0f), off = V::set1(128.0f);
  float r[W];
  for (int64_t k = 0; k < K; k += W) {
    const int n = static_cast<int>(K - k < W ? K - k : W);
    V x = V::load_n(v + k, n);
    x = ((x / d) + magic) - magic;
    (simd::max(simd::min(x, hi), lo) + off).store(r);
    for (int i = 0; i < n; ++i) u[k + i] = static_cast<uint8_t>(static_cast<int>(r[i]));
  }
  for (int64_t k = K; k < 4 * int8_groups(K); ++k) u[k] = 128;
  return a;
}

// The dot products of one tile, added to out[r][q·16 + l]: Σ_g Σ_i u_r[4g + i]·w[g][q][l][i] over
// the groups [0, K4) of (a k chunk of) one unit block's panel, for the gates q with on[q].

#if defined(__AVX512F__)
template <int R, int G>
__attribute__((target("avx512vnni"))) void dot_i8_vnni(const uint8_t* const* u, const int8_t* panel, int64_t K4,
                                                      const bool* on, int32_t (*out)[G * 16]) {
  // Few rows leave few independent vpdpbusd chains (one per row and gate, each waiting on the
  // last): up to two rows, even and odd groups go to two sets of accumulators, added at the end
  // (integers: the sum is the same).
  constexpr int C = R == 1 ? 4 : R == 2 ? 2 : 1;
  __m512i acc[C][R][G];
  for (int e = 0; e < C; ++e)
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < G; ++q) acc[e][r][q] = e == 0 ? _mm512_loadu_si512(out[r] + q * 16) : _mm512_setzero_si512();
  // (No lambda here: it would not inherit the function's target.)
  for (int64_t g0 = 0; g0 < K4; g0 += C) {
    for (int e = 0; e < C && g0 + e < K4; ++e) {
      const int64_t g = g0 + e;
      const int8_t* wg = panel + g * G * 64;
      __m512i b[R];
      for (int r = 0; r < R; ++r) {
        int32_t v;
        std::memcpy(&v, u[r] + 4 * g, 4);
        b[r] = _mm512_set1_epi32(v);
      }
      for (int q = 0; q < G; ++q) {
        if (!on[q]) continue;
        const __m512i w = _mm512_loadu_si512(wg + q * 64);
        for (int r = 0; r < R; ++r) acc[e][r][q] = _mm512_dpbusd_epi32(acc[e][r][q], b[r], w);
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < G; ++q) {
      __m512i v = acc[0][r][q];
      for (int e = 1; e < C; ++e) v = _mm512_add_epi32(v, acc[e][r][q]);
      _mm512_storeu_si512(out[r] + q * 16, v);
    }
}
#endif

// Whether this level's dot products are vpdpbusd's, Σ (x + 128)·q (so the epilogue subtracts
// 128·Σ q), or, everywhere else, Σ x·q itself.
inline bool unsigned_sums() {
#if defined(__AVX512F__)
  return int8_vnni();
#else
  return false;
#endif
}

// The same sums without VNNI, Σ x·q with x = u - 128 (the byte u with its top bit flipped):
// vpmaddubsw of |x| (at most 127) by q with x's sign, whose pairs stay within 16 bits
// (2·127·127 < 2^15), then vpmaddwd by ones into 32 bits. Exact.
template <int R, int G>
void dot_i8(bool vnni, const uint8_t* const* u, const int8_t* panel, int64_t K4, const bool* on,
            int32_t (*out)[G * 16]) {
#if defined(__AVX512F__)
  if (vnni) {
    dot_i8_vnni<R, G>(u, panel, K4, on, out);
    return;
  }
  const __m512i flip = _mm512_set1_epi8(static_cast<char>(0x80)), ones = _mm512_set1_epi16(1);
  const __m512i zero = _mm512_setzero_si512();
  __m512i acc[R][G];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < G; ++q) acc[r][q] = _mm512_loadu_si512(out[r] + q * 16);
  for (int64_t g = 0; g < K4; ++g) {
    const int8_t* wg = panel + g * G * 64;
    __m512i ax[R];
    __mmask64 neg[R];
    for (int r = 0; r < R; ++r) {
      int32_t b;
      std::memcpy(&b, u[r] + 4 * g, 4);
      const __m512i x = _mm512_xor_si512(_mm512_set1_epi32(b), flip);
      ax[r] = _mm512_abs_epi8(x);
      neg[r] = _mm512_movepi8_mask(x);
    }
    for (int q = 0; q < G; ++q) {
      if (!on[q]) continue;
      const __m512i w = _mm512_loadu_si512(wg + q * 64);
      for (int r = 0; r < R; ++r) {
        const __m512i sw = _mm512_mask_sub_epi8(w, neg[r], zero, w);
        acc[r][q] = _mm512_add_epi32(acc[r][q], _mm512_madd_epi16(_mm512_maddubs_epi16(ax[r], sw), ones));
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < G; ++q) _mm512_storeu_si512(out[r] + q * 16, acc[r][q]);
#elif defined(__AVX2__)
  (void)vnni;
  // In two halves of 8 lanes per gate.
  const __m256i flip = _mm256_set1_epi8(static_cast<char>(0x80)), ones = _mm256_set1_epi16(1);
  __m256i acc[R][G][2];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < G; ++q)
      for (int h = 0; h < 2; ++h) acc[r][q][h] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(out[r] + q * 16 + h * 8));
  for (int64_t g = 0; g < K4; ++g) {
    const int8_t* wg = panel + g * G * 64;
    __m256i x[R], ax[R];
    for (int r = 0; r < R; ++r) {
      int32_t b;
      std::memcpy(&b, u[r] + 4 * g, 4);
      x[r] = _mm256_xor_si256(_mm256_set1_epi32(b), flip);
      ax[r] = _mm256_abs_epi8(x[r]);
    }
    for (int q = 0; q < G; ++q) {
      if (!on[q]) continue;
      for (int h = 0; h < 2; ++h) {
        const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(wg + q * 64 + h * 32));
        for (int r = 0; r < R; ++r) {
          const __m256i p = _mm256_maddubs_epi16(ax[r], _mm256_sign_epi8(w, x[r]));
          acc[r][q][h] = _mm256_add_epi32(acc[r][q][h], _mm256_madd_epi16(p, ones));
        }
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < G; ++q)
      for (int h = 0; h < 2; ++h) _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[r] + q * 16 + h * 8), acc[r][q][h]);
#else
  (void)vnni;
  for (int64_t g = 0; g < K4; ++g) {
    const int8_t* wg = panel + g * G * 64;
    for (int q = 0; q < G; ++q) {
      if (!on[q]) continue;
      for (int r = 0; r < R; ++r) {
        const uint8_t* ur = u[r] + 4 * g;
        int32_t* a = out[r] + q * 16;
        for (int l = 0; l < 16; ++l) {
          const int8_t* w = wg + q * 64 + l * 4;
          for (int i = 0; i < 4; ++i) a[l] += (ur[i] - 128) * w[i];
        }
      }
    }
  }
#endif
}

// What the int8 tiles of one step read: the quantized rows (bytes and scales), the weights, and
// where the pre-activations go (B rows of G·H, gate-interleaved per block as the float GEMM
// path's `pre`: block j's gate q, unit r at column G·j·16 + q·w + r).
struct I8Step {
  const Int8Weights* w = nullptr;
  int64_t D = 0, H = 0;
  const uint8_t* ux = nullptr;  // row m at ux + m·ldx
  const float* ax = nullptr;
  int64_t ldx = 0;
  const uint8_t* uh = nullptr;  // row m at uh + m·ldh
  const float* ah = nullptr;
  int64_t ldh = 0;
  float* pre = nullptr;
  int64_t ldp = 0;
};

// Groups of 4 inputs per k chunk when a block has several row tiles: 64 groups of 4 gates x 64
// bytes = 16 KiB of the panel stay in L1 while every tile passes over them; each tile's sums
// wait in a per-thread buffer between chunks (integers: chunking never changes them).
constexpr int64_t kI8ChunkGroups = 64;

// The int32 sums of up to kI8Rows rows and one block's G gates.
template <int G>
struct I8Sums {
  int32_t acc[kI8Rows][G * 16];
};

template <int G, int R>
void dot_rows(int rows, bool vnni, const uint8_t* const* u, const int8_t* panel, int64_t K4, const bool* on,
              int32_t (*out)[G * 16]) {
  if constexpr (R > 0) {
    if (rows == R) {
      dot_i8<R, G>(vnni, u, panel, K4, on, out);
    } else {
      dot_rows<G, R - 1>(rows, vnni, u, panel, K4, on, out);
    }
  }
}

// All B rows of unit blocks [j0, j1): both products into s.pre (rows in equal tiles, the panel in
// k chunks when there are several), then the cell update from `pre`. `sums` holds ceil(B /
// kI8Rows) tiles.
template <typename Cell>
void i8_blocks(const I8Step& s, const CellStep<Cell, float>& a, int64_t B, int64_t j0, int64_t j1,
               I8Sums<Cell::kGates>* sums_buf) {
  using V = simd::Vec<float>;
  constexpr int G = Cell::kGates, W = V::W, NV = 16 / W;
  const int64_t H = s.H, tiles = (B + kI8Rows - 1) / kI8Rows;
  bool on_x[G], on_h[G];
  for (int q = 0; q < G; ++q) {
    on_x[q] = q < Cell::kInputColumns;
    on_h[q] = Cell::reads_h(q);
  }
  alignas(64) float sum[G * 16];
  const bool vnni = unsigned_sums();
  const int32_t offset = vnni ? 128 : 0;
  I8Sums<G> local;
  I8Sums<G>* sums = B <= kI8Rows ? &local : sums_buf;
  auto tile_rows = [&](int64_t tile, int64_t* m0) {
    *m0 = B * tile / tiles;
    return static_cast<int>(B * (tile + 1) / tiles - *m0);
  };
  for (int64_t j = j0; j < j1; ++j) {
    const int64_t u0 = j * kInt8Units;
    const int w = static_cast<int>(H - u0 < kInt8Units ? H - u0 : kInt8Units);
    const BlockLanes<float> lanes(w);
    // One product over every tile: the sums by k chunks, then P = (a[m]·s[n])·float(Σ (u + 128)·q
    // - 128·colsum[n]) for the gate columns that read the input, into `pre` (add: onto the first).
    auto product = [&](const Int8Panels& wp, const uint8_t* u, int64_t ldu, const float* a_row, int64_t K,
                       const bool* on, bool add) {
      const int64_t K4 = int8_groups(K), chunk = tiles > 1 ? kI8ChunkGroups : K4;
      const int8_t* panel = wp.panel + j * K4 * G * 64;
      for (int64_t tile = 0; tile < tiles; ++tile) {
        int64_t m0;
        const int rows = tile_rows(tile, &m0);
        for (int r = 0; r < rows; ++r)
          for (int32_t& v : sums[tile].acc[r]) v = 0;
      }
      for (int64_t g0 = 0; g0 < K4; g0 += chunk) {
        const int64_t n = K4 - g0 < chunk ? K4 - g0 : chunk;
        for (int64_t tile = 0; tile < tiles; ++tile) {
          int64_t m0;
          const int rows = tile_rows(tile, &m0);
          const uint8_t* rp[kI8Rows];
          for (int r = 0; r < rows; ++r) rp[r] = u + (m0 + r) * ldu + 4 * g0;
          dot_rows<G, kI8Rows>(rows, vnni, rp, panel + g0 * G * 64, n, on, sums[tile].acc);
        }
      }
      const float* scale = wp.scale + j * G * 16;
      const int32_t* colsum = wp.colsum + j * G * 16;
      for (int64_t tile = 0; tile < tiles; ++tile) {
        int64_t m0;
        const int rows = tile_rows(tile, &m0);
        for (int r = 0; r < rows; ++r) {
          const int32_t* acc = sums[tile].acc[r];
          for (int i = 0; i < G * 16; ++i) sum[i] = static_cast<float>(acc[i] - offset * colsum[i]);
          const V am = V::set1(a_row[m0 + r]);
          float* pr = s.pre + (m0 + r) * s.ldp + G * u0;
          for (int q = 0; q < G; ++q) {
            for (int v = 0; v < NV; ++v) {
              const int cnt = lanes.cnt[v];
              float* dst = pr + q * w + v * W;
              if (!on[q]) {
                if (!add) V::zero().store_n(dst, cnt);
                continue;
              }
              const V p = (am * V::load(scale + q * 16 + v * W)) * V::load(sum + q * 16 + v * W);
              (add ? V::load_n(dst, cnt) + p : p).store_n(dst, cnt);
            }
          }
        }
      }
    };
    product(s.w->ih, s.ux, s.ldx, s.ax, s.D, on_x, false);
    product(s.w->hh, s.uh, s.ldh, s.ah, H, on_h, true);
    const bool full = w == kInt8Units;
    for (int64_t m = 0; m < B; ++m) {
      if (full) {
        cell_tile<Cell, float, 1, true>(a, m, j, 0, 0, true, true);
      } else {
        cell_tile<Cell, float, 1, false>(a, m, j, 0, 0, true, true);
      }
    }
  }
}

// The forward entry with int8 weights (no cache: gates and saved are never asked for).
template <typename Cell>
void rnn_forward_i8(const RnnShape& sh, const float* x, const typename Cell::Params& p, const float* const* init,
                    const int64_t* lengths, float* y, float* const* last) {
  constexpr int S = Cell::kStates, G = Cell::kGates;
  const int64_t T_ = sh.T, B = sh.B, D = sh.D, H = sh.H, BH = B * H;
  simd::DenormalGuard guard;
  const int64_t nb = num_blocks(H, kInt8Units);
  const int64_t ldx = 4 * int8_groups(D), ldh = 4 * int8_groups(H), ldp = G * H + 16;
  // Every step's rows of x, quantized once; h_{t-1} is quantized by each thread that takes part
  // in step t, into its own buffer.
  simd::Buffer<uint8_t> ux(T_ * B * ldx);
  simd::Buffer<float> ax(T_ * B), pre(B * ldp), state(2 * S * BH);
  for (int64_t m = 0; m < T_ * B; ++m) ax[m] = quantize_row(x + m * D, D, ux.data() + m * ldx);
  float* bufs[S];
  for (int s = 0; s < S; ++s) {
    bufs[s] = state.data() + 2 * s * BH;
    copy_or_zero(bufs[s], init[s], BH);
  }
  auto slot = [&](int64_t t) { return (t & 1) * BH; };
  int nt = simd::threads_for(B * G * H * (D + H), 4 * kClaimGrain);
  if (nt > nb) nt = static_cast<int>(nb);
  RoundClaims claims(nb, nt);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    simd::DenormalGuard thread_guard;
    const int tid = simd::team_rank(), team = simd::team_size();
    simd::Buffer<uint8_t> uh(B * ldh);
    simd::Buffer<float> ah(B);
    simd::Buffer<I8Sums<G>> sums((B + kI8Rows - 1) / kI8Rows);
    CellStep<Cell, float> a(H, D, p);
    a.lengths = lengths;
    a.pre = pre.data();
    a.ldp = ldp;
    I8Step s;
    s.w = p.i8;
    s.D = D;
    s.H = H;
    s.ldx = ldx;
    s.uh = uh.data();
    s.ah = ah.data();
    s.ldh = ldh;
    s.pre = pre.data();
    s.ldp = ldp;
    for (int64_t t = 0; t < T_; ++t) {
      a.at_step(t, B, bufs, slot(t), slot(t + 1), nullptr, y);
      s.ux = ux.data() + t * B * ldx;
      s.ax = ax.data() + t * B;
      // h_{t-1} is read only once this thread holds a block of step t (recurrent_forward.h).
      bool have_h = false;
      claims.finish(t, claims.run(t, tid, team, [&](int64_t jb, int64_t je) {
        if (!have_h) {
          for (int64_t m = 0; m < B; ++m) ah[m] = quantize_row(a.prev[0] + m * H, H, uh.data() + m * ldh);
          have_h = true;
        }
        i8_blocks(s, a, B, jb, je, sums.data());
      }));
    }
  }
  for (int s = 0; s < S; ++s) copy_or_zero(last[s], bufs[s] + slot(T_), BH);
}

// The step entry with int8 weights.
template <typename Cell>
void rnn_step_i8(const RnnShape& sh, const float* x, const typename Cell::Params& p, const float* const* prev,
                 float* const* out) {
  constexpr int G = Cell::kGates;
  const int64_t B = sh.B, D = sh.D, H = sh.H;
  simd::DenormalGuard guard;
  const int64_t nb = num_blocks(H, kInt8Units);
  const int64_t ldx = 4 * int8_groups(D), ldh = 4 * int8_groups(H), ldp = G * H + 16;
  simd::Buffer<uint8_t> ux(B * ldx), uh(B * ldh);
  simd::Buffer<float> ax(B), ah(B), pre(B * ldp);
  for (int64_t m = 0; m < B; ++m) {
    ax[m] = quantize_row(x + m * D, D, ux.data() + m * ldx);
    ah[m] = quantize_row(prev[0] + m * H, H, uh.data() + m * ldh);
  }
  CellStep<Cell, float> a(H, D, p);
  for (int s = 0; s < Cell::kStates; ++s) {
    a.prev[s] = prev[s];
    a.out[s] = out[s];
  }
  a.pre = pre.data();
  a.ldp = ldp;
  const I8Step s{p.i8, D, H, ux.data(), ax.data(), ldx, uh.data(), ah.data(), ldh, pre.data(), ldp};
  int nt = simd::threads_for(B * G * H * (D + H), 4 * kStepCallGrain);
  if (nt > nb) nt = static_cast<int>(nb);
  const int64_t tiles = (B + kI8Rows - 1) / kI8Rows;
  if (nt <= 1) {
    simd::Buffer<I8Sums<G>> sums(tiles);
    i8_blocks(s, a, B, 0, nb, sums.data());
    return;
  }
  RoundClaims claims(nb, nt);
#pragma omp parallel num_threads(nt)
  {
    simd::DenormalGuard thread_guard;
    simd::Buffer<I8Sums<G>> sums(tiles);
    claims.run(0, simd::team_rank(), simd::team_size(),
               [&](int64_t jb, int64_t je) { i8_blocks(s, a, B, jb, je, sums.data()); });
  }
}

}  // namespace rnn
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
