// gru_reset_before.cpp: the GRU with the reset before the recurrent product (ONNX's default
// linear_before_reset = 0, Keras's reset_after = False): pack, forward, step and backward.
//
// For t < lengths[b] (gate rows r, z, n as PyTorch's; the biases of r and z summed):
//   r = σ(x W_irᵀ + h W_hrᵀ + b_r)    z = σ(x W_izᵀ + h W_hzᵀ + b_z)
//   u = r ⊙ h                          a_nh = u W_hnᵀ + b_hn
//   n = tanh(x W_inᵀ + b_in + a_nh)    h_t = (1 - z) ⊙ n + z ⊙ h
// Rows past their length keep h and get y = 0. The product with W_hn needs all of u, so a step is
// two products that depend on each other: it cannot run on the fused tiles of the recurrent core
// (one product a step, unit blocks independent). Here x W_ihᵀ for all steps is one GEMM up front,
// and each step runs h [W_hr; W_hz]ᵀ, the gates, u W_hnᵀ and the update, the products on the
// packed GEMM (gemm.h: bitwise the same for any thread count), the elementwise parts on one thread.
// Weights (ops/gru.h): the column forms w_ih (4H, D) = [W_ir; W_iz; W_in; 0], w_hh (4H, H) =
// [W_hr; W_hz; 0; W_hn] and bias (4H) = [b_ir + b_hr; b_iz + b_hz; b_in; b_hn], the reset-after
// family's; wih_p holds W_ihᵀ (D, 3H) and whh_p [W_hr; W_hz; W_hn]ᵀ (H, 3H), row-major (the rest
// of their buffers is zero): the GEMM reads both in place.
// Saved (the reset-after family's layout): gates (T, B, 4H) = r, z, n, a_nh (0 past a row's
// length), states h (T+1, B, H).
// Backward, with g = dh_t + dy_t:
//   da_n = g (1 - z)(1 - n²)   da_z = g (h - n) z (1 - z)   du = da_n W_hn
//   da_r = du ⊙ h ⊙ r (1 - r)   dh_{t-1} = g z + du ⊙ r + [da_r | da_z] [W_hr; W_hz]
// then dW_ih = daᵀ x, d[W_hr; W_hz] = [da_r | da_z]ᵀ h, dW_hn = da_nᵀ u, dx = da W_ih, every one a
// GEMM over all T·B rows; the bias gradients are the column sums of da (b_in and b_hn alike).
// Cost: 2·T·B·3H·(D + H) flops forward, about twice that backward.
#include <cstring>
#include <utility>

#include "kernels/gemm.h"
#include "kernels/registry.h"
#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

namespace {

using simd::Vec;

template <typename T>
void zero(T* p, int64_t n) {
  if (n > 0) std::memset(p, 0, sizeof(T) * n);
}

template <typename T>
void gru_rb_pack(const RnnShape& s, const T* w_ih, const T* w_hh, T* wih_p, T* whh_p) {
  const int64_t D = s.D, H = s.H, H3 = 3 * H;
  if (wih_p) {
    zero(wih_p, 4 * H * D);
    for (int64_t j = 0; j < H3; ++j) {
      for (int64_t d = 0; d < D; ++d) wih_p[d * H3 + j] = w_ih[j * D + d];
    }
  }
  if (whh_p) {
    zero(whh_p, 4 * H * H);
    for (int64_t j = 0; j < H3; ++j) {
      const T* row = w_hh + (j < 2 * H ? j : j + H) * H;  // skip the zero block of the column form
      for (int64_t k = 0; k < H; ++k) whh_p[k * H3 + j] = row[k];
    }
  }
}

// y (R, N) = a (R, K) · b (K, N) for a few rows (R <= kFewRows), b row-major with row stride ldb:
// every y[m, n] is the GEMM's chain (0, then fmadd(a_mk, b_kn, .) for k = 0, 1, ...), so the bits
// are gemm_mt's, without its packing and tiling, which cost more than such a thin product. Columns
// in chunks of kRowVectors / R vectors per row, held in registers while k runs, so each weight
// vector is loaded once for all R rows; the chunks are split over the threads.
constexpr int kRowVectors = 8;
constexpr int64_t kFewRows = 4;

template <typename T, int R, int NV>
void rows_chunk(int64_t K, int64_t n, const T* a, int64_t lda, const T* b, int64_t ldb, T* y, int64_t ldy) {
  using V = Vec<T>;
  constexpr int W = V::W;
  V acc[R][NV];
  int cnt[NV];
SEQKERN_UNROLL
  for (int i = 0; i < NV; ++i) cnt[i] = static_cast<int>(n - i * W < W ? (n - i * W > 0 ? n - i * W : 0) : W);
SEQKERN_UNROLL
  for (int r = 0; r < R; ++r)
SEQKERN_UNROLL
    for (int i = 0; i < NV; ++i) acc[r][i] = V::zero();
  for (int64_t k = 0; k < K; ++k) {
    const T* bk = b + k * ldb;
    V bv[NV];
SEQKERN_UNROLL
    for (int i = 0; i < NV; ++i) bv[i] = V::load_n(bk + i * W, cnt[i]);
SEQKERN_UNROLL
    for (int r = 0; r < R; ++r) {
      const V ak = V::set1(a[r * lda + k]);
SEQKERN_UNROLL
      for (int i = 0; i < NV; ++i) acc[r][i] = simd::fmadd(ak, bv[i], acc[r][i]);
    }
  }
SEQKERN_UNROLL
  for (int r = 0; r < R; ++r)
SEQKERN_UNROLL
    for (int i = 0; i < NV; ++i) {
      if (cnt[i] > 0) acc[r][i].store_n(y + r * ldy + i * W, cnt[i]);
    }
}

// All N columns of R rows, chunk by chunk: full chunks of NV vectors, the last one a vector at a time.
template <typename T, int R>
void rows_columns(int64_t K, int64_t N, const T* a, int64_t lda, const T* b, int64_t ldb, T* y, int64_t ldy,
                  int64_t c0, int64_t c1) {
  constexpr int NV = kRowVectors / R;
  constexpr int64_t chunk = NV * Vec<T>::W;
  for (int64_t c = c0; c < c1; ++c) {
    const int64_t n0 = c * chunk, n = N - n0 < chunk ? N - n0 : chunk;
    if (n == chunk) {
      rows_chunk<T, R, NV>(K, n, a, lda, b + n0, ldb, y + n0, ldy);
    } else {
      for (int64_t j = 0; j < n; j += Vec<T>::W) {
        const int64_t m = n - j < Vec<T>::W ? n - j : Vec<T>::W;
        rows_chunk<T, R, 1>(K, m, a, lda, b + n0 + j, ldb, y + n0 + j, ldy);
      }
    }
  }
}

template <typename T>
void few_rows_times(int64_t M, int64_t K, int64_t N, const T* a, int64_t lda, const T* b, int64_t ldb, T* y,
                    int64_t ldy, int nthreads) {
  if (M <= 0 || N <= 0) return;
  // The chunk width depends on the rows: kRowVectors accumulators in all.
  auto chunks_of = [&](int64_t rows) {
    const int64_t chunk = kRowVectors / rows * Vec<T>::W;
    return (N + chunk - 1) / chunk;
  };
  auto run = [&](int64_t rows, const T* ar, T* yr, int64_t c0, int64_t c1) {
    switch (rows) {
      case 1: return rows_columns<T, 1>(K, N, ar, lda, b, ldb, yr, ldy, c0, c1);
      case 2: return rows_columns<T, 2>(K, N, ar, lda, b, ldb, yr, ldy, c0, c1);
      case 3: return rows_columns<T, 3>(K, N, ar, lda, b, ldb, yr, ldy, c0, c1);
      default: return rows_columns<T, 4>(K, N, ar, lda, b, ldb, yr, ldy, c0, c1);
    }
  };
  int nt = gemm::detail::team_size(nthreads, M, N, K);
  if (nt > chunks_of(M)) nt = static_cast<int>(chunks_of(M));
  auto part = [&](int t, int team) {
    const int64_t chunks = chunks_of(M);
    run(M, a, y, chunks * t / team, chunks * (t + 1) / team);
  };
  if (nt <= 1) {
    part(0, 1);
    return;
  }
#pragma omp parallel num_threads(nt)
  {
    simd::DenormalGuard guard;
    part(simd::team_rank(), simd::team_size());
  }
}

// y (M, N) = a (M, K) · b (K, N), row strides lda, ldb, ldy: the few-rows product for one row,
// and for up to kFewRows rows when b is at most kFewRowsBytes, else the GEMM. Measured (Xeon,
// AVX-512, 1 thread, T=256): 2-4 rows with H = 128 (b of 128 KiB) took 0.55-0.65x the GEMM's
// time; with H = 256 (b of 256 and 512 KiB) 1.1-1.15x, the GEMM's blocking then paying off.
constexpr int64_t kFewRowsBytes = 128 << 10;

template <typename T>
void times(int64_t M, int64_t N, int64_t K, const T* a, int64_t lda, const T* b, int64_t ldb, T* y, int64_t ldy,
           int nt) {
  if (M == 1 || (M <= kFewRows && K * N * static_cast<int64_t>(sizeof(T)) <= kFewRowsBytes)) {
    few_rows_times(M, K, N, a, lda, b, ldb, y, ldy, nt);
  } else {
    gemm::gemm_mt<T>(false, false, M, N, K, T(1), a, lda, b, ldb, T(0), y, ldy, nt);
  }
}

// The per-step buffers: the products of r and z, u = r ⊙ h, and u W_hnᵀ.
template <typename T>
struct StepBuffers {
  simd::Buffer<T> rz, u, gn;
  explicit StepBuffers(int64_t B, int64_t H) : rz(B * 2 * H), u(B * H), gn(B * H) {}
};

// One step for B rows from h (B, H) into h_out, with gx (B, 3H) = x W_ihᵀ + [b_r; b_z; b_in].
// `active(b)` says which rows take it (the others keep h and get y = 0 and gates = 0); y and
// gates (B, 4H) may be nullptr.
template <typename T, typename Active>
void step_rows(int64_t B, int64_t H, const T* gx, const T* h, const RnnParams<T>& p, int nt, StepBuffers<T>& buf,
               Active active, T* h_out, T* y, T* gates) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const int64_t H2 = 2 * H, H3 = 3 * H;
  const V one = V::set1(T(1));
  T *rz = buf.rz.data(), *u = buf.u.data(), *gn = buf.gn.data();
  times(B, H2, H, h, H, p.whh_p, H3, rz, H2, nt);
  for (int64_t b = 0; b < B; ++b) {
    const T *g = gx + b * H3, *hb = h + b * H;
    T *rzb = rz + b * H2, *ub = u + b * H;
    for (int64_t c = 0; c < H; c += W) {
      const int cnt = static_cast<int>(H - c < W ? H - c : W);
      const V r = simd::sigmoid(V::load_n(g + c, cnt) + V::load_n(rzb + c, cnt));
      const V z = simd::sigmoid(V::load_n(g + H + c, cnt) + V::load_n(rzb + H + c, cnt));
      r.store_n(rzb + c, cnt);
      z.store_n(rzb + H + c, cnt);
      (r * V::load_n(hb + c, cnt)).store_n(ub + c, cnt);
    }
  }
  times(B, H, H, u, H, p.whh_p + H2, H3, gn, H, nt);
  const T* b_hn = p.bias + 3 * H;
  for (int64_t b = 0; b < B; ++b) {
    const T *g = gx + b * H3, *hb = h + b * H, *rzb = rz + b * H2, *gnb = gn + b * H;
    T* ho = h_out + b * H;
    T* yb = y ? y + b * H : nullptr;
    T* gb = gates ? gates + b * 4 * H : nullptr;
    if (!active(b)) {
      if (ho != hb) std::memcpy(ho, hb, sizeof(T) * H);
      if (yb) zero(yb, H);
      if (gb) zero(gb, 4 * H);
      continue;
    }
    for (int64_t c = 0; c < H; c += W) {
      const int cnt = static_cast<int>(H - c < W ? H - c : W);
      const V r = V::load_n(rzb + c, cnt), z = V::load_n(rzb + H + c, cnt);
      const V a_nh = V::load_n(gnb + c, cnt) + V::load_n(b_hn + c, cnt);
      const V n = simd::tanh(V::load_n(g + H2 + c, cnt) + a_nh);
      const V hn = simd::fmadd(z, V::load_n(hb + c, cnt), (one - z) * n);
      hn.store_n(ho + c, cnt);
      if (yb) hn.store_n(yb + c, cnt);
      if (gb) {
        r.store_n(gb + c, cnt);
        z.store_n(gb + H + c, cnt);
        n.store_n(gb + H2 + c, cnt);
        a_nh.store_n(gb + H3 + c, cnt);
      }
    }
  }
}

// x (M, D) W_ihᵀ + [b_r; b_z; b_in] into gx (M, 3H).
template <typename T>
void input_products(int64_t M, int64_t D, int64_t H, const T* x, const RnnParams<T>& p, int nt, T* gx) {
  const int64_t H3 = 3 * H;
  gemm::gemm_mt<T>(false, false, M, H3, D, T(1), x, D, p.wih_p, H3, T(0), gx, H3, nt);
  for (int64_t m = 0; m < M; ++m) {
    T* row = gx + m * H3;
    for (int64_t j = 0; j < H3; ++j) row[j] += p.bias[j];
  }
}

template <typename T>
void gru_rb_forward(const RnnShape& s, const T* x, const RnnParams<T>& p, const T* const* init,
                    const int64_t* lengths, T* y, T* const* last, T* gates, T* const* saved) {
  const int64_t T_ = s.T, B = s.B, D = s.D, H = s.H, BH = B * H;
  if (B == 0 || H == 0) return;
  simd::DenormalGuard guard;
  const int nt = max_threads();
  simd::Buffer<T> gx(T_ * B * 3 * H), states(2 * BH);
  input_products(T_ * B, D, H, x, p, nt, gx.data());
  StepBuffers<T> buf(B, H);
  T* h = states.data();
  T* h_next = states.data() + BH;
  for (int64_t i = 0; i < BH; ++i) h[i] = init[0] ? init[0][i] : T(0);
  T* hs = saved ? saved[0] : nullptr;
  if (hs) std::memcpy(hs, h, sizeof(T) * BH);
  for (int64_t t = 0; t < T_; ++t) {
    step_rows(B, H, gx.data() + t * B * 3 * H, h, p, nt, buf,
              [&](int64_t b) { return !lengths || t < lengths[b]; }, h_next, y + t * BH,
              gates ? gates + t * B * 4 * H : nullptr);
    std::swap(h, h_next);
    if (hs) std::memcpy(hs + (t + 1) * BH, h, sizeof(T) * BH);
  }
  std::memcpy(last[0], h, sizeof(T) * BH);
}

template <typename T>
void gru_rb_step(const RnnShape& s, const T* x, const RnnParams<T>& p, const T* const* prev, T* const* out) {
  const int64_t B = s.B, D = s.D, H = s.H;
  if (B == 0 || H == 0) return;
  simd::DenormalGuard guard;
  const int nt = max_threads();
  simd::Buffer<T> gx(B * 3 * H);
  input_products(B, D, H, x, p, nt, gx.data());
  StepBuffers<T> buf(B, H);
  step_rows(B, H, gx.data(), prev[0], p, nt, buf, [](int64_t) { return true; }, out[0], static_cast<T*>(nullptr),
            static_cast<T*>(nullptr));
}

template <typename T>
void gru_rb_backward(const RnnShape& s, const T* x, const RnnParams<T>& p, const int64_t* lengths, const T* gates,
                     const T* const* saved, const T* dy, const T* const* d_last, T* dx, T* dw_ih, T* dw_hh,
                     T* dbias, T* const* d_init, T*) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const int64_t T_ = s.T, B = s.B, D = s.D, H = s.H, BH = B * H, H2 = 2 * H, H3 = 3 * H, M = T_ * B;
  // The GEMMs below write dx and every non-zero block of dw_ih and dw_hh; the rest is zero.
  zero(dw_ih + 3 * H * D, H * D);
  zero(dw_hh + 2 * H * H, H * H);
  zero(dbias, 4 * H);
  if (B == 0 || H == 0) {
    zero(dx, M * D);
    zero(dw_ih, 3 * H * D);
    zero(dw_hh, 4 * H * H);
    return;
  }
  simd::DenormalGuard guard;
  const int nt = max_threads();
  const V one = V::set1(T(1));
  const T* hs = saved[0];
  const T* w_hn = p.w_hh + 3 * H * H;  // (H, H), row j the weights of unit j's n
  simd::Buffer<T> da(M * H3), u(M * H), grads(2 * BH), du(BH);
  T* dh = grads.data();         // dL/dh_t, carried down the steps
  T* dprev = grads.data() + BH;  // dL/dh_{t-1} being formed
  for (int64_t i = 0; i < BH; ++i) dh[i] = d_last[0] ? d_last[0][i] : T(0);
  for (int64_t t = T_ - 1; t >= 0; --t) {
    T* dat = da.data() + t * B * H3;
    T* ut = u.data() + t * BH;
    const T* gt = gates + t * B * 4 * H;
    const T* hp = hs + t * BH;
    auto active = [&](int64_t b) { return !lengths || t < lengths[b]; };
    // da_n, da_z and the direct term g z of dh_{t-1}.
    for (int64_t b = 0; b < B; ++b) {
      T* d = dat + b * H3;
      if (!active(b)) {
        zero(d, H3);
        std::memcpy(dprev + b * H, dh + b * H, sizeof(T) * H);
        continue;
      }
      const T *gb = gt + b * 4 * H, *hb = hp + b * H, *dyb = dy ? dy + (t * B + b) * H : nullptr;
      for (int64_t c = 0; c < H; c += W) {
        const int cnt = static_cast<int>(H - c < W ? H - c : W);
        V g = V::load_n(dh + b * H + c, cnt);
        if (dyb) g = g + V::load_n(dyb + c, cnt);
        const V z = V::load_n(gb + H + c, cnt), n = V::load_n(gb + H2 + c, cnt);
        (g * (one - z) * simd::fnmadd(n, n, one)).store_n(d + H2 + c, cnt);
        (g * (V::load_n(hb + c, cnt) - n) * z * (one - z)).store_n(d + H + c, cnt);
        (g * z).store_n(dprev + b * H + c, cnt);
      }
    }
    times(B, H, H, dat + H2, H3, w_hn, H, du.data(), H, nt);
    // da_r, the term du ⊙ r, and u = r ⊙ h for dW_hn.
    for (int64_t b = 0; b < B; ++b) {
      if (!active(b)) {
        zero(ut + b * H, H);
        continue;
      }
      const T *gb = gt + b * 4 * H, *hb = hp + b * H, *dub = du.data() + b * H;
      T *d = dat + b * H3, *dpb = dprev + b * H;
      for (int64_t c = 0; c < H; c += W) {
        const int cnt = static_cast<int>(H - c < W ? H - c : W);
        const V r = V::load_n(gb + c, cnt), hv = V::load_n(hb + c, cnt), dv = V::load_n(dub + c, cnt);
        (dv * hv * r * (one - r)).store_n(d + c, cnt);
        simd::fmadd(dv, r, V::load_n(dpb + c, cnt)).store_n(dpb + c, cnt);
        (r * hv).store_n(ut + b * H + c, cnt);
      }
    }
    // The rows past their length have da = 0 here, so this adds nothing to their carried dh.
    gemm::gemm_mt<T>(false, false, B, H, H2, T(1), dat, H3, p.w_hh, H, T(1), dprev, H, nt);
    std::swap(dh, dprev);
  }
  std::memcpy(d_init[0], dh, sizeof(T) * BH);
  // The weight gradients in the column forms (their zero blocks stay 0), and dx.
  gemm::gemm_mt<T>(true, false, H3, D, M, T(1), da.data(), H3, x, D, T(0), dw_ih, D, nt);
  gemm::gemm_mt<T>(true, false, H2, H, M, T(1), da.data(), H3, hs, H, T(0), dw_hh, H, nt);
  gemm::gemm_mt<T>(true, false, H, H, M, T(1), da.data() + H2, H3, u.data(), H, T(0), dw_hh + 3 * H * H, H, nt);
  gemm::gemm_mt<T>(false, false, M, D, H3, T(1), da.data(), H3, p.w_ih, D, T(0), dx, D, nt);
  for (int64_t m = 0; m < M; ++m) {
    const T* d = da.data() + m * H3;
    for (int64_t j = 0; j < H3; ++j) dbias[j] += d[j];
  }
  std::memcpy(dbias + H3, dbias + H2, sizeof(T) * H);  // b_hn enters where b_in does
}

}  // namespace

SEQKERN_KERNELS(gru_reset_before) {
  SEQKERN_ENTRY(gru_rb, pack, gru_rb_pack);
  SEQKERN_ENTRY(gru_rb, forward, gru_rb_forward);
  SEQKERN_ENTRY(gru_rb, step, gru_rb_step);
  SEQKERN_ENTRY(gru_rb, backward, gru_rb_backward);
}

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
