// attention_backward.cpp: fused scaled dot-product attention, backward.
//
// Inputs q, k, v, out and lse from attention_forward (shapes there), dout (batch, Lq, Dv);
// outputs dq (batch, Lq, Dh), dk (batch, Lk, Dh), dv (batch, Lk, Dv).
//   p_ij  = 2^(s_ij - lse_i) with s_ij = (scale·log2 e · q_i)·k_j and lse in base 2 as saved by
//           forward, 0 where masked (same rule as forward) and on rows with lse_i = +inf (rows
//           that see no key, which get zero gradients)
//   D_i   = Σ_c dout_ic · out_ic          (= Σ_j p_ij dp_ij)
//   dp_ij = dout_i · v_j                  ds_ij = p_ij (dp_ij - D_i)
//   dv_j  = Σ_i p_ij dout_i   dq_i = scale Σ_j ds_ij k_j   dk_j = scale Σ_i ds_ij q_i
// With softcap c the capped scores s'_ij = c·tanh(s_ij / c) feed the softmax and
// ds_ij = ds'_ij · (1 - tanh²(s_ij / c)) reaches q and k (the bias, added after, gets ds').
// With an additive bias the scores include it (as forward's); with m.dbias, ds'_ij itself is
// written there, once per entry (one-pass: by the key block; two-pass: by pass 2).
// Grouped heads: problem b reads k and v of problem b / group; dk and dv are written per query
// problem b (the caller sums each group's, in order).
// The score tiles are recomputed from q, k and lse, never stored whole. Every output row has one
// writer, so no partial sums are shared:
//   one thread, or at least kProblemsPerThread problems per thread: one item per problem; key
//     blocks outer, query blocks inner, each tile's p and ds feed dv, dk and dq (5 tile products
//     against forward's 2).
//   fewer problems: two passes, so one problem still spreads over the cores:
//     pass 1, items (problem, key block): stream query blocks, accumulate dk and dv;
//     pass 2, items (problem, query block): stream key blocks, accumulate dq;
//     p and ds are computed in both (7 tile products).
// Both schemes accumulate dq_i over key blocks in increasing order and dk_j, dv_j over query
// blocks in increasing order, with the same tile code: results are bitwise identical across
// schemes and thread counts.
// Tiles that structure masks entirely (causal, kv_len) are skipped in both passes.
// Memory: D (batch, Lq), kᵀ and vᵀ (per thread one problem's, or, two-pass, all problems'), two
// tiles per thread.
// Cost: 10·batch·Lq·Lk·Dh flops one-pass, 14·batch·Lq·Lk·Dh two-pass (Dv = Dh), less for
// skipped tiles.
#include <cmath>
#include <limits>

#include "kernels/attention_tile.h"
#include "kernels/registry.h"
#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

namespace {

using simd::Vec;

constexpr int64_t kBlock = 64;  // query rows and keys per tile: the p and ds tiles fill L1 together
constexpr int64_t kProblemsPerThread = 4;

// For query rows i0 .. i0+rows-1 and keys j0 .. j0+cols-1 of problem b: p into `pt` and
// scale·ds into `dst` (both rows x cols, row stride kBlock). kt, vt: problem b's kᵀ and vᵀ.
// The scores are formed exactly as attention_forward forms them (q pre-scaled by scale·log2 e,
// exp2), so p matches forward's weights to rounding.
template <typename T>
void p_ds_tile(const AttnShape& s, const AttnMask& m, int64_t b, int64_t i0, int64_t rows, int64_t j0,
               int64_t cols, const T* q, const T* kt, const T* vt, const T* lse, const T* dsum, const T* dout,
               T* qs, T* pt, T* dst, T* slope, bool write_dbias, const T* k) {
  using V = Vec<T>;
  constexpr int W = V::W;
  attn::scale_rows(rows * s.dh, q + (b * s.lq + i0) * s.dh, static_cast<T>(s.scale * attn::kLog2e), qs);
  // The scores exactly as attention_forward formed them: by dot products with the keys where
  // they lie for a few query rows (its decoding path), else from kᵀ.
  if (s.lq <= attn::kDotRows) {
    attn::dot_rows(rows, cols, s.dh, qs, attn::k_of(s, k, b) + j0 * s.dh, pt, kBlock);
  } else {
    attn::tile_mm<T, false>(rows, cols, s.dh, qs, s.dh, kt + j0, attn::padded_ld<T>(s.lk), pt, kBlock, false);
  }
  attn::tile_mm<T, false>(rows, cols, s.dv, dout + (b * s.lq + i0) * s.dv, s.dv, vt + j0, attn::padded_ld<T>(s.lk), dst, kBlock,
                          false);
  const uint8_t* keep = m.keep ? m.keep + m.keep_offset[b] : nullptr;
  const V vscale = V::set1(static_cast<T>(s.scale));
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t i = i0 + r;
    T* x = pt + r * kBlock;
    T* d = dst + r * kBlock;
    const int64_t visible = attn::key_limit(s, m, b, i) - j0;
    const uint8_t* kr = keep ? keep + i * m.row_stride + j0 * m.col_stride : nullptr;
    T* sl = s.softcap > 0 ? slope + r * kBlock : nullptr;
    if (sl) attn::softcap_row<T>(x, cols, s.softcap, sl);
    if (const T* br = attn::bias_row<T>(m, b, i, j0)) attn::add_bias_row(x, cols, br, m.bias_col_stride);
    const int64_t from = attn::key_start(s, m, b, i) - j0;
    if (visible < cols || kr || from > 0) attn::scale_mask_row(x, cols, T(1), visible, kr, m.col_stride, from);
    const V l = V::set1(lse[b * s.lq + i]);
    const V di = V::set1(dsum[b * s.lq + i]);
    T* g = write_dbias && m.dbias ? static_cast<T*>(m.dbias) + (b * s.lq + i) * s.lk + j0 : nullptr;
    for (int64_t j = 0; j < cols; j += W) {
      const int cnt = static_cast<int>(cols - j < W ? cols - j : W);
      const V p = attn::exp2_nonpos(V::load_n(x + j, cnt) - l);
      p.store_n(x + j, cnt);
      const V ds = p * (V::load_n(d + j, cnt) - di);
      if (g) ds.store_n(g + j, cnt);
      (sl ? ds * V::load_n(sl + j, cnt) * vscale : ds * vscale).store_n(d + j, cnt);
    }
  }
}

// Key block j0 of problem b against every query block that sees it: dk and dv for the block,
// and, when dq is not null, each query block's dq += ds·k (the one-pass scheme).
template <typename T>
void key_block(const AttnShape& s, const AttnMask& m, int64_t b, int64_t j0, const T* q, const T* k, const T* kt,
               const T* vt, const T* lse, const T* dsum, const T* dout, T* qs, T* pt, T* dst, T* slope, T* dk,
               T* dv, T* dq) {
  const int64_t cols = s.lk - j0 < kBlock ? s.lk - j0 : kBlock;
  T* dkb = dk + (b * s.lk + j0) * s.dh;
  T* dvb = dv + (b * s.lk + j0) * s.dv;
  // Causal: query rows before the first that sees key j0 see none of these keys.
  for (int64_t i0 = (attn::first_row_seeing(s, m, b, j0) / kBlock) * kBlock; i0 < s.lq; i0 += kBlock) {
    const int64_t rows = s.lq - i0 < kBlock ? s.lq - i0 : kBlock;
    const int64_t kend = attn::key_limit(s, m, b, i0 + rows - 1);
    if (j0 >= kend) continue;
    const int64_t c = kend - j0 < cols ? kend - j0 : cols;
    p_ds_tile(s, m, b, i0, rows, j0, c, q, kt, vt, lse, dsum, dout, qs, pt, dst, slope, dq != nullptr, k);
    attn::tile_mm<T, true>(c, s.dv, rows, pt, kBlock, dout + (b * s.lq + i0) * s.dv, s.dv, dvb, s.dv, true);
    attn::tile_mm<T, true>(c, s.dh, rows, dst, kBlock, q + (b * s.lq + i0) * s.dh, s.dh, dkb, s.dh, true);
    if (dq) {
      attn::tile_mm<T, false>(rows, s.dh, c, dst, kBlock, attn::k_of(s, k, b) + j0 * s.dh, s.dh,
                              dq + (b * s.lq + i0) * s.dh, s.dh, true);
    }
  }
}

template <typename T>
void zero(T* p, int64_t n) {
  for (int64_t i = 0; i < n; ++i) p[i] = T(0);
}

// Zeroes problem b's gradients and computes its D_i = dout_i · out_i.
template <typename T>
void prepare_problem(const AttnShape& s, int64_t b, const T* out, const T* dout, T* dsum, T* dq, T* dk, T* dv) {
  using V = Vec<T>;
  constexpr int W = V::W;
  zero(dq + b * s.lq * s.dh, s.lq * s.dh);
  zero(dk + b * s.lk * s.dh, s.lk * s.dh);
  zero(dv + b * s.lk * s.dv, s.lk * s.dv);
  for (int64_t i = 0; i < s.lq; ++i) {
    const T* o = out + (b * s.lq + i) * s.dv;
    const T* g = dout + (b * s.lq + i) * s.dv;
    V acc = V::zero();
    for (int64_t c = 0; c < s.dv; c += W) {
      const int cnt = static_cast<int>(s.dv - c < W ? s.dv - c : W);
      acc = simd::fmadd(V::load_n(o + c, cnt), V::load_n(g + c, cnt), acc);
    }
    dsum[b * s.lq + i] = simd::hsum(acc);
  }
}

}  // namespace

template <typename T>
void attention_backward(const AttnShape& s, const AttnMask& m, const T* q, const T* k, const T* v, const T* out,
                        const T* lse, const T* dout, T* dq, T* dk, T* dv) {
  if (s.batch == 0) return;
  const int64_t qblocks = (s.lq + kBlock - 1) / kBlock;
  const int64_t ldt = attn::padded_ld<T>(s.lk);  // row stride of kᵀ and vᵀ
  const int64_t kblocks = (s.lk + kBlock - 1) / kBlock;
  const int nt = simd::threads_for(s.batch * (s.lq + 1) * (s.lk + 1) * (s.dh + s.dv + 1), int64_t(1) << 16);
  // Both schemes give identical bits, so this choice may depend on the thread count.
  // Equal problems (no causal or length structure) split evenly when their count is a multiple
  // of the thread count.
  const bool even = !s.causal && !m.kv_len && s.batch % nt == 0;
  const bool one_pass = nt == 1 || s.batch >= kProblemsPerThread * nt || even;
  // One pass: each thread transposes its current problem's k and v into its own buffers (in L2);
  // two passes: all problems' up front, shared.
  simd::Buffer<T> kt(one_pass ? 0 : s.batch * s.dh * ldt);
  simd::Buffer<T> vt(one_pass ? 0 : s.batch * s.dv * ldt);
  simd::Buffer<T> dsum(s.batch * s.lq);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    simd::DenormalGuard guard;
    simd::Buffer<T> pt(kBlock * kBlock);
    simd::Buffer<T> dst(kBlock * kBlock);
    simd::Buffer<T> slope(s.softcap > 0 ? kBlock * kBlock : 0);
    simd::Buffer<T> qs(kBlock * s.dh);
    if (one_pass) {
      simd::Buffer<T> ktl(s.dh * ldt);
      simd::Buffer<T> vtl(s.dv * ldt);
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < s.batch; ++b) {
        prepare_problem(s, b, out, dout, dsum.data(), dq, dk, dv);
        attn::transpose(s.lk, s.dh, attn::k_of(s, k, b), s.dh, ktl.data(), ldt);
        attn::transpose(s.lk, s.dv, attn::v_of(s, v, b), s.dv, vtl.data(), ldt);
        for (int64_t j0 = 0; j0 < s.lk; j0 += kBlock) {
          if (m.kv_len && j0 >= m.kv_len[b]) break;
          key_block(s, m, b, j0, q, k, ktl.data(), vtl.data(), lse, dsum.data(), dout, qs.data(), pt.data(), dst.data(),
                    slope.data(), dk, dv, dq);
        }
      }
    } else {
#pragma omp for schedule(static)
      for (int64_t b = 0; b < s.batch; ++b) {
        prepare_problem(s, b, out, dout, dsum.data(), dq, dk, dv);
        attn::transpose(s.lk, s.dh, attn::k_of(s, k, b), s.dh, kt.data() + b * s.dh * ldt, ldt);
        attn::transpose(s.lk, s.dv, attn::v_of(s, v, b), s.dv, vt.data() + b * s.dv * ldt, ldt);
      }
      // Pass 1: dk, dv by key block.
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < s.batch * kblocks; ++it) {
        const int64_t b = it / kblocks;
        const int64_t j0 = (it % kblocks) * kBlock;
        if (m.kv_len && j0 >= m.kv_len[b]) continue;
        key_block(s, m, b, j0, q, k, kt.data() + b * s.dh * ldt, vt.data() + b * s.dv * ldt, lse, dsum.data(),
                  dout, qs.data(), pt.data(), dst.data(), slope.data(), dk, dv, static_cast<T*>(nullptr));
      }
      // Pass 2: dq by query block.
#pragma omp for schedule(dynamic, 1)
      for (int64_t it = 0; it < s.batch * qblocks; ++it) {
        const int64_t b = it / qblocks;
        const int64_t i0 = (it % qblocks) * kBlock;
        const int64_t rows = s.lq - i0 < kBlock ? s.lq - i0 : kBlock;
        const int64_t kend = attn::key_limit(s, m, b, i0 + rows - 1);
        T* dqb = dq + (b * s.lq + i0) * s.dh;
        for (int64_t j0 = 0; j0 < kend; j0 += kBlock) {
          const int64_t cols = kend - j0 < kBlock ? kend - j0 : kBlock;
          p_ds_tile(s, m, b, i0, rows, j0, cols, q, kt.data() + b * s.dh * ldt, vt.data() + b * s.dv * ldt, lse,
                    dsum.data(), dout, qs.data(), pt.data(), dst.data(), slope.data(), true, k);
          attn::tile_mm<T, false>(rows, s.dh, cols, dst.data(), kBlock, attn::k_of(s, k, b) + j0 * s.dh,
                                  s.dh, dqb, s.dh, true);
        }
      }
    }
  }
}

SEQKERN_KERNELS(attention_backward) {
  SEQKERN_ENTRY(attention, backward, attention_backward);
}

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
