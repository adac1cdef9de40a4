// attention_forward.cpp: fused (flash-style) scaled dot-product attention, forward.
//
// q (batch, Lq, Dh)  k (batch, Lk, Dh)  v (batch, Lk, Dv)  ->  out (batch, Lq, Dv), lse (batch, Lq)
//   s_ij = scale · q_i·k_j      (scale = 1/√Dh unless given)
//   s_ij = softcap · tanh(s_ij / softcap) when softcap > 0 (before the bias, as ONNX's Attention)
//   s_ij += bias_ij when an additive bias is given (read in place, broadcast by strides)
//   s_ij = -inf where key j is masked for query i: bool keep mask false, or (causal)
//          j > i + offset (0 top-left, lk - lq bottom-right, or kv_len[b] - lq aligned to each
//          problem's own keys), or j >= kv_len[b], or outside a sliding window
//          [i + offset - left, i + offset + right]; they combine.
// Grouped heads: problem b reads k and v of problem b / group (never copied per query head).
//   p_ij = exp(s_ij) / Σ_j exp(s_ij),  out_i = Σ_j p_ij v_j
//   A row that sees no key: out_i = 0 and lse_i = +inf (so that backward's p is 0).
// Computed in base 2: t_ij = (scale·log2 e · q_i)·k_j (q pre-scaled per block, so the tile needs
// no multiply), p_ij = 2^(t_ij - lse_i). Saved row statistic: lse_i = log2 Σ_j 2^t_ij, i.e. the
// natural log-sum-exp times log2 e.
// The (Lq, Lk) score matrix is never built: a block of kBlock query rows streams tiles of kKeys
// keys, with an online softmax (running max m_i and sum l_i per row, the output accumulator
// rescaled by 2^(m_old - m_new) when the max grows); only lse is kept. Tiles that structure masks
// entirely (causal, kv_len) are skipped; fully visible tiles with no bool mask skip the masking.
// Numerics: accumulation in T; the running row max is subtracted before every exp2.
// Memory: kᵀ (per thread one problem's, or all problems'), one score tile per thread.
// Cost: 4·batch·Lq·Lk·Dh flops (2 for q·kᵀ, 2 for p·v; Dv = Dh), less for skipped tiles, plus one
// exp2 per score.
// Threads: work items are problems, or (problem, query block) when there are few problems; each
// writes its own rows of out and lse in a fixed order, so results do not depend on the thread
// count.
#include <cmath>
#include <limits>

#include "kernels/attention_tile.h"
#include "kernels/registry.h"
#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

namespace {

using simd::Vec;

// A 64 x 128 float score tile is 32 KiB, L1's size, and stays there between the two products;
// 128 keys rather than 64 halve the per-row bookkeeping (max, sum, rescale) per key and
// measured about 7% faster at Lq = Lk = 512, Dh = 64.
constexpr int64_t kBlock = 64;  // query rows per block
constexpr int64_t kKeys = 128;  // keys per tile
constexpr int64_t kProblemsPerThread = 4;

// ktb: problem b's kᵀ, or with `direct` its k itself (rows <= attn::kDotRows: the scores as
// dot products of the rows, no transpose).
template <typename T>
void forward_block(const AttnShape& s, const AttnMask& m, int64_t b, int64_t i0, int64_t rows, const T* q,
                   const T* ktb, bool direct, const T* v, T* out, T* lse, T* tile, T* qs, T* row_max,
                   T* row_sum) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const T ninf = -std::numeric_limits<T>::infinity();
  // Scores in log2 units: q pre-scaled by scale·log2(e), so the tile needs no multiply and the
  // softmax runs on exp2. attention_backward forms the scores the same way.
  const T* qb = q + (b * s.lq + i0) * s.dh;
  attn::scale_rows(rows * s.dh, qb, static_cast<T>(s.scale * attn::kLog2e), qs);
  const T* vb = attn::v_of(s, v, b);
  T* ob = out + (b * s.lq + i0) * s.dv;
  const int64_t kend = attn::key_limit(s, m, b, i0 + rows - 1);
  // A left window: tiles before the block's first row's first key are unseen by every row.
  const int64_t jfirst = (attn::key_start(s, m, b, i0) / kKeys) * kKeys;
  for (int64_t r = 0; r < rows; ++r) {
    row_max[r] = ninf;
    row_sum[r] = T(0);
    // Without keys no tile writes the rows; otherwise the first tile's p·v sets them.
    if (kend <= jfirst) {
      for (int64_t c = 0; c < s.dv; ++c) ob[r * s.dv + c] = T(0);
    }
  }
  const uint8_t* keep = m.keep ? m.keep + m.keep_offset[b] : nullptr;
  for (int64_t j0 = jfirst; j0 < kend; j0 += kKeys) {
    const int64_t cols = kend - j0 < kKeys ? kend - j0 : kKeys;
    // A bias of its own per key is read as `rows` short row segments a tile, far apart: ask for
    // the next tile's while this one computes (at B=8 NH=8 L=512 a bias (NH, L, L) cost 1.45x
    // the plain call without this).
    if (m.bias && m.bias_col_stride == 1 && j0 + kKeys < kend) {
      const int64_t next = kend - j0 - kKeys < kKeys ? kend - j0 - kKeys : kKeys;
      for (int64_t r = 0; r < rows; ++r) attn::prefetch_l2(attn::bias_row<T>(m, b, i0 + r, j0 + kKeys), next);
    }
    if (direct) {
      attn::dot_rows(rows, cols, s.dh, qs, ktb + j0 * s.dh, tile, kKeys);
    } else {
      attn::tile_mm<T, false>(rows, cols, s.dh, qs, s.dh, ktb + j0, attn::padded_ld<T>(s.lk), tile, kKeys, false);
    }
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t i = i0 + r;
      T* x = tile + r * kKeys;
      const int64_t visible = attn::key_limit(s, m, b, i) - j0;
      const uint8_t* kr = keep ? keep + i * m.row_stride + j0 * m.col_stride : nullptr;
      if (s.softcap > 0) attn::softcap_row<T>(x, cols, s.softcap, nullptr);
      if (const T* br = attn::bias_row<T>(m, b, i, j0)) attn::add_bias_row(x, cols, br, m.bias_col_stride);
      const int64_t from = attn::key_start(s, m, b, i) - j0;
      const T tmax = (visible >= cols && !kr && from <= 0)
                         ? attn::row_max(x, cols)
                         : attn::scale_mask_row(x, cols, T(1), visible, kr, m.col_stride, from);
      const T m_old = row_max[r];
      T m_new = tmax > m_old ? tmax : m_old;
      if (m_new == ninf) {
        // The vector max drops NaN: a tile row whose scores are all NaN or -inf looks unseen.
        // NaN scores make the row NaN (as the softmax of a NaN is); otherwise p = 0 here.
        bool nan = false;
        for (int64_t j = 0; j < cols; ++j) nan |= x[j] != x[j];
        if (!nan) {
          for (int64_t j = 0; j < cols; ++j) x[j] = T(0);
          continue;
        }
        m_new = std::numeric_limits<T>::quiet_NaN();
      }
      const V shift = V::set1(m_new);
      V acc = V::zero();
      for (int64_t j = 0; j < cols; j += W) {
        const int cnt = static_cast<int>(cols - j < W ? cols - j : W);
        const V p = attn::exp2_nonpos(V::load_n(x + j, cnt) - shift);
        p.store_n(x + j, cnt);
        acc = acc + (cnt < W ? simd::select(V::first(cnt), p, V::zero()) : p);
      }
      // From the second tile on, a larger max rescales what the earlier tiles summed.
      if (m_new != m_old && j0 > jfirst) {
        const T alpha = m_old == ninf ? T(0) : std::exp2(m_old - m_new);
        row_sum[r] *= alpha;
        const V va = V::set1(alpha);
        T* o = ob + r * s.dv;
        for (int64_t c = 0; c < s.dv; c += W) {
          const int cnt = static_cast<int>(s.dv - c < W ? s.dv - c : W);
          (V::load_n(o + c, cnt) * va).store_n(o + c, cnt);
        }
      }
      row_max[r] = m_new;
      row_sum[r] += simd::hsum(acc);
    }
    attn::tile_mm<T, false>(rows, s.dv, cols, tile, kKeys, vb + j0 * s.dv, s.dv, ob, s.dv, j0 > jfirst);
  }
  for (int64_t r = 0; r < rows; ++r) {
    const T l = row_sum[r];
    const V inv = V::set1(l > T(0) ? T(1) / l : T(0));
    T* o = ob + r * s.dv;
    for (int64_t c = 0; c < s.dv; c += W) {
      const int cnt = static_cast<int>(s.dv - c < W ? s.dv - c : W);
      (V::load_n(o + c, cnt) * inv).store_n(o + c, cnt);
    }
    // +inf marks a row that saw no key; a NaN row keeps NaN, so backward propagates it.
    lse[b * s.lq + i0 + r] =
        l > T(0) ? row_max[r] + std::log2(l) : (l == T(0) ? std::numeric_limits<T>::infinity() : l);
  }
}

}  // namespace

template <typename T>
void attention_forward(const AttnShape& s, const AttnMask& m, const T* q, const T* k, const T* v, T* out,
                       T* lse) {
  if (s.batch == 0 || s.lq == 0) return;
  const int64_t qblocks = (s.lq + kBlock - 1) / kBlock;
  const int64_t ldt = attn::padded_ld<T>(s.lk);  // row stride of kᵀ and vᵀ
  const int nt = simd::threads_for(s.batch * s.lq * (s.lk + 1) * (s.dh + s.dv + 1), int64_t(1) << 16);
  // Enough problems per thread: one item per problem, whose kᵀ a thread builds in its own buffer
  // (in L2). Few: items (problem, query block) so that one problem spreads over the cores, kᵀ of
  // all problems built up front. forward_block computes the same bits either way, so this
  // choice, unlike everything numeric, may depend on the thread count.
  // Equal problems (no causal or length structure) split evenly when their count is a multiple
  // of the thread count.
  const bool even = !s.causal && !m.kv_len && s.batch % nt == 0;
  // A few query rows (decoding against a cache of keys): the scores as dot products with the
  // keys where they lie; transposing k would cost more than the products. Measured at B = 1,
  // NH = 8, Lq = 1, Lk = 2048, Dh = 64, 1 thread: transposing, 1.08 ms; direct, see the README.
  const bool direct = s.lq <= attn::kDotRows;
  const bool per_problem = nt == 1 || s.batch >= kProblemsPerThread * nt || even || direct;
  simd::Buffer<T> kt(per_problem ? 0 : s.batch * s.dh * ldt);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    simd::DenormalGuard guard;
    simd::Buffer<T> tile(kBlock * kKeys);
    simd::Buffer<T> stats(2 * kBlock);
    simd::Buffer<T> qs(kBlock * s.dh);
    if (per_problem) {
      simd::Buffer<T> ktl(direct ? 0 : s.dh * ldt);
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < s.batch; ++b) {
        // The next problem's operands (it is usually this thread's next) while this one computes:
        // with the first tile's direct write below, 3-8% faster at B·NH = 128, L = 128, Dh = 64
        // (2 threads, three alternating runs against the build without both); the k transpose
        // fell from 8% to 5% of a 1-thread profile. The same in the backward showed no gain.
        if (!direct && b + nt < s.batch) {
          attn::prefetch_l2(attn::k_of(s, k, b + nt), s.lk * s.dh);
          attn::prefetch_l2(q + (b + nt) * s.lq * s.dh, s.lq * s.dh);
          attn::prefetch_l2(attn::v_of(s, v, b + nt), s.lk * s.dv);
        }
        if (!direct) attn::transpose(s.lk, s.dh, attn::k_of(s, k, b), s.dh, ktl.data(), ldt);
        const T* kb = direct ? attn::k_of(s, k, b) : ktl.data();
        for (int64_t i0 = 0; i0 < s.lq; i0 += kBlock) {
          const int64_t rows = s.lq - i0 < kBlock ? s.lq - i0 : kBlock;
          forward_block(s, m, b, i0, rows, q, kb, direct, v, out, lse, tile.data(), qs.data(), stats.data(),
                        stats.data() + kBlock);
        }
      }
    } else {
#pragma omp for schedule(static)
      for (int64_t b = 0; b < s.batch; ++b) {
        attn::transpose(s.lk, s.dh, attn::k_of(s, k, b), s.dh, kt.data() + b * s.dh * ldt, ldt);
      }
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < s.batch * qblocks; ++it) {
        const int64_t b = it / qblocks;
        const int64_t i0 = (it % qblocks) * kBlock;
        const int64_t rows = s.lq - i0 < kBlock ? s.lq - i0 : kBlock;
        forward_block(s, m, b, i0, rows, q, kt.data() + b * s.dh * ldt, false, v, out, lse, tile.data(), qs.data(),
                      stats.data(), stats.data() + kBlock);
      }
    }
  }
}

// The score matrix at a stage (ops/attention.h), formed exactly as attention_forward forms it
// (the same products in the same order, kᵀ or, for a few query rows, dot products with k), so
// stage 2 gives the weights the forward used. Threads own problems.
template <typename T>
void attention_scores(const AttnShape& s, const AttnMask& m, const T* q, const T* k, const T* lse, int stage,
                      T* out) {
  using V = Vec<T>;
  constexpr int W = V::W;
  if (s.batch == 0 || s.lq == 0 || s.lk == 0) return;
  const int64_t ldt = attn::padded_ld<T>(s.lk);
  const bool direct = s.lq <= attn::kDotRows;
  const T to_natural = static_cast<T>(1.0 / attn::kLog2e);
  const int nt = simd::threads_for(s.batch * s.lq * s.lk * (s.dh + 1), int64_t(1) << 16);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    simd::DenormalGuard guard;
    simd::Buffer<T> ktl(direct ? 0 : s.dh * ldt);
    simd::Buffer<T> qs(kBlock * s.dh);
    simd::Buffer<T> tile(kBlock * kKeys);
#pragma omp for schedule(dynamic, 1)
    for (int64_t b = 0; b < s.batch; ++b) {
      const T* kb = attn::k_of(s, k, b);
      if (!direct) attn::transpose(s.lk, s.dh, kb, s.dh, ktl.data(), ldt);
      const uint8_t* keep = m.keep ? m.keep + m.keep_offset[b] : nullptr;
      for (int64_t i0 = 0; i0 < s.lq; i0 += kBlock) {
        const int64_t rows = s.lq - i0 < kBlock ? s.lq - i0 : kBlock;
        attn::scale_rows(rows * s.dh, q + (b * s.lq + i0) * s.dh, static_cast<T>(s.scale * attn::kLog2e), qs.data());
        for (int64_t j0 = 0; j0 < s.lk; j0 += kKeys) {
          const int64_t cols = s.lk - j0 < kKeys ? s.lk - j0 : kKeys;
          if (direct) {
            attn::dot_rows(rows, cols, s.dh, qs.data(), kb + j0 * s.dh, tile.data(), kKeys);
          } else {
            attn::tile_mm<T, false>(rows, cols, s.dh, qs.data(), s.dh, ktl.data() + j0, ldt, tile.data(), kKeys, false);
          }
          for (int64_t r = 0; r < rows; ++r) {
            const int64_t i = i0 + r;
            T* x = tile.data() + r * kKeys;
            T* o = out + (b * s.lq + i) * s.lk + j0;
            if (s.softcap > 0) attn::softcap_row<T>(x, cols, s.softcap, nullptr);
            if (stage >= 1) {
              if (const T* br = attn::bias_row<T>(m, b, i, j0)) attn::add_bias_row(x, cols, br, m.bias_col_stride);
              const uint8_t* kr = keep ? keep + i * m.row_stride + j0 * m.col_stride : nullptr;
              attn::scale_mask_row(x, cols, T(1), attn::key_limit(s, m, b, i) - j0, kr, m.col_stride,
                                   attn::key_start(s, m, b, i) - j0);
            }
            if (stage == 2) {
              const T l = lse[b * s.lq + i];
              if (l == std::numeric_limits<T>::infinity()) {
                for (int64_t j = 0; j < cols; ++j) o[j] = T(0);
                continue;
              }
              const V vl = V::set1(l);
              for (int64_t j = 0; j < cols; j += W) {
                const int cnt = static_cast<int>(cols - j < W ? cols - j : W);
                attn::exp2_nonpos(V::load_n(x + j, cnt) - vl).store_n(o + j, cnt);
              }
            } else {
              const V f = V::set1(to_natural);
              for (int64_t j = 0; j < cols; j += W) {
                const int cnt = static_cast<int>(cols - j < W ? cols - j : W);
                (V::load_n(x + j, cnt) * f).store_n(o + j, cnt);
              }
            }
          }
        }
      }
    }
  }
}

SEQKERN_KERNELS(attention_forward) {
  SEQKERN_ENTRY(attention, forward, attention_forward);
  SEQKERN_ENTRY(attention, scores, attention_scores);
}

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
