// gemm.h: dense matrix multiply used inside the kernels, compiled once per ISA level.
//
//   C (M x N, row stride ldc) = beta * C + alpha * op(A) * op(B)
//   op(A) is M x K: A[m*lda + k], or with trans_a, A[k*lda + m].
//   op(B) is K x N: B[k*ldb + n], or with trans_b, B[n*ldb + k].
// beta == 0 overwrites C without reading it; alpha == 0 or K == 0 only scales C.
// Every element is one chain in T: c = beta*c (or 0), then for k = 0, 1, ..., K-1 in order
// c = fma(alpha*a_mk, b_kn, c) (a separate multiply and add at the scalar level). Blocking, tile
// shape and thread split never change that chain, so results are bitwise identical for any
// thread count, and gemm, gemm_mt and gemm_packed agree bit for bit.
// Cost: 2*M*N*K flops.
//
// Implementation (GotoBLAS/BLIS layout): op(B) is packed in kc x nc blocks of NR-column panels,
// op(A) in mc x kc blocks of MR-row panels (alpha folded in), and a register-blocked micro-kernel
// (gemm_kernels.h) computes MR x NR tiles. Small M (<= MR) with a row-major B reads B in place.
//
// Pack-once weights: PackedB<T> holds op(B) packed in full-K panels; gemm_packed multiplies by
// it with no per-call B packing, the fast path for a weight matrix reused across many calls
// (an LSTM's w_hh every step, for any batch size down to M = 1).
#pragma once

#include <cstdint>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/gemm_kernels.h"
#include "kernels/simd.h"
#include "seqkern/cache.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace gemm {

namespace detail {

template <typename T>
void scale_rows(int64_t M, int64_t N, T beta, T* C, int64_t ldc) {
  using V = simd::Vec<T>;
  for (int64_t m = 0; m < M; ++m) {
    T* c = C + m * ldc;
    if (beta == T(0)) {
      for (int64_t n = 0; n < N; ++n) c[n] = T(0);
    } else if (beta != T(1)) {
      for (int64_t n = 0; n < N; n += V::W) {
        const int cnt = static_cast<int>(N - n < V::W ? N - n : V::W);
        (V::load_n(c + n, cnt) * V::set1(beta)).store_n(c + n, cnt);
      }
    }
  }
}

inline int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// Packing scratch kept per thread across calls (slot 0: A blocks, slot 1: B blocks): a fresh
// allocation of this size is a fresh mmap, and its page faults cost as much as the packing.
template <typename T>
T* scratch(int slot, int64_t n) {
  static thread_local simd::Buffer<T> bufs[2];
  if (bufs[slot].size() < n) bufs[slot].reset(n);
  return bufs[slot].data();
}
inline int64_t round_up(int64_t a, int64_t b) { return (a + b - 1) / b * b; }

// One kc x nc block of op(B) as the micro-kernels see it: panel p (NR columns) at p + p*bp,
// row k at + k*bk; when `tail` is set, panel `full` (the last, partial one) lives there instead,
// packed with row stride NR.
template <typename T>
struct BView {
  const T* p;
  int64_t bk;
  int64_t bp;
  int64_t full;
  const T* tail;
};

// C block (mc x nc) op= packed A block * B view, over one kc slice of K.
template <typename T>
void macro_kernel(int64_t mc, int64_t nc, int64_t kc, const T* ap, const BView<T>& bv, T* C,
                  int64_t ldc, int mode, T beta) {
  constexpr int NR = Tiles<T>::NR;
  const int64_t npan = (nc + NR - 1) / NR;
  auto panel = [&](int64_t q) { return q == bv.full && bv.tail ? bv.tail : bv.p + q * bv.bp; };
  auto stride = [&](int64_t q) { return q == bv.full && bv.tail ? int64_t(NR) : bv.bk; };
  const RowTiles<T> tiles(mc);
  // Tiles tall enough for a one-panel kernel: the kc x NR B micro-panel stays in L1 while the A
  // tiles stream from L2.
  for (int64_t q = 0; q < npan; ++q) {
    const T* b = panel(q);
    const int64_t bk = stride(q);
    const int64_t ncols = min64(nc - q * NR, NR);
    for (int64_t t = 0; t < tiles.n; ++t) {
      const int mr = tiles.rows(t);
      if (Tiles<T>::panels_for(mr) > 1) continue;
      const int64_t i0 = tiles.start(t);
      kernel_for<T>(mr, false)(kc, ap + i0 * kc, b, bk, 0, C + i0 * ldc + q * NR, ldc, ncols, mode, beta);
    }
  }
  // Tiles of few rows (small M): span several B panels per call so that enough independent FMA
  // chains are in flight.
  for (int64_t t = 0; t < tiles.n; ++t) {
    const int mr = tiles.rows(t);
    const int np = Tiles<T>::panels_for(mr);
    if (np == 1) continue;
    const T* a = ap + tiles.start(t) * kc;
    T* c = C + tiles.start(t) * ldc;
    const MicroKernel<T> wide = kernel_for<T>(mr, true);
    const int64_t full = bv.tail ? bv.full : npan;
    int64_t q = 0;
    for (; q + np <= full; q += np) {
      wide(kc, a, panel(q), bv.bk, bv.bp, c + q * NR, ldc, min64(nc - q * NR, int64_t(np) * NR), mode, beta);
    }
    const MicroKernel<T> narrow = kernel_for<T>(mr, false);
    for (; q < npan; ++q) {
      narrow(kc, a, panel(q), stride(q), 0, c + q * NR, ldc, min64(nc - q * NR, NR), mode, beta);
    }
  }
}

// Rows of op(A) per packed block of kc columns: the block fills at most half the L2 (the
// other half holds the B micro-panels passing through and C), capped by the level's measured
// best (Tiles::MC: on Zen 4, 1 MiB L2, the cap rules; on Zen 3, 512 KiB, the L2 does).
template <typename T>
int64_t block_rows(int64_t kc) {
  constexpr int MR = Tiles<T>::MR;
  const int64_t fit = cache_bytes(2) / (2 * kc * static_cast<int64_t>(sizeof(T))) / MR * MR;
  return fit < MR ? MR : fit > Tiles<T>::MC ? Tiles<T>::MC : fit;
}

// The blocked loop nest. `bsrc.block(jc, nc, pc, kc)` yields the B view of one block.
template <typename T, typename BSource>
void blocked(bool trans_a, int64_t M, int64_t N, int64_t K, T alpha, const T* A, int64_t lda,
             BSource& bsrc, T beta, T* C, int64_t ldc) {
  // K in equal slices of at most KC (768 = 384 + 384, not 512 + 256): each slice re-reads and
  // re-writes C, so a thin last slice costs nearly as much C traffic as a full one.
  const int64_t slices = (K + Tiles<T>::KC - 1) / Tiles<T>::KC;
  const int64_t KC = (K + slices - 1) / slices;
  const int64_t MC = block_rows<T>(KC);
  constexpr int NC = Tiles<T>::NC;
  const int64_t kcap = min64(K, KC);
  T* abuf = scratch<T>(0, min64(M, MC) * kcap);
  const int first_mode = beta == T(0) ? kStartZero : (beta == T(1) ? kStartC : kStartBetaC);
  for (int64_t jc = 0; jc < N; jc += NC) {
    const int64_t nc = min64(N - jc, NC);
    for (int64_t pc = 0; pc < K; pc += KC) {
      const int64_t kc = min64(K - pc, KC);
      const BView<T> bv = bsrc.block(jc, nc, pc, kc);
      const int mode = pc == 0 ? first_mode : kStartC;
      for (int64_t ic = 0; ic < M; ic += MC) {
        const int64_t mc = min64(M - ic, MC);
        const T* a = trans_a ? A + pc * lda + ic : A + ic * lda + pc;
        pack_a(trans_a, mc, kc, a, lda, alpha, abuf);
        macro_kernel(mc, nc, kc, abuf, bv, C + ic * ldc + jc, ldc, mode, beta);
      }
    }
  }
}

// op(B) packed per call, one kc x nc block at a time.
template <typename T>
struct PackingSource {
  bool trans_b;
  const T* B;
  int64_t ldb;
  T* buf;
  PackingSource(bool tb, int64_t N, int64_t K, const T* b, int64_t ld) : trans_b(tb), B(b), ldb(ld) {
    buf = scratch<T>(1, min64(K, Tiles<T>::KC) * round_up(min64(N, Tiles<T>::NC), Tiles<T>::NR));
  }
  BView<T> block(int64_t jc, int64_t nc, int64_t pc, int64_t kc) {
    constexpr int NR = Tiles<T>::NR;
    pack_b(trans_b, kc, nc, trans_b ? B + jc * ldb + pc : B + pc * ldb + jc, ldb, buf, kc * NR);
    return {buf, NR, kc * NR, (nc + NR - 1) / NR, nullptr};
  }
};

// Row-major op(B) read in place (small M, where B is streamed once anyway); only the last,
// partial panel is packed so the micro-kernels never read past column N.
template <typename T>
struct DirectSource {
  const T* B;
  int64_t ldb;
  T* tail = nullptr;
  DirectSource(int64_t N, int64_t K, const T* b, int64_t ld) : B(b), ldb(ld) {
    if (N % Tiles<T>::NR) tail = scratch<T>(1, min64(K, Tiles<T>::KC) * Tiles<T>::NR);
  }
  BView<T> block(int64_t jc, int64_t nc, int64_t pc, int64_t kc) {
    constexpr int NR = Tiles<T>::NR;
    const int64_t full = nc / NR;
    const T* b = B + pc * ldb + jc;
    if (full * NR < nc) {
      pack_b(false, kc, nc - full * NR, b + full * NR, ldb, tail, 0);
      return {b, ldb, NR, full, tail};
    }
    return {b, ldb, NR, full, nullptr};
  }
};

}  // namespace detail

// op(B) (K x N) packed once into full-K panels of panel_width columns, for gemm_packed.
// pack() may be called again (same or new shape) and reuses the buffer when it is big enough.
// The layout belongs to this ISA level: build and use a PackedB inside one kernel call.
template <typename T>
class PackedB {
 public:
  static constexpr int64_t panel_width = detail::Tiles<T>::NR;

  PackedB() = default;
  PackedB(bool trans_b, int64_t K, int64_t N, const T* B, int64_t ldb) { pack(trans_b, K, N, B, ldb); }
  PackedB(const PackedB&) = delete;
  PackedB& operator=(const PackedB&) = delete;

  void pack(bool trans_b, int64_t K, int64_t N, const T* B, int64_t ldb) {
    K_ = K < 0 ? 0 : K;
    N_ = N < 0 ? 0 : N;
    const int64_t need = K_ * detail::round_up(N_, panel_width);
    if (buf_.size() < need) buf_.reset(need);
    if (need > 0) detail::pack_b(trans_b, K_, N_, B, ldb, buf_.data(), K_ * panel_width);
  }
  int64_t rows() const { return K_; }  // K
  int64_t cols() const { return N_; }  // N
  // Panel q (columns q*panel_width ...), row k at panel(q) + k*panel_width.
  const T* panel(int64_t q) const { return buf_.data() + q * K_ * panel_width; }

 private:
  simd::Buffer<T> buf_;
  int64_t K_ = 0;
  int64_t N_ = 0;
};

namespace detail {

template <typename T>
struct PackedSource {
  const PackedB<T>& B;
  int64_t n0;
  BView<T> block(int64_t jc, int64_t, int64_t pc, int64_t) {
    constexpr int NR = Tiles<T>::NR;
    return {B.panel((n0 + jc) / NR) + pc * NR, NR, B.rows() * NR, -1, nullptr};
  }
};

// The thread split of gemm_mt / gemm_packed_mt: rows in MR multiples when C is tall, columns in
// NR multiples otherwise (or when the other way has too few pieces). Thread t of nt gets
// [lo, hi) of the chosen dimension.
struct Split {
  bool by_rows;
  int64_t lo, hi;
};

template <typename T>
Split split_for(int64_t M, int64_t N, int t, int nt, bool allow_rows) {
  constexpr int MR = Tiles<T>::MR;
  constexpr int NR = Tiles<T>::NR;
  const int64_t mu = (M + MR - 1) / MR;
  const int64_t nu = (N + NR - 1) / NR;
  const bool by_rows = allow_rows && ((M >= N && mu >= nt) || nu < nt);
  const int64_t units = by_rows ? mu : nu;
  const int64_t step = by_rows ? MR : NR;
  const int64_t total = by_rows ? M : N;
  const int64_t lo = min64(units * t / nt * step, total);
  const int64_t hi = min64(units * (t + 1) / nt * step, total);
  return {by_rows, lo, hi};
}

// Threads worth waking for M*N*K multiply-adds (a team costs a few microseconds).
inline int team_size(int nthreads, int64_t M, int64_t N, int64_t K) {
  const double work = double(M) * double(N) * double(K);
  int nt = nthreads;
  if (work < double(nt) * (1 << 19)) nt = static_cast<int>(work / (1 << 19));
  return nt < 1 ? 1 : nt;
}

}  // namespace detail

// Single-threaded, on the calling thread.
template <typename T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
          int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    detail::scale_rows(M, N, beta, C, ldc);
    return;
  }
  if (!trans_b && M <= detail::Tiles<T>::MR) {
    detail::DirectSource<T> src(N, K, B, ldb);
    detail::blocked(trans_a, M, N, K, alpha, A, lda, src, beta, C, ldc);
  } else {
    detail::PackingSource<T> src(trans_b, N, K, B, ldb);
    detail::blocked(trans_a, M, N, K, alpha, A, lda, src, beta, C, ldc);
  }
}

// Columns [n0, n1) of C = beta * C + alpha * op(A) * op(B) with op(B) pre-packed (n1 < 0 means
// B.cols()). C addresses column 0; n0 must be a multiple of PackedB<T>::panel_width. K is
// B.rows(). Same arithmetic as gemm.
template <typename T>
void gemm_packed(bool trans_a, int64_t M, T alpha, const T* A, int64_t lda, const PackedB<T>& B,
                 T beta, T* C, int64_t ldc, int64_t n0 = 0, int64_t n1 = -1) {
  if (n1 < 0 || n1 > B.cols()) n1 = B.cols();
  const int64_t N = n1 - n0;
  const int64_t K = B.rows();
  if (M <= 0 || N <= 0) return;
  if (K <= 0 || alpha == T(0)) {
    detail::scale_rows(M, N, beta, C + n0, ldc);
    return;
  }
  detail::PackedSource<T> src{B, n0};
  detail::blocked(trans_a, M, N, K, alpha, A, lda, src, beta, C + n0, ldc);
}

// gemm on up to `nthreads` OpenMP threads, C split into row or column blocks; bitwise equal to
// gemm. Small products run on the calling thread. Flush-to-zero is on inside (as in every
// kernel), also with one thread.
template <typename T>
void gemm_mt(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A,
             int64_t lda, const T* B, int64_t ldb, T beta, T* C, int64_t ldc, int nthreads) {
  if (M <= 0 || N <= 0) return;
  const int nt = detail::team_size(nthreads, M, N, K);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    simd::DenormalGuard guard;
    const int t = simd::team_rank(), team = simd::team_size();
    const detail::Split s = detail::split_for<T>(M, N, t, team, true);
    if (s.hi > s.lo) {
      if (s.by_rows) {
        const T* a = trans_a ? A + s.lo : A + s.lo * lda;
        gemm<T>(trans_a, trans_b, s.hi - s.lo, N, K, alpha, a, lda, B, ldb, beta, C + s.lo * ldc, ldc);
      } else {
        const T* b = trans_b ? B + s.lo * ldb : B + s.lo;
        gemm<T>(trans_a, trans_b, M, s.hi - s.lo, K, alpha, A, lda, b, ldb, beta, C + s.lo, ldc);
      }
    }
  }
}

// gemm_packed over columns [n0, n1) on up to `nthreads` OpenMP threads; bitwise equal to it.
template <typename T>
void gemm_packed_mt(bool trans_a, int64_t M, T alpha, const T* A, int64_t lda, const PackedB<T>& B,
                    T beta, T* C, int64_t ldc, int nthreads, int64_t n0 = 0, int64_t n1 = -1) {
  if (n1 < 0 || n1 > B.cols()) n1 = B.cols();
  if (M <= 0 || n1 <= n0) return;
  const int nt = detail::team_size(nthreads, M, n1 - n0, B.rows());
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    simd::DenormalGuard guard;
    const int t = simd::team_rank(), team = simd::team_size();
    const detail::Split s = detail::split_for<T>(M, n1 - n0, t, team, true);
    if (s.hi > s.lo) {
      if (s.by_rows) {
        const T* a = trans_a ? A + s.lo : A + s.lo * lda;
        gemm_packed<T>(trans_a, s.hi - s.lo, alpha, a, lda, B, beta, C + s.lo * ldc, ldc, n0, n1);
      } else {
        gemm_packed<T>(trans_a, M, alpha, A, lda, B, beta, C, ldc, n0 + s.lo, n0 + s.hi);
      }
    }
  }
}

}  // namespace gemm
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
