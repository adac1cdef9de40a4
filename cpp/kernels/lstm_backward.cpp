// lstm_backward.cpp: exact LSTM backward (BPTT) over a full sequence, from lstm_forward's cache.
//
// Saved: gates i, f, g, o (T, B, 4H), hs and cs (T+1, B, H); tanh(c_t) is
// recomputed. For t = T-1 .. 0 and each row b with t < lengths[b], with dh = dy_t + dh_t and
// dc = dc_t carried from step t+1 (rows past their length pass dh, dc through and get da = 0):
//   da_o = dh⊙tanh(c_t)⊙o(1-o)
//   dc  += dh⊙o⊙(1-tanh²(c_t)) + da_o⊙p_o
//   da_i = dc⊙g⊙i(1-i)   da_f = dc⊙c_{t-1}⊙f(1-f)   da_g = dc⊙i⊙(1-g²)
//   dc_{t-1} = dc⊙f + da_i⊙p_i + da_f⊙p_f           dh_{t-1} = da_t·w_hh
//   dp_i = Σ da_i⊙c_{t-1}   dp_f = Σ da_f⊙c_{t-1}   dp_o = Σ da_o⊙c_t   dbias = Σ da
// Only the recurrent part stays in the time loop: the element-wise gate derivatives and
// dh_{t-1} = da_t·w_hh. da for all steps is stored (T·B, 4H, natural gate order), and after the
// loop dx = da·w_ih, dw_ih = daᵀ·x and dw_hh = daᵀ·h_{t-1} are single GEMMs; dbias and dpeephole
// are summed in the loop while da is in registers (rows past their length have da = 0).
// Threads: one parallel region for the loop; each thread owns a fixed range of units (whole
// unit blocks and whole gemm panels), computes da and dc for them, waits at the step's one
// barrier, then its units of dh_{t-1} (which only it reads next) with the packed GEMM over
// w_hh packed once per call. Small batches claim the units instead, in two rounds per step (da
// and dc, then dh_{t-1}; lstm_common.h). Every sum runs in a fixed order (k increasing in the
// products, t descending then b increasing for dpeephole and dbias), so
// results are bitwise identical for any thread count.
// Cost: 2·T·B·4H·H flops in the loop, 2·T·B·4H·(2D+H) in the GEMMs after it (about twice the
// forward); scratch T·B·4H values for da.
#include "kernels/gemm.h"
#include "kernels/lstm_common.h"
#include "kernels/registry.h"
#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

namespace {

using simd::Vec;

struct BwdStep {
  int64_t H = 0;
  int64_t t = 0;
  const int64_t* lengths = nullptr;
  bool active(int64_t m) const { return !lengths || t < lengths[m]; }
};

// The element-wise part of step t for unit block j, all rows: da (natural order) and dc_{t-1}.
template <typename T>
void gate_grads(const BwdStep& st, int64_t B, int64_t j, const T* gates, const T* c_prev, const T* c_cur,
                const T* dy, const T* peep, const T* dh, T* dc, T* da, T* dp, T* db) {
  using V = Vec<T>;
  constexpr int W = V::W;
  constexpr int U = lstm::kUnits<T>;
  constexpr int NV = lstm::kVecs<T>;
  const int64_t H = st.H, N4 = 4 * H;
  const int64_t u0 = j * U;
  const int w = lstm::block_width(j, H, U);
  const lstm::BlockLanes<T> lanes(w);
  const V one = V::set1(T(1));
  for (int64_t m = 0; m < B; ++m) {
    const int64_t o = m * H + u0;
    T* dam = da + m * N4 + u0;
    if (!st.active(m)) {
      for (int v = 0; v < NV; ++v) {
        for (int q = 0; q < 4; ++q) V::zero().store_n(dam + q * H + v * W, lanes.cnt[v]);
      }
      continue;
    }
    const T* gm = gates + m * N4 + u0;
    for (int v = 0; v < NV; ++v) {
      const int n = lanes.cnt[v];
      if (n == 0) break;
      const int64_t ov = o + v * W;
      const V i = V::load_n(gm + v * W, n), f = V::load_n(gm + H + v * W, n);
      const V g = V::load_n(gm + 2 * H + v * W, n), og = V::load_n(gm + 3 * H + v * W, n);
      const V cp = V::load_n(c_prev + ov, n), c = V::load_n(c_cur + ov, n);
      V dhv = V::load_n(dh + ov, n);
      if (dy) dhv = dhv + V::load_n(dy + ov, n);
      const V tc = simd::tanh(c);
      const V da_o = dhv * tc * og * (one - og);
      V dcv = simd::fmadd(dhv * og, one - tc * tc, V::load_n(dc + ov, n));
      if (peep) dcv = simd::fmadd(da_o, V::load_n(peep + 2 * H + u0 + v * W, n), dcv);
      const V da_i = dcv * g * i * (one - i);
      const V da_f = dcv * cp * f * (one - f);
      const V da_g = dcv * i * (one - g * g);
      V dc_prev = dcv * f;
      if (peep) {
        dc_prev = simd::fmadd(da_i, V::load_n(peep + u0 + v * W, n), dc_prev);
        dc_prev = simd::fmadd(da_f, V::load_n(peep + H + u0 + v * W, n), dc_prev);
      }
      dc_prev.store_n(dc + ov, n);
      da_i.store_n(dam + v * W, n);
      da_f.store_n(dam + H + v * W, n);
      da_g.store_n(dam + 2 * H + v * W, n);
      da_o.store_n(dam + 3 * H + v * W, n);
      if (db) {
        T* bv = db + u0 + v * W;
        (V::load_n(bv, n) + da_i).store_n(bv, n);
        (V::load_n(bv + H, n) + da_f).store_n(bv + H, n);
        (V::load_n(bv + 2 * H, n) + da_g).store_n(bv + 2 * H, n);
        (V::load_n(bv + 3 * H, n) + da_o).store_n(bv + 3 * H, n);
      }
      if (dp) {
        T* pv = dp + u0 + v * W;
        simd::fmadd(da_i, cp, V::load_n(pv, n)).store_n(pv, n);
        simd::fmadd(da_f, cp, V::load_n(pv + H, n)).store_n(pv + H, n);
        simd::fmadd(da_o, c, V::load_n(pv + 2 * H, n)).store_n(pv + 2 * H, n);
      }
    }
  }
}

template <typename T>
void copy_or_zero(T* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src ? src[i] : T(0);
}

}  // namespace

template <typename T>
void lstm_backward(const LstmShape& s, const T* x, const LstmParams<T>& p, const int64_t* lengths,
                   const T* gates, const T* hs, const T* cs, const T* dy, const T* dh_n, const T* dc_n, T* dx,
                   T* dw_ih, T* dw_hh, T* dbias, T* dh0, T* dc0, T* dpeephole) {
  const int64_t T_ = s.T, B = s.B, D = s.D, H = s.H, N4 = 4 * H, BH = B * H, R = T_ * B;
  simd::DenormalGuard guard;
  copy_or_zero(dh0, dh_n, BH);
  copy_or_zero(dc0, dc_n, BH);
  if (dpeephole) copy_or_zero<T>(dpeephole, nullptr, 3 * H);
  copy_or_zero<T>(dbias, nullptr, N4);
  simd::Buffer<T> da_buf(R * N4);
  T* da = da_buf.data();

  // dh_{t-1} = da_t·w_hh with w_hh packed once for the whole loop (K = 4H, N = H). Threads own
  // granules of G units: whole unit blocks (gate_grads) and whole panels (gemm_packed columns).
  const gemm::PackedB<T> whh_pk(false, N4, H, p.w_hh, H);
  constexpr int64_t U = lstm::kUnits<T>;
  constexpr int64_t NR = gemm::PackedB<T>::panel_width;
  constexpr int64_t G = U > NR ? U : NR;
  // A granule must be whole unit blocks and whole panels, or two threads would compute one
  // block (its da) or one panel (its dh columns): true while one width divides the other.
  static_assert(G % U == 0 && G % NR == 0, "an LSTM backward granule must be whole unit blocks and whole panels");
  const int64_t ng = (H + G - 1) / G;
  // Small batches share each step's granules by claiming (lstm_common.h), in two rounds per
  // step (da, then dh_{t-1}); larger ones split them once and meet at one barrier per step.
  const bool claim = B < lstm::kClaimRowsMax;
  int nt = simd::threads_for(B * N4 * H, claim ? lstm::kClaimGrain : lstm::kStepGrain);
  if (nt > ng) nt = static_cast<int>(ng);
  std::unique_ptr<lstm::RoundClaims> claims;
  if (claim && nt > 1) claims.reset(new lstm::RoundClaims(ng, nt));
  // Rows past their length keep dh: the product then goes to scratch and only active rows are copied.
  simd::Buffer<T> dh_new(lengths ? BH : 0);
  if (R > 0 && H > 0) {
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
      simd::DenormalGuard thread_guard;
      const int tid = simd::team_rank(), team = simd::team_size();
      BwdStep st;
      st.H = H;
      st.lengths = lengths;
      // Granules [g0, g1): their unit blocks' da and dc, then their units of dh_{t-1}.
      auto grads = [&](int64_t g0, int64_t g1) {
        const int64_t u0 = g0 * G, u1 = g1 * G < H ? g1 * G : H;
        const int64_t t = st.t;
        for (int64_t j = u0 / U; j < (u1 + U - 1) / U; ++j) {
          gate_grads(st, B, j, gates + t * B * N4, cs + t * BH, cs + (t + 1) * BH, dy ? dy + t * BH : nullptr,
                     p.peephole, dh0, dc0, da + t * B * N4, dpeephole, dbias);
        }
      };
      auto product = [&](int64_t g0, int64_t g1) {
        const int64_t u0 = g0 * G, u1 = g1 * G < H ? g1 * G : H;
        if (u1 <= u0) return;
        T* out = lengths ? dh_new.data() : dh0;
        gemm::gemm_packed<T>(false, B, T(1), da + st.t * B * N4, N4, whh_pk, T(0), out, H, u0, u1);
        if (lengths) {
          for (int64_t m = 0; m < B; ++m) {
            if (!st.active(m)) continue;
            for (int64_t u = u0; u < u1; ++u) dh0[m * H + u] = out[m * H + u];
          }
        }
      };
      int64_t g0, g1;
      lstm::split_range(ng, team, tid, &g0, &g1);
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
  const int gt = simd::threads_for(R * N4 * (D > H ? D : H), lstm::kGemmGrain);
  gemm::gemm_mt<T>(false, false, R, D, N4, T(1), da, N4, p.w_ih, D, T(0), dx, D, gt);
  gemm::gemm_mt<T>(true, false, N4, D, R, T(1), da, N4, x, D, T(0), dw_ih, D, gt);
  gemm::gemm_mt<T>(true, false, N4, H, R, T(1), da, N4, hs, H, T(0), dw_hh, H, gt);
}

SEQKERN_REGISTER(lstm, backward, lstm_backward)

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
