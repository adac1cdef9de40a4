// recurrent_forward.h: the forward over a full sequence, the single streaming step and the weight
// packing of any cell (lstm_cell.h describes what a cell provides; the LSTM is one).
//
// x (T, B, D), w_ih (G·H, D), w_hh (G·H, H), bias (G·H): G gate columns per unit, gate by gate.
// For t < lengths[b]: a_t = x_t·w_ihᵀ + h_{t-1}·w_hhᵀ + bias, then the cell's update of the states
// from a_t (state 0 is h_t = y_t). Rows with t >= lengths[b] keep their states and get y_t = 0.
// From kClaimRowsMax rows (recurrent.h), the rows are ordered by decreasing length once per call,
// so each step's GEMM and cell update cover only the rows still running (the product's rows are
// independent, so the bits do not change).
// Saves for the backward (when asked): the cell's post-activation gates (T, B, G·H; 0 past a
// row's length) and every state (T+1, B, H) with s[0] the initial state and s[t+1] the state
// after step t.
// Numerics: accumulation in T. With B >= kClaimRowsMax each step computes
// [x_t | h_{t-1}]·[w_ih | w_hh]ᵀ (one chain over k = 0 .. D+H-1) with the packed GEMM (the weights
// packed once per call in gate-interleaved order, StepGemm) into a (B, G·H) buffer and the cell
// adds bias to that. With fewer rows x·w_ihᵀ for all steps is one GEMM up front (into the gates buffer,
// overwritten in place by the activations) and each step adds bias and h_{t-1}·w_hhᵀ in
// registers (k increasing, streaming the block's gate-interleaved w_hh panel, see recurrent.h)
// and runs the cell update on the accumulators.
// Threads: one parallel region for the whole sequence. From kClaimRowsMax rows each thread owns a
// fixed range of unit blocks (its slice of w_hh stays in its cache) and the team meets at one
// barrier per step, or, from kOwnRowsMin rows per thread when the packed weights fit one core's
// L2, each thread runs its own rows of the batch through every step and never waits. Below
// kClaimRowsMax, where a step takes a few microseconds, the threads claim the step's blocks
// (own range first, recurrent.h), so a descheduled thread delays a step by at most one block.
// The streaming step claims blocks the same way.
// Every output element is computed by one thread in a fixed order, so results are bitwise
// identical for any thread count. Denormals are flushed inside (per thread).
// Cost: 2·T·B·G·H·(D+H) flops, plus the cell's transcendental functions per B·H per step.
#pragma once

#include <type_traits>

#include "kernels/gemm.h"
#include "kernels/recurrent.h"
#include "kernels/simd.h"
#include "seqkern/cache.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace rnn {

// Multiply-adds of one streaming step per thread before a second thread helps. The step streams
// its packed weights (4 bytes per multiply-add) from L2; measured with a plain matrix-vector
// loop, 384 KiB take 4.0 us on one core and 2.6 us split over two (a parallel region included),
// 192 KiB 2.2 and 1.6 us.
constexpr int64_t kStepCallGrain = 1 << 15;

// Rows of a weight panel per k chunk: 64 rows of 4 gates x 64 bytes = 16 KiB, half of L1.
constexpr int64_t kChunkRows = 64;

// Loads and stores of one vector's first n lanes (all of them when kFull).
template <typename T, bool kFull>
struct Lanes {
  int n;
  simd::Vec<T> load(const T* p) const { return kFull ? simd::Vec<T>::load(p) : simd::Vec<T>::load_n(p, n); }
  void store(simd::Vec<T> x, T* p) const {
    if (kFull) x.store(p); else x.store_n(p, n);
  }
};

// One vector of pairs of a bf16 panel, widened (the tag makes the call depend on the caller's
// template arguments, so that kernels in double never instantiate it).
template <bool kFull, typename Tag, typename Vf>
void load_pairs(Tag, const uint16_t* p, int n, Vf& even, Vf& odd) {
  if (kFull) {
    Vf::load_bf16_pairs(p, even, odd);
  } else {
    Vf::load_bf16_pairs_n(p, n, even, odd);
  }
}

template <typename T>
void copy_or_zero(T* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src ? src[i] : T(0);
}

// h as an operand of the recurrent product: src (zeros when nullptr) times the recurrent dropout
// mask where there is one (RnnParams::h_mask), else src itself.
template <typename T>
void copy_masked(T* dst, const T* src, const T* mask, int64_t n) {
  if (!mask || !src) return copy_or_zero(dst, src, n);
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i] * mask[i];
}

// What one step of the cell reads and writes; rows are B, all arrays C-contiguous.
template <typename Cell, typename T>
struct CellStep {
  static constexpr int G = Cell::kGates, S = Cell::kStates;
  // The layer's sizes and weights; the rest is set per step.
  CellStep(int64_t H_, int64_t D_, const typename Cell::Params& p_)
      : H(H_), D(D_), p(p_), wih_p(p_.wih_p), whh_p(p_.whh_p), bias(p_.bias), h_mask(p_.h_mask) {}

  int64_t H = 0, D = 0;
  const typename Cell::Params& p;
  const T* g_in = nullptr;   // (B, G·H) pre-activations x·w_ihᵀ, or nullptr
  T* part = nullptr;         // per-thread (B, G·U) partial sums between k chunks (nullptr: no chunks)
  const T* x = nullptr;      // (B, D) input for a fused projection with wih_p, or nullptr
  const T* wih_p = nullptr;  // forward panels, K = D
  const T* h_rows = nullptr;  // h_{t-1} for the products: element (m, k) at h_rows[m*h_sm + k*h_sk]
  int64_t h_sm = 0, h_sk = 1;
  const T* whh_p = nullptr;  // forward panels, K = H
  const T* bias = nullptr;   // (G·H) natural order, or nullptr
  const T* h_mask = nullptr;  // (B, H) recurrent dropout mask for h_next, by batch row, or nullptr
  const T* pre = nullptr;    // (B, G·H) h_prev·w_hhᵀ, gate-interleaved columns, row stride ldp, or nullptr
  int64_t ldp = 0;
  const T* prev[S] = {};     // the states before the step (prev[0] = h_{t-1}), (B, H) each
  T* out[S] = {};            // the states after it
  T* h_next = nullptr;       // h_t (times h_mask) as the next step's A operand, row stride ld_next, or nullptr
  int64_t ld_next = 0;
  T* y_out = nullptr;        // (B, H), or nullptr
  T* gates_out = nullptr;    // (B, G·H), may equal g_in, or nullptr
  const int64_t* lengths = nullptr;
  const int64_t* row_of = nullptr;  // batch row of tile row i (pre, h_next), or nullptr: i itself
  int64_t t = 0;

  // Points the step's states and outputs at step t_ of a B-row sequence: the states before it at
  // offset `before` of each state buffer, after it at `after`, the gates and y at step t_ of theirs.
  void at_step(int64_t t_, int64_t B, T* const* bufs, int64_t before, int64_t after, T* gates, T* y) {
    t = t_;
    gates_out = gates ? gates + t * B * G * H : nullptr;
    for (int s = 0; s < S; ++s) {
      prev[s] = bufs[s] + before;
      out[s] = bufs[s] + after;
    }
    y_out = y + t * B * H;
  }

  // Units [u0, u0+n) of row m past its length: states carried, y and the saved gates 0.
  void carry(int64_t m, int64_t u0, int64_t n) const {
    const int64_t o = m * H + u0;
    for (int s = 0; s < S; ++s) copy_or_zero(out[s] + o, prev[s] + o, n);
    if (y_out) copy_or_zero(y_out + o, static_cast<const T*>(nullptr), n);
    for (int q = 0; gates_out && q < G; ++q) {
      copy_or_zero(gates_out + m * G * H + q * H + u0, static_cast<const T*>(nullptr), n);
    }
  }
};

// Rows [m0, m0+R) of unit block j: pre-activations in registers, then the cell update.
// With several row tiles the recurrent sum runs in chunks [kb, ke) of k, so the weight panel
// chunk stays in L1 while every tile passes over it; between chunks the partial sums wait in a
// dense per-thread buffer (exact: they are stored in T, so chunking never changes the result).
// Dense matters: g_in's rows are G·H apart, often a power of two, and would share L1 sets.
template <typename Cell, typename T, int R, bool kFull>
void cell_tile(const CellStep<Cell, T>& a, int64_t m0, int64_t j, int64_t kb, int64_t ke, bool first, bool last) {
  using V = simd::Vec<T>;
  constexpr int W = V::W, U = kUnits<T>, NV = kVecs<T>, G = Cell::kGates, S = Cell::kStates;
  const int64_t H = a.H, NG = G * H;
  const int64_t u0 = j * U;
  const int w = kFull ? U : static_cast<int>(H - u0);
  const BlockLanes<T> lanes(w);
  auto io = [&](int v) { return Lanes<T, kFull>{lanes.cnt[v]}; };

  V acc[R][G][NV];
  for (int r = 0; r < R; ++r) {
    for (int q = 0; q < G; ++q) {
      for (int v = 0; v < NV; ++v) {
        if (!first) {
          acc[r][q][v] = V::load(a.part + ((m0 + r) * G + q) * U + v * W);
          continue;
        }
        V s = a.g_in && q < Cell::kInputColumns ? io(v).load(a.g_in + (m0 + r) * NG + q * H + u0 + v * W)
                                                : V::zero();
        if (a.bias) s = s + io(v).load(a.bias + q * H + u0 + v * W);
        if (a.pre) s = s + io(v).load(a.pre + (m0 + r) * a.ldp + G * u0 + q * w + v * W);
        acc[r][q][v] = s;
      }
    }
  }
  // The products with x (kX) or h over a gate-interleaved panel, only for the gate columns that
  // read that input (the others' weights are a zero block, never multiplied).
  auto reads_of = [](auto kX) { return [](int q) { return panel_reads<Cell>(decltype(kX)::value, q); }; };
  auto slot_of = [](auto kX) { return [](int q) { return panel_slot<Cell>(decltype(kX)::value, q); }; };
  auto accumulate = [&](auto kX, const T* in, int64_t sm, int64_t sk, int64_t K, const T* wp, int64_t k0,
                        int64_t k1) {
    const auto reads = reads_of(kX);
    const auto slot = slot_of(kX);
    constexpr int C = panel_columns<Cell>(decltype(kX)::value);
    const T* panel = wp + j * C * U * K;
    // (Unrolled explicitly: with a gate skipped, GCC kept the loop over q rolled and the
    // accumulators in memory, a store-to-load round trip per multiply-add: 3x slower.)
    for (int64_t k = k0; k < k1; ++k) {
      const T* wr = panel + k * C * w;
      V wv[G][NV];
SEQKERN_UNROLL
      for (int q = 0; q < G; ++q)
SEQKERN_UNROLL
        for (int v = 0; v < NV; ++v) wv[q][v] = reads(q) ? io(v).load(wr + slot(q) * w + v * W) : V::zero();
SEQKERN_UNROLL
      for (int r = 0; r < R; ++r) {
        const V b = V::set1(in[(m0 + r) * sm + k * sk]);
SEQKERN_UNROLL
        for (int q = 0; q < G; ++q)
SEQKERN_UNROLL
          for (int v = 0; v < NV; ++v)
            if (reads(q)) acc[r][q][v] = simd::fmadd(b, wv[q][v], acc[r][q][v]);
      }
    }
  };
  // The same over a bfloat16 panel (ops/lowp.h: rows k and k+1 of a pair interleaved, so one
  // load gives both, widened by a shift and a mask), k increasing as above: the same bits.
  auto accumulate_pairs = [&](auto kX, const T* in, int64_t sm, int64_t sk, int64_t K, const uint16_t* wb,
                              int64_t k0, int64_t k1) {
    const auto reads = reads_of(kX);
    const auto slot = slot_of(kX);
    constexpr int C = panel_columns<Cell>(decltype(kX)::value);
    const uint16_t* panel = wb + j * C * U * (K + (K & 1));
    // The pair of rows (k, k+1), k even; `lo` and `hi` say which of the two to use.
    auto pair = [&](int64_t k, bool lo, bool hi) {
      const uint16_t* wr = panel + k * C * w;
      V we[G][NV], wo[G][NV];
      SEQKERN_UNROLL
      for (int q = 0; q < G; ++q)
        SEQKERN_UNROLL
        for (int v = 0; v < NV; ++v) {
          we[q][v] = wo[q][v] = V::zero();
          if (!reads(q)) continue;
          load_pairs<kFull>(kX, wr + 2 * (slot(q) * w + v * W), lanes.cnt[v], we[q][v], wo[q][v]);
        }
      SEQKERN_UNROLL
      for (int r = 0; r < R; ++r) {
        if (lo) {
          const V b = V::set1(in[(m0 + r) * sm + k * sk]);
          SEQKERN_UNROLL
          for (int q = 0; q < G; ++q)
            SEQKERN_UNROLL
            for (int v = 0; v < NV; ++v)
              if (reads(q)) acc[r][q][v] = simd::fmadd(b, we[q][v], acc[r][q][v]);
        }
        if (hi) {
          const V b = V::set1(in[(m0 + r) * sm + (k + 1) * sk]);
          SEQKERN_UNROLL
          for (int q = 0; q < G; ++q)
            SEQKERN_UNROLL
            for (int v = 0; v < NV; ++v)
              if (reads(q)) acc[r][q][v] = simd::fmadd(b, wo[q][v], acc[r][q][v]);
        }
      }
    };
    int64_t k = k0;
    if (k < k1 && (k & 1)) pair(k++ - 1, false, true);
    for (; k + 1 < k1; k += 2) pair(k, true, true);
    if (k < k1) pair(k, true, false);
  };
  // Over the panel in T, or in bfloat16 where the weights have it (float layers only).
  auto product = [&](auto kX, const T* in, int64_t sm, int64_t sk, int64_t K, const T* wp, const uint16_t* wb,
                     int64_t k0, int64_t k1) {
    if constexpr (std::is_same<T, float>::value) {
      if (wb) return accumulate_pairs(kX, in, sm, sk, K, wb, k0, k1);
    }
    accumulate(kX, in, sm, sk, K, wp, k0, k1);
  };
  if (a.x && first) product(std::true_type{}, a.x, a.D, 1, a.D, a.wih_p, a.p.wih_b, 0, a.D);
  if (ke > kb) product(std::false_type{}, a.h_rows, a.h_sm, a.h_sk, H, a.whh_p, a.p.whh_b, kb, ke);
  if (!last) {
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < G; ++q)
        for (int v = 0; v < NV; ++v) acc[r][q][v].store(a.part + ((m0 + r) * G + q) * U + v * W);
    return;
  }

  for (int r = 0; r < R; ++r) {
    const int64_t ri = m0 + r;
    const int64_t m = a.row_of ? a.row_of[ri] : ri;
    const int64_t o = m * H + u0;
    if (a.lengths && a.t >= a.lengths[m]) {
      // Past this row's length: carry the states, output 0.
      a.carry(m, u0, w);
      if (a.h_next) copy_masked(a.h_next + ri * a.ld_next + u0, a.prev[0] + o, a.h_mask ? a.h_mask + o : nullptr, w);
      continue;
    }
    for (int v = 0; v < NV; ++v) {
      const int64_t ov = o + v * W;
      const T* prev[S];
      T* out[S];
      for (int s = 0; s < S; ++s) {
        prev[s] = a.prev[s] + ov;
        out[s] = a.out[s] + ov;
      }
      V gate_acc[G];
      for (int q = 0; q < G; ++q) gate_acc[q] = acc[r][q][v];
      T* gp = a.gates_out ? a.gates_out + m * NG + u0 + v * W : nullptr;
      const V h = Cell::forward(a.p, H, u0 + v * W, gate_acc, prev, out, gp, io(v));
      io(v).store(h, out[0]);
      if (a.h_next) io(v).store(a.h_mask ? h * io(v).load(a.h_mask + ov) : h, a.h_next + ri * a.ld_next + u0 + v * W);
      if (a.y_out) io(v).store(h, a.y_out + ov);
    }
  }
}

template <typename Cell, typename T, int R, bool kFull>
void cell_rows(const CellStep<Cell, T>& a, int64_t m0, int rows, int64_t j, int64_t kb, int64_t ke, bool first,
               bool last) {
  if constexpr (R > 0) {
    if (rows == R) {
      cell_tile<Cell, T, R, kFull>(a, m0, j, kb, ke, first, last);
    } else {
      cell_rows<Cell, T, R - 1, kFull>(a, m0, rows, j, kb, ke, first, last);
    }
  }
}

// All B rows of unit blocks [j0, j1).
template <typename Cell, typename T>
void cell_blocks(const CellStep<Cell, T>& a, int64_t B, int64_t j0, int64_t j1) {
  constexpr int U = kUnits<T>;
  constexpr int MR = kCellRows<T, Cell::kGates>;
  if (a.pre) {
    // After the step's GEMM there is nothing left to accumulate: walk each row's blocks in
    // order, so the reads of `pre` (gate-interleaved, a row's blocks side by side) are
    // sequential; block by block, they jumped a whole row stride at every call.
    for (int64_t m = 0; m < B; ++m) {
      for (int64_t j = j0; j < j1; ++j) {
        if ((j + 1) * U <= a.H) {
          cell_tile<Cell, T, 1, true>(a, m, j, 0, 0, true, true);
        } else {
          cell_tile<Cell, T, 1, false>(a, m, j, 0, 0, true, true);
        }
      }
    }
    return;
  }
  // Rows in equal tiles (32 = 6+6+5+5+5+5, not 6*5+2): a thin last tile would waste its pass
  // over the weight panel.
  const int64_t tiles = (B + MR - 1) / MR;
  const int64_t chunks = tiles > 1 && a.part ? (a.H + kChunkRows - 1) / kChunkRows : 1;
  for (int64_t j = j0; j < j1; ++j) {
    const bool full = (j + 1) * U <= a.H;
    for (int64_t ch = 0; ch < chunks; ++ch) {
      const int64_t kb = a.H * ch / chunks, ke = a.H * (ch + 1) / chunks;
      const bool first = ch == 0, last = ch == chunks - 1;
      for (int64_t tile = 0; tile < tiles; ++tile) {
        const int64_t m0 = B * tile / tiles;
        const int rows = static_cast<int>(B * (tile + 1) / tiles - m0);
        if (full) {
          cell_rows<Cell, T, MR, true>(a, m0, rows, j, kb, ke, first, last);
        } else {
          cell_rows<Cell, T, MR, false>(a, m0, rows, j, kb, ke, first, last);
        }
      }
    }
  }
}

// The forward's per-step product [x_t | h_{t-1}]·[w_ih | w_hh]ᵀ for the GEMM path: the weights'
// rows in the gate-interleaved block order (block j's columns j*G*U + q*w + r, see recurrent.h),
// packed once per call, K = D + H.
template <typename Cell, typename T>
struct StepGemm {
  static constexpr int G = Cell::kGates;
  int64_t H = 0;
  gemm::PackedB<T> w;
  // Unit blocks per thread share come in multiples of this, so that a share's first column starts
  // a packed panel (a GEMM over columns [n0, n1) needs n0 at a panel boundary: with one gate,
  // blocks of 16 floats and panels of 32, an odd first block would read the wrong panel).
  int64_t align = 1;

  StepGemm(int64_t D, int64_t H_, const T* w_ih, const T* w_hh) : H(H_) {
    constexpr int64_t U = kUnits<T>, NR = gemm::PackedB<T>::panel_width;
    const int64_t KX = D + H;
    while ((G * U * align) % NR != 0) ++align;
    simd::Buffer<T> perm(G * H * KX);
    for (int64_t j = 0; j < num_blocks(H, U); ++j) {
      const int64_t u0 = j * U, wd = block_width(j, H, U);
      for (int64_t q = 0; q < G; ++q)
        for (int64_t r = 0; r < wd; ++r) {
          const int64_t n = q * H + u0 + r;
          T* dst = perm.data() + (G * u0 + q * wd + r) * KX;
          copy_or_zero(dst, w_ih + n * D, D);
          copy_or_zero(dst + D, w_hh + n * H, H);
        }
    }
    w.pack(true, KX, G * H, perm.data(), KX);
  }

  int64_t bytes() const { return w.rows() * w.cols() * static_cast<int64_t>(sizeof(T)); }

  // Rows [0, M) of the columns of unit blocks [jb, je) (jb a multiple of align) from A rows
  // [x_t | h_{t-1}] (stride lda) into pre (stride ldp).
  void run(int64_t M, const T* A, int64_t lda, T* pre, int64_t ldp, int64_t jb, int64_t je) const {
    constexpr int64_t U = kUnits<T>;
    const int64_t c0 = G * jb * U, c1 = G * je * U < G * H ? G * je * U : G * H;
    if (c1 > c0) gemm::gemm_packed<T>(false, M, T(1), A, lda, w, T(0), pre, ldp, c0, c1);
  }
};

// The GEMM path split by batch rows: thread `tid` of `team` runs the rows tid, tid + team, ... of
// the length order (every row when `order` is null: the identity) through every step on buffers
// of its own. Rows never depend on each other, so the threads never wait for one another; each
// streams all the packed weights every step (rnn_forward chooses this when they fit its L2).
// `slot(t)` is the offset of step t's states in the state buffers.
template <typename Cell, typename T, typename Slot>
void own_rows_loop(CellStep<Cell, T>& a, int tid, int team, int64_t T_, int64_t B, const T* x, const T* h0,
                   const int64_t* lengths, const int64_t* order, const StepGemm<Cell, T>& w_pk, int64_t ldx,
                   int64_t ldp, T* const* bufs, Slot slot, T* y, T* gates) {
  const int64_t D = a.D, H = a.H;
  const int64_t rows = (B - tid + team - 1) / team;
  if (rows <= 0) return;
  simd::Buffer<int64_t> row_of(rows);
  for (int64_t i = 0; i < rows; ++i) row_of[i] = order ? order[tid + i * team] : tid + i * team;
  simd::Buffer<T> xh(2 * rows * ldx), pre(rows * ldp);
  for (int64_t i = 0; i < rows; ++i) {
    copy_or_zero(xh.data() + i * ldx, x + row_of[i] * D, D);
    copy_masked(xh.data() + i * ldx + D, h0 ? h0 + row_of[i] * H : nullptr,
                a.h_mask ? a.h_mask + row_of[i] * H : nullptr, H);
  }
  a.pre = pre.data();
  a.ldp = ldp;
  a.ld_next = ldx;
  a.row_of = row_of.data();
  int64_t active = rows;  // this thread's rows with t < length: the first ones (decreasing lengths)
  for (int64_t t = 0; t < T_; ++t) {
    if (lengths) {
      while (active > 0 && lengths[row_of[active - 1]] <= t) --active;
    }
    a.at_step(t, B, bufs, slot(t), slot(t + 1), gates, y);
    const T* xh_t = xh.data() + (t & 1) * rows * ldx;
    T* xh_next = xh.data() + ((t + 1) & 1) * rows * ldx;
    a.h_next = xh_next + D;
    w_pk.run(active, xh_t, ldx, pre.data(), ldp, 0, num_blocks(H, kUnits<T>));
    if (t + 1 < T_) {
      for (int64_t i = 0; i < active; ++i) copy_or_zero(xh_next + i * ldx, x + ((t + 1) * B + row_of[i]) * D, D);
    }
    cell_blocks(a, active, 0, num_blocks(H, kUnits<T>));
    for (int64_t i = active; i < rows; ++i) a.carry(row_of[i], 0, H);  // past their length
  }
}

// Packs w_ih (G·H, D) and w_hh (G·H, H) into the gate-interleaved panels of recurrent.h (G·H·D
// and G·H·H values, the part past the panels' C·H·K zero); either output may be nullptr.
template <typename Cell, typename T>
void rnn_pack(const RnnShape& sh, const T* w_ih, const T* w_hh, T* wih_p, T* whh_p) {
  constexpr int G = Cell::kGates;
  const int64_t D = sh.D, H = sh.H, U = kUnits<T>;
  auto pack = [&](bool x, const T* w_in, int64_t K, T* out) {
    if (!out) return;
    const int64_t C = panel_columns<Cell>(x);
    copy_or_zero(out + C * H * K, static_cast<const T*>(nullptr), (G - C) * H * K);
    for (int64_t j = 0; j < num_blocks(H, U); ++j) {
      const int64_t u0 = j * U, w = block_width(j, H, U);
      T* panel = out + j * C * U * K;
      for (int q = 0; q < G; ++q) {
        if (!panel_reads<Cell>(x, q)) continue;
        const int64_t col = panel_slot<Cell>(x, q) * w;
        for (int64_t r = 0; r < w; ++r) {
          const T* row = w_in + (q * H + u0 + r) * K;
          for (int64_t k = 0; k < K; ++k) panel[k * C * w + col + r] = row[k];
        }
      }
    }
  };
  pack(true, w_ih, D, wih_p);
  pack(false, w_hh, H, whh_p);
}

// The entries with int8 weights (lowp_int8.h).
template <typename Cell>
void rnn_forward_i8(const RnnShape& sh, const float* x, const typename Cell::Params& p, const float* const* init,
                    const int64_t* lengths, float* y, float* const* last);
template <typename Cell>
void rnn_step_i8(const RnnShape& sh, const float* x, const typename Cell::Params& p, const float* const* prev,
                 float* const* out);

// The forward entry of ops/recurrent.h over x (T, B, D).
template <typename Cell, typename T>
void rnn_forward(const RnnShape& sh, const T* x, const typename Cell::Params& p, const T* const* init,
                 const int64_t* lengths, T* y, T* const* last, T* gates, T* const* saved) {
  constexpr int G = Cell::kGates, S = Cell::kStates;
  const int64_t T_ = sh.T, B = sh.B, D = sh.D, H = sh.H;
  const int64_t NG = G * H, BH = B * H;
  if (BH == 0) return;
  if constexpr (std::is_same<T, float>::value) {
    if (p.i8) return rnn_forward_i8<Cell>(sh, x, p, init, lengths, y, last);
  }
  simd::DenormalGuard guard;
  constexpr int64_t U = kUnits<T>;
  const int64_t nb = num_blocks(H, U);
  // From a few rows up, each step is one packed GEMM [x_t | h_{t-1}]·[w_ih | w_hh]ᵀ (K = D+H)
  // over the weights' rows in the gate-interleaved block order (block j's columns
  // j*G*U + q*w + r, see recurrent.h), into a (B, G·H) buffer whose row stride avoids a power
  // of two; the cell update then reads it while it is still in L1/L2. The A operand lives in
  // two ping-pong (B, D+H) buffers: the cell of step t writes h_t into the one step t+1 reads.
  // (One GEMM for the input projection of all steps up front would leave a T·B·G·H buffer that
  // the cell reads back from memory, step by step.)
  const bool use_gemm = B >= kClaimRowsMax && !p.tiles_only;
  const int64_t KX = D + H;
  const int64_t ldx = KX % 16 == 0 ? KX + 16 : KX;  // row stride of the A buffers
  std::unique_ptr<StepGemm<Cell, T>> w_pk;
  simd::Buffer<T> pre, xh;
  simd::Buffer<int64_t> order;
  int64_t ldp = 0;
  simd::Buffer<T> scratch;
  T* Gx = nullptr;
  if (use_gemm) {
    w_pk.reset(new StepGemm<Cell, T>(D, H, p.w_ih, p.w_hh));
    ldp = (NG + 15) / 16 * 16 + 16;
    if (lengths) {
      // Rows by decreasing length (stable): the rows still running at step t are then the
      // first ones of the A buffers, and the step's GEMM and cell update cover only those.
      order.reset(B);
      for (int64_t i = 0; i < B; ++i) {
        int64_t k = i;
        for (; k > 0 && lengths[order[k - 1]] < lengths[i]; --k) order[k] = order[k - 1];
        order[k] = i;
      }
    }
  } else {
    Gx = gates;
    if (!Gx) {
      scratch.reset(T_ * B * NG);
      Gx = scratch.data();
    }
    // The input projection of every step in one GEMM (of the gate columns that read x).
    const int64_t NX = Cell::kInputColumns * H;
    gemm::gemm_mt<T>(false, true, T_ * B, NX, D, T(1), x, D, p.w_ih, D, T(0), Gx, NG,
                     simd::threads_for(T_ * B * NX * D, kGemmGrain));
  }

  // States: the cache's (T+1, B, H) arrays, or two ping-pong buffers each without a cache.
  simd::Buffer<T> state;
  T* bufs[S];
  if (!saved) state.reset(2 * S * BH);
  for (int s = 0; s < S; ++s) {
    bufs[s] = saved ? saved[s] : state.data() + 2 * s * BH;
    copy_or_zero(bufs[s], init[s], BH);
  }
  const T* h0 = init[0];
  auto slot = [&](int64_t t) { return saved ? t * BH : (t & 1) * BH; };

  int nt = simd::threads_for(B * NG * (use_gemm ? KX : H), use_gemm ? kStepGrain : kClaimGrain);
  // With enough rows per thread, the GEMM path splits the batch instead of the units when the
  // packed weights fit one core's L2 whole: no per-step barrier, and no unit blocks to share
  // unevenly (H = 100 is 7 blocks). Larger weights keep the unit split, which streams each
  // weight once per step between the cores. Measured on Zen 3 (512 KiB L2), 2 threads, the two
  // splits alternating in one process: weights of 288-512 KiB took 0.76-0.83x the unit split's
  // time split by rows; 1.5 and 6 MiB (each core streaming all of them from L3) 0.96-1.03x, no
  // gain. Every row is computed the same way either way, so the choice never changes a bit.
  const int64_t w_bytes = use_gemm ? w_pk->bytes() : 0;
  const bool by_rows = use_gemm && nt > 1 && B >= nt * kOwnRowsMin && w_bytes <= cache_bytes(2);
  if (!by_rows && nt > nb) nt = static_cast<int>(nb);
  if (use_gemm && !by_rows) {
    pre.reset(B * ldp);
    xh.reset(2 * B * ldx);
    for (int64_t i = 0; i < B; ++i) {
      const int64_t m = lengths ? order[i] : i;
      copy_or_zero(xh.data() + i * ldx, x + m * D, D);
      copy_masked(xh.data() + i * ldx + D, h0 ? h0 + m * H : nullptr, p.h_mask ? p.h_mask + m * H : nullptr, H);
    }
  }
  // Small batches share each step's unit blocks by claiming (recurrent.h), large ones split
  // them once and meet at a barrier (claiming measured 4% slower there: twice the GEMM calls,
  // each half as wide).
  std::unique_ptr<RoundClaims> claims;
  if (nt > 1 && !use_gemm) claims.reset(new RoundClaims(nb, nt));
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    simd::DenormalGuard thread_guard;
    const int tid = simd::team_rank(), team = simd::team_size();
    // Unit blocks of this thread (in multiples of the GEMM's alignment on the GEMM path).
    const int64_t align = use_gemm ? w_pk->align : 1;
    int64_t j0, j1;
    split_range((nb + align - 1) / align, team, tid, &j0, &j1);
    j0 *= align;
    j1 = j1 * align < nb ? j1 * align : nb;
    int64_t m0, m1;
    split_range(B, team, tid, &m0, &m1);
    // h_{t-1} transposed to (H, B): a tile's rows for one k then share a cache line, where rows
    // H apart (a power of two, often) would fight over the same L1 sets. (One row is read in
    // place, unless it is to be masked.)
    const bool h_copy = B > 1 || p.h_mask;
    simd::Buffer<T> h_t(h_copy && !use_gemm ? BH : 0);
    simd::Buffer<T> part(use_gemm ? 0 : B * G * U);
    CellStep<Cell, T> a(H, D, p);
    a.lengths = lengths;
    a.part = part.data();
    if (by_rows) {
      own_rows_loop(a, tid, team, T_, B, x, h0, lengths, lengths ? order.data() : nullptr, *w_pk, ldx, ldp, bufs,
                    slot, y, gates);
    } else if (use_gemm) {
      a.pre = pre.data();
      a.ldp = ldp;
      a.ld_next = ldx;
      a.row_of = lengths ? order.data() : nullptr;
    }
    int64_t active = B;  // rows with t < length (the first ones in `order`)
    for (int64_t t = 0; t < (by_rows ? 0 : T_); ++t) {  // (own_rows_loop ran the steps)
      a.at_step(t, B, bufs, slot(t), slot(t + 1), gates, y);
      const T* xh_t = nullptr;
      T* xh_next = nullptr;
      if (use_gemm) {
        if (lengths) {
          while (active > 0 && lengths[order[active - 1]] <= t) --active;
        }
        xh_t = xh.data() + (t & 1) * B * ldx;
        xh_next = xh.data() + ((t + 1) & 1) * B * ldx;
        a.h_next = xh_next + D;
      } else {
        a.g_in = Gx + t * B * NG;
        if (h_copy) {
          a.h_rows = h_t.data();
          a.h_sm = 1;
          a.h_sk = B;
        } else {
          a.h_rows = a.prev[0];
          a.h_sm = H;
          a.h_sk = 1;
        }
      }
      // Unit blocks [jb, je) of a step without GEMM; h_{t-1} is transposed at the first.
      bool have_h = !h_copy;
      auto tile_blocks = [&](int64_t jb, int64_t je) {
        if (!have_h) {
          const T* hm = p.h_mask;
          for (int64_t m = 0; m < B; ++m)
            for (int64_t k = 0; k < H; ++k) {
              const T v = a.prev[0][m * H + k];
              h_t[k * B + m] = hm ? v * hm[m * H + k] : v;
            }
          have_h = true;
        }
        cell_blocks(a, B, jb, je);
      };
      // Unit blocks [jb, je) of a GEMM step, and rows [r0, r1) of x_{t+1} into the next A buffer,
      // which was last read in step t-1.
      auto gemm_blocks = [&](int64_t jb, int64_t je, int64_t r0, int64_t r1) {
        w_pk->run(active, xh_t, ldx, pre.data(), ldp, jb, je);
        if (t + 1 < T_) {
          for (int64_t i = r0; i < r1 && i < active; ++i) {
            const int64_t m = lengths ? order[i] : i;
            copy_or_zero(xh_next + i * ldx, x + ((t + 1) * B + m) * D, D);
          }
        }
        cell_blocks(a, active, jb, je);
        // Rows past their length: carry the states, output 0.
        const int64_t ua = jb * U, ub = je * U < H ? je * U : H;
        for (int64_t i = active; i < B; ++i) {
          if (ub > ua) a.carry(order[i], ua, ub - ua);
        }
      };
      if (claims) {
        // Small batches: h_{t-1} is read only once this thread holds a block of step t; until
        // that block is done no thread can start step t+1 and overwrite it (ping-pong buffers).
        claims->finish(t, claims->run(t, tid, team, tile_blocks));
        continue;
      }
      if (use_gemm) {
        gemm_blocks(j0, j1, m0, m1);
      } else {
        tile_blocks(j0, j1);
      }
      // Step t+1 reads all of h_t; with ping-pong buffers this also keeps step t+1 from
      // overwriting what a slower thread still reads in step t.
#pragma omp barrier
    }
  }
  for (int s = 0; s < S; ++s) copy_or_zero(last[s], bufs[s] + slot(T_), BH);
}

// The step entry of ops/recurrent.h (no lengths; both packed panels).
template <typename Cell, typename T>
void rnn_step(const RnnShape& sh, const T* x, const typename Cell::Params& p, const T* const* prev, T* const* out) {
  const int64_t B = sh.B, D = sh.D, H = sh.H;
  if (B * H == 0) return;
  if constexpr (std::is_same<T, float>::value) {
    if (p.i8) return rnn_step_i8<Cell>(sh, x, p, prev, out);
  }
  CellStep<Cell, T> a(H, D, p);
  a.x = x;
  a.h_rows = prev[0];
  a.h_sm = H;
  for (int s = 0; s < Cell::kStates; ++s) {
    a.prev[s] = prev[s];
    a.out[s] = out[s];
  }
  const int64_t nb = num_blocks(H, kUnits<T>);
  // A second thread halves each core's weight traffic (its share stays in its own L2 between
  // calls). The blocks are claimed, so a thread that starts late finds its share done; the
  // region still ends only when every thread of the team has arrived.
  int nt = simd::threads_for(B * Cell::kGates * H * (D + H), kStepCallGrain);
  if (nt > nb) nt = static_cast<int>(nb);
  if (nt <= 1) {
    simd::DenormalGuard guard;
    cell_blocks(a, B, 0, nb);
    return;
  }
  RoundClaims claims(nb, nt);
#pragma omp parallel num_threads(nt)
  {
    simd::DenormalGuard guard;
    claims.run(0, simd::team_rank(), simd::team_size(), [&](int64_t jb, int64_t je) { cell_blocks(a, B, jb, je); });
  }
}

// The forward entries of a cell's family.
template <typename Cell, typename T, typename Ops>
void register_forward(Ops& ops) {
  ops.pack = &rnn_pack<Cell, T>;
  ops.forward = &rnn_forward<Cell, T>;
  ops.step = &rnn_step<Cell, T>;
}

}  // namespace rnn
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern

#include "kernels/lowp_int8.h"
