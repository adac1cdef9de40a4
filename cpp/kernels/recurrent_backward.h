// recurrent_backward.h: the exact backward (BPTT) over a full sequence of any cell
// (lstm_cell.h describes what a cell provides), from the forward's cache.
//
// Saved: the cell's gates (T, B, G·H) and states (T+1, B, H). For t = T-1 .. 0 and each row b
// with t < lengths[b], with dh = dy_t + dh_t and the other states' gradients carried from step
// t+1 (rows past their length pass them through and get da = 0): the cell's hook gives da_t (the
// pre-activation gradients) and the carried gradients for step t-1, and
//   dh_{t-1} = da_t·w_hh (+ the cell's direct term)      dbias = Σ da
// Only the recurrent part stays in the time loop: the element-wise gate derivatives and
// dh_{t-1} = da_t·w_hh. da for all steps is stored (T·B, G·H, natural gate order), and after the
// loop dx = da·w_ih, dw_ih = daᵀ·x and dw_hh = daᵀ·h_{t-1} are single GEMMs; dbias and the
// cell's own parameter gradients are summed in the loop while da is in registers (rows past
// their length have da = 0).
// Threads: one parallel region for the loop; each thread owns a fixed range of units (whole
// unit blocks and whole gemm panels), computes da and the carried gradients for them, waits at
// the step's one barrier, then its units of dh_{t-1} (which only it reads next) with the packed
// GEMM over w_hh packed once per call. Small batches claim the units instead, in two rounds per
// step (da, then dh_{t-1}; recurrent.h). Every sum runs in a fixed order (k increasing in the
// products, t descending then b increasing for the parameter sums), so results are bitwise
// identical for any thread count.
// Cost: 2·T·B·G·H·H flops in the loop, 2·T·B·G·H·(2D+H) in the GEMMs after it (about twice the
// forward); scratch T·B·G·H values for da.
#pragma once

#include "kernels/gemm.h"
#include "kernels/recurrent.h"
#include "kernels/recurrent_forward.h"
#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace rnn {

struct BwdStep {
  int64_t H = 0;
  int64_t t = 0;
  const int64_t* lengths = nullptr;
  bool active(int64_t m) const { return !lengths || t < lengths[m]; }
};

// The element-wise part of step t for unit block j, all rows: da (natural order) from the
// cell's hook, and the carried state gradients. prev/cur: the state buffers at steps t and t+1;
// dstate: dh (state 0, read) and the carried gradients (states 1.., read and written).
template <typename Cell, typename T>
void gate_grads(const BwdStep& st, int64_t B, int64_t j, const typename Cell::Params& p, const T* gates,
                const T* const* prev, const T* const* cur, const T* dy, T* const* dstate, T* da, T* dparam,
                T* db) {
  using V = simd::Vec<T>;
  constexpr int W = V::W, U = kUnits<T>, NV = kVecs<T>, G = Cell::kGates, S = Cell::kStates;
  const int64_t H = st.H, NG = G * H;
  const int64_t u0 = j * U;
  const int w = block_width(j, H, U);
  const BlockLanes<T> lanes(w);
  for (int64_t m = 0; m < B; ++m) {
    const int64_t o = m * H + u0;
    T* dam = da + m * NG + u0;
    if (!st.active(m)) {
      for (int v = 0; v < NV; ++v) {
        for (int q = 0; q < G; ++q) V::zero().store_n(dam + q * H + v * W, lanes.cnt[v]);
      }
      continue;
    }
    const T* gm = gates + m * NG + u0;
    for (int v = 0; v < NV; ++v) {
      const Lanes<T, false> io{lanes.cnt[v]};
      if (io.n == 0) break;
      const int64_t ov = o + v * W;
      V dhv = io.load(dstate[0] + ov);
      if (dy) dhv = dhv + io.load(dy + ov);
      const T* pv[S];
      const T* cv[S];
      T* dv[S];
      for (int s = 0; s < S; ++s) {
        pv[s] = prev[s] + ov;
        cv[s] = cur[s] + ov;
        dv[s] = dstate[s] + ov;
      }
      Cell::backward(p, H, u0 + v * W, gm + v * W, pv, cv, dhv, dv, dam + v * W, db ? db + u0 + v * W : nullptr,
                     dparam, io);
    }
  }
}

// The backward entry of ops/recurrent.h; dparam holds Cell::param_size(H) values.
template <typename Cell, typename T>
void rnn_backward(const RnnShape& sh, const T* x, const typename Cell::Params& p, const int64_t* lengths,
                  const T* gates, const T* const* saved, const T* dy, const T* const* d_last, T* dx, T* dw_ih,
                  T* dw_hh, T* dbias, T* const* d_init, T* dparam) {
  constexpr int G = Cell::kGates, S = Cell::kStates;
  const int64_t T_ = sh.T, B = sh.B, D = sh.D, H = sh.H;
  const int64_t NG = G * H, BH = B * H, R = T_ * B;
  simd::DenormalGuard guard;
  for (int s = 0; s < S; ++s) copy_or_zero(d_init[s], d_last[s], BH);
  if (dparam) copy_or_zero<T>(dparam, nullptr, Cell::param_size(H));
  copy_or_zero<T>(dbias, nullptr, NG);
  simd::Buffer<T> da_buf(R * NG);
  T* da = da_buf.data();
  T* dh0 = d_init[0];
  const T* hs = saved[0];

  // dh_{t-1} = da_t·w_hh with w_hh packed once for the whole loop (K = G·H, N = H). Threads own
  // granules of GU units: whole unit blocks (gate_grads) and whole panels (gemm_packed columns).
  const gemm::PackedB<T> whh_pk(false, NG, H, p.w_hh, H);
  constexpr int64_t U = kUnits<T>;
  constexpr int64_t NR = gemm::PackedB<T>::panel_width;
  constexpr int64_t GU = U > NR ? U : NR;
  // A granule must be whole unit blocks and whole panels, or two threads would compute one
  // block (its da) or one panel (its dh columns): true while one width divides the other.
  static_assert(GU % U == 0 && GU % NR == 0, "a backward granule must be whole unit blocks and whole panels");
  const int64_t ng = (H + GU - 1) / GU;
  // Small batches share each step's granules by claiming (recurrent.h), in two rounds per
  // step (da, then dh_{t-1}); larger ones split them once and meet at one barrier per step.
  const bool claim = B < kClaimRowsMax;
  int nt = simd::threads_for(B * NG * H, claim ? kClaimGrain : kStepGrain);
  if (nt > ng) nt = static_cast<int>(ng);
  std::unique_ptr<RoundClaims> claims;
  if (claim && nt > 1) claims.reset(new RoundClaims(ng, nt));
  // Rows past their length keep dh: the product then goes to scratch and only active rows are
  // copied. A cell whose update reads h_{t-1} itself (Cell::kDirectDh) leaves its own term of
  // dh_{t-1} in dh0 (its hook writes it where it read dh), and the product is added to it.
  constexpr bool kDirect = Cell::kDirectDh;
  // With a recurrent dropout mask the product's input was h_{t-1}·mask: its gradient is the
  // product times the mask (and dw_hh's operand the masked states).
  const T* hm = p.h_mask;
  const bool via_new = lengths || kDirect || hm;
  simd::Buffer<T> dh_new(via_new ? BH : 0);
  if (R > 0 && H > 0) {
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
      simd::DenormalGuard thread_guard;
      const int tid = simd::team_rank(), team = simd::team_size();
      BwdStep st;
      st.H = H;
      st.lengths = lengths;
      // Granules [g0, g1): their unit blocks' da and carried gradients, then their units of dh_{t-1}.
      auto grads = [&](int64_t g0, int64_t g1) {
        const int64_t u0 = g0 * GU, u1 = g1 * GU < H ? g1 * GU : H;
        const int64_t t = st.t;
        const T* prev[S];
        const T* cur[S];
        for (int s = 0; s < S; ++s) {
          prev[s] = saved[s] + t * BH;
          cur[s] = saved[s] + (t + 1) * BH;
        }
        for (int64_t j = u0 / U; j < (u1 + U - 1) / U; ++j) {
          gate_grads<Cell>(st, B, j, p, gates + t * B * NG, prev, cur, dy ? dy + t * BH : nullptr, d_init,
                           da + t * B * NG, dparam, dbias);
        }
      };
      auto product = [&](int64_t g0, int64_t g1) {
        const int64_t u0 = g0 * GU, u1 = g1 * GU < H ? g1 * GU : H;
        if (u1 <= u0) return;
        T* out = via_new ? dh_new.data() : dh0;
        gemm::gemm_packed<T>(false, B, T(1), da + st.t * B * NG, NG, whh_pk, T(0), out, H, u0, u1);
        if (via_new) {
          for (int64_t m = 0; m < B; ++m) {
            if (!st.active(m)) continue;
            T* d = dh0 + m * H;
            const T* o = out + m * H;
            const T* mk = hm ? hm + m * H : nullptr;
            for (int64_t u = u0; u < u1; ++u) {
              const T g = mk ? o[u] * mk[u] : o[u];
              d[u] = kDirect ? g + d[u] : g;
            }
          }
        }
      };
      int64_t g0, g1;
      split_range(ng, team, tid, &g0, &g1);
      for (int64_t t = T_ - 1; t >= 0; --t) {
        st.t = t;
        if (claims) {
          const int64_t round = 2 * (T_ - 1 - t);
          claims->finish(round, claims->run(round, tid, team, grads));
          claims->finish(round + 1, claims->run(round + 1, tid, team, product));
          continue;
        }
        grads(g0, g1);
        // dh_{t-1} needs all of da_t; it then writes only this thread's units of dh, which only
        // this thread reads in step t-1, so one barrier per step suffices.
#pragma omp barrier
        product(g0, g1);
      }
    }
  }
  const int gt = simd::threads_for(R * NG * (D > H ? D : H), kGemmGrain);
  gemm::gemm_mt<T>(false, false, R, D, NG, T(1), da, NG, p.w_ih, D, T(0), dx, D, gt);
  gemm::gemm_mt<T>(true, false, NG, D, R, T(1), da, NG, x, D, T(0), dw_ih, D, gt);
  simd::Buffer<T> hs_masked(hm ? R * H : 0);
  if (hm) {
    // dw_hh's operand: the states as the products read them (element-wise, any split gives the same bits).
    T* dst = hs_masked.data();
#pragma omp parallel for num_threads(gt) if (gt > 1)
    for (int64_t t = 0; t < T_; ++t) copy_masked(dst + t * BH, hs + t * BH, hm, BH);
    hs = dst;
  }
  gemm::gemm_mt<T>(true, false, NG, H, R, T(1), da, NG, hs, H, T(0), dw_hh, H, gt);
}

// The backward entry of a cell's family.
template <typename Cell, typename T, typename Ops>
void register_backward(Ops& ops) {
  ops.backward = &rnn_backward<Cell, T>;
}

}  // namespace rnn
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
