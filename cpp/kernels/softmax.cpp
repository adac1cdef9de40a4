// softmax.cpp: softmax and its backward over one axis of an array of any rank.
//
// x is viewed as (outer, n, inner) with the softmax taken over n; mask (optional) is a dense
// uint8 array of the same shape, nonzero = keep.
//   m = max_{j kept} x_j          y_j = exp(x_j - m) / sum_{k kept} exp(x_k - m)  (kept j)
//   y_j = 0 for masked j, and the whole row is 0 when no entry is kept or all kept are -inf.
// Backward (mask already folded into y, since masked y_j = 0):
//   dx_j = y_j (dy_j - <y, dy>)
// The log-softmax, log(y) computed without forming y:
//   l_j = x_j - (m + log sum_{k kept} exp(x_k - m))  (kept j), -inf for masked j and for every
//   j of a row with nothing kept (the offset is +inf there);
//   dx_j = dl_j - exp(l_j) sum_{k: l_k > -inf} dl_k, and 0 where l_j = -inf (masked entries and
//   entries at -inf do not move their outputs, so their dl is not summed either).
// Numerics: max subtraction keeps exp in range for |x| up to float max; accumulation in T.
// NaN anywhere in the kept entries of a row makes that row NaN.
// Cost: ~3 passes over the row, memory-bound: 8 bytes/element forward (x, y) for float32.
// Rows are split across threads in a fixed way; each row is reduced by one thread in index
// order, so results do not depend on the thread count.
#include <cmath>
#include <limits>

#include "kernels/registry.h"
#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

namespace {

using simd::Vec;

// Loads cnt elements of x; lanes that are masked out or past cnt get `fill`.
template <typename T>
Vec<T> kept_or(const T* x, const uint8_t* mask, int cnt, Vec<T> fill) {
  const auto keep = mask ? Vec<T>::keep_bytes(mask, cnt) : Vec<T>::first(cnt);
  return simd::select(keep, Vec<T>::load_n(x, cnt), fill);
}

// A row whose max is -inf keeps nothing: shift by 0 so every exp is exp(-inf) = 0, and
// scale by 0 instead of 1/0. NaN passes through both selects and poisons its row.
template <typename T>
Vec<T> safe_shift(Vec<T> vmax) {
  using V = Vec<T>;
  return simd::select(simd::cmp_eq(vmax, V::set1(-std::numeric_limits<T>::infinity())), V::zero(), vmax);
}
template <typename T>
Vec<T> safe_inverse(Vec<T> vsum) {
  using V = Vec<T>;
  return simd::select(simd::cmp_eq(vsum, V::zero()), V::zero(), V::set1(T(1)) / vsum);
}

// The log-softmax's offset m + log(sum): +inf when nothing is kept (every output -inf), NaN
// when the sum is NaN (the row is NaN).
template <typename T>
T log_offset(T shift, T total) {
  return total == T(0) ? std::numeric_limits<T>::infinity() : shift + std::log(total);
}

// Folds a row into kAcc accumulators, step(acc, j, cnt) taking the vector of elements
// [j, j + cnt) into acc: every kAcc-th full vector goes to the same accumulator (one alone would
// bound the pass by the step's latency) and the tail to the first; they are combined as
// combine(combine(a0, a1), combine(a2, a3)). A fixed order that depends on n only.
constexpr int kAcc = 4;

template <typename T, typename Step, typename Combine>
Vec<T> fold_row(int64_t n, Vec<T> init, Step step, Combine combine) {
  constexpr int W = Vec<T>::W;
  Vec<T> acc[kAcc] = {init, init, init, init};
  int64_t j = 0;
  for (; j + kAcc * W <= n; j += kAcc * W) {
    for (int a = 0; a < kAcc; ++a) acc[a] = step(acc[a], j + a * W, W);
  }
  for (; j < n; j += W) acc[0] = step(acc[0], j, static_cast<int>(n - j < W ? n - j : W));
  return combine(combine(acc[0], acc[1]), combine(acc[2], acc[3]));
}

// One contiguous row of length n; Log: the log-softmax (y holds nothing between the passes).
template <typename T, bool Log>
void softmax_row(int64_t n, const T* x, const uint8_t* mask, T* y) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const V ninf = V::set1(-std::numeric_limits<T>::infinity());
  auto kept = [&](int64_t j, int cnt) { return kept_or(x + j, mask ? mask + j : nullptr, cnt, ninf); };
  auto vmax_of = [](V a, V b) { return simd::max(a, b); };
  auto sum = [](V a, V b) { return a + b; };
  const V vmax = fold_row<T>(n, ninf, [&](V acc, int64_t j, int cnt) { return vmax_of(acc, kept(j, cnt)); }, vmax_of);
  const T row_max = simd::hmax(vmax);
  const T shift_s = row_max == -std::numeric_limits<T>::infinity() ? T(0) : row_max;  // as safe_shift
  const V shift = V::set1(shift_s);
  const V vsum = fold_row<T>(n, V::zero(), [&](V acc, int64_t j, int cnt) {
    const V e = simd::exp(kept(j, cnt) - shift);
    if (!Log) e.store_n(y + j, cnt);
    return acc + e;
  }, sum);
  if (Log) {
    const V off = V::set1(log_offset(shift_s, simd::hsum(vsum)));
    for (int64_t j = 0; j < n; j += W) {
      const int cnt = static_cast<int>(n - j < W ? n - j : W);
      (kept(j, cnt) - off).store_n(y + j, cnt);
    }
    return;
  }
  const V inv = safe_inverse(V::set1(simd::hsum(vsum)));
  for (int64_t j = 0; j < n; j += W) {
    const int cnt = static_cast<int>(n - j < W ? n - j : W);
    (V::load_n(y + j, cnt) * inv).store_n(y + j, cnt);
  }
}

// kLanes interleaved rows: a softmax over a middle axis reads x as n rows of `stride`
// contiguous elements; a group takes up to kLanes of those columns and walks the n rows in
// order, so every load is a contiguous run instead of one cache line per row.
constexpr int kLanes = 256;

// `cnt` <= kLanes columns of length n, element j of column l at x[j * stride + l].
template <typename T, bool Log>
void softmax_lanes(int64_t n, int64_t stride, int cnt, const T* x, const uint8_t* mask, T* y) {
  using V = Vec<T>;
  constexpr int W = V::W;
  const V ninf = V::set1(-std::numeric_limits<T>::infinity());
  alignas(64) T acc[kLanes];
  for (int l = 0; l < cnt; l += W) ninf.store_n(acc + l, cnt - l);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t o = j * stride;
    for (int l = 0; l < cnt; l += W) {
      const V v = kept_or(x + o + l, mask ? mask + o + l : nullptr, cnt - l, ninf);
      simd::max(V::load_n(acc + l, cnt - l), v).store_n(acc + l, cnt - l);
    }
  }
  alignas(64) T shift[kLanes];
  for (int l = 0; l < cnt; l += W) {
    safe_shift(V::load_n(acc + l, cnt - l)).store_n(shift + l, cnt - l);
    V::zero().store_n(acc + l, cnt - l);
  }
  for (int64_t j = 0; j < n; ++j) {
    const int64_t o = j * stride;
    for (int l = 0; l < cnt; l += W) {
      const V e = simd::exp(kept_or(x + o + l, mask ? mask + o + l : nullptr, cnt - l, ninf) -
                            V::load_n(shift + l, cnt - l));
      if (!Log) e.store_n(y + o + l, cnt - l);
      (V::load_n(acc + l, cnt - l) + e).store_n(acc + l, cnt - l);
    }
  }
  if (Log) {
    for (int l = 0; l < cnt; ++l) acc[l] = log_offset(shift[l], acc[l]);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t o = j * stride;
      for (int l = 0; l < cnt; l += W) {
        (kept_or(x + o + l, mask ? mask + o + l : nullptr, cnt - l, ninf) - V::load_n(acc + l, cnt - l))
            .store_n(y + o + l, cnt - l);
      }
    }
    return;
  }
  for (int l = 0; l < cnt; l += W) safe_inverse(V::load_n(acc + l, cnt - l)).store_n(acc + l, cnt - l);
  for (int64_t j = 0; j < n; ++j) {
    T* yj = y + j * stride;
    for (int l = 0; l < cnt; l += W) (V::load_n(yj + l, cnt - l) * V::load_n(acc + l, cnt - l)).store_n(yj + l, cnt - l);
  }
}

// The backward's two steps per element: softmax dx = y (dy - dot) with dot = sum y dy;
// log-softmax dx = dy - exp(l) dot with dot = sum of the dl whose l > -inf, and dx = 0 where
// l = -inf.
template <typename T, bool Log>
struct BackwardTerms {
  using V = Vec<T>;
  static V accumulate(V acc, V y, V dy) {
    if (!Log) return simd::fmadd(y, dy, acc);
    return acc + simd::select(simd::cmp_eq(y, V::set1(-std::numeric_limits<T>::infinity())), V::zero(), dy);
  }
  static V dx(V y, V dy, V dot) {
    if (!Log) return y * (dy - dot);
    return simd::select(simd::cmp_eq(y, V::set1(-std::numeric_limits<T>::infinity())), V::zero(),
                        dy - simd::exp(y) * dot);
  }
};

template <typename T, bool Log>
void softmax_backward_row(int64_t n, const T* y, const T* dy, T* dx) {
  using V = Vec<T>;
  using Terms = BackwardTerms<T, Log>;
  constexpr int W = V::W;
  const V acc = fold_row<T>(n, V::zero(), [&](V a, int64_t j, int cnt) {
    return Terms::accumulate(a, V::load_n(y + j, cnt), V::load_n(dy + j, cnt));
  }, [](V a, V b) { return a + b; });
  const V dot = V::set1(simd::hsum(acc));
  for (int64_t j = 0; j < n; j += W) {
    int cnt = static_cast<int>(n - j < W ? n - j : W);
    Terms::dx(V::load_n(y + j, cnt), V::load_n(dy + j, cnt), dot).store_n(dx + j, cnt);
  }
}

template <typename T, bool Log>
void softmax_backward_lanes(int64_t n, int64_t stride, int cnt, const T* y, const T* dy, T* dx) {
  using V = Vec<T>;
  using Terms = BackwardTerms<T, Log>;
  constexpr int W = V::W;
  alignas(64) T dot[kLanes];
  for (int l = 0; l < cnt; l += W) V::zero().store_n(dot + l, cnt - l);
  for (int64_t j = 0; j < n; ++j) {
    const int64_t o = j * stride;
    for (int l = 0; l < cnt; l += W) {
      Terms::accumulate(V::load_n(dot + l, cnt - l), V::load_n(y + o + l, cnt - l), V::load_n(dy + o + l, cnt - l))
          .store_n(dot + l, cnt - l);
    }
  }
  for (int64_t j = 0; j < n; ++j) {
    const int64_t o = j * stride;
    for (int l = 0; l < cnt; l += W) {
      Terms::dx(V::load_n(y + o + l, cnt - l), V::load_n(dy + o + l, cnt - l), V::load_n(dot + l, cnt - l))
          .store_n(dx + o + l, cnt - l);
    }
  }
}

// Calls fn(outer_index, first_column, column_count) for every group (one row when inner == 1,
// else up to kLanes columns), spread over threads in a fixed static partition.
template <typename T, typename Fn>
void for_each_group(const SoftmaxShape& s, Fn fn) {
  const int64_t lane_groups = s.inner == 1 ? 1 : (s.inner + kLanes - 1) / kLanes;
  const int64_t groups = s.outer * lane_groups;
  const int nt = simd::threads_for(s.outer * s.n * s.inner, 1 << 15);
#pragma omp parallel num_threads(nt) if (nt > 1)
  {
    simd::DenormalGuard guard;
#pragma omp for schedule(static)
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t o = g / lane_groups;
      const int64_t l0 = (g % lane_groups) * kLanes;
      fn(o, l0, static_cast<int>(s.inner - l0 < kLanes ? s.inner - l0 : kLanes));
    }
  }
}

template <typename T, bool Log>
void forward(const SoftmaxShape& s, const T* x, const uint8_t* mask, T* y) {
  if (s.outer == 0 || s.n == 0 || s.inner == 0) return;
  for_each_group<T>(s, [&](int64_t o, int64_t l0, int cnt) {
    const int64_t base = o * s.n * s.inner + l0;
    const uint8_t* m = mask ? mask + base : nullptr;
    if (s.inner == 1) {
      softmax_row<T, Log>(s.n, x + base, m, y + base);
    } else {
      softmax_lanes<T, Log>(s.n, s.inner, cnt, x + base, m, y + base);
    }
  });
}

template <typename T, bool Log>
void backward(const SoftmaxShape& s, const T* y, const T* dy, T* dx) {
  if (s.outer == 0 || s.n == 0 || s.inner == 0) return;
  for_each_group<T>(s, [&](int64_t o, int64_t l0, int cnt) {
    const int64_t base = o * s.n * s.inner + l0;
    if (s.inner == 1) {
      softmax_backward_row<T, Log>(s.n, y + base, dy + base, dx + base);
    } else {
      softmax_backward_lanes<T, Log>(s.n, s.inner, cnt, y + base, dy + base, dx + base);
    }
  });
}

template <typename T>
void softmax_forward(const SoftmaxShape& s, const T* x, const uint8_t* mask, T* y) {
  forward<T, false>(s, x, mask, y);
}
template <typename T>
void softmax_backward(const SoftmaxShape& s, const T* y, const T* dy, T* dx) {
  backward<T, false>(s, y, dy, dx);
}
template <typename T>
void log_softmax_forward(const SoftmaxShape& s, const T* x, const uint8_t* mask, T* y) {
  forward<T, true>(s, x, mask, y);
}
template <typename T>
void log_softmax_backward(const SoftmaxShape& s, const T* y, const T* dy, T* dx) {
  backward<T, true>(s, y, dy, dx);
}

}  // namespace

SEQKERN_KERNELS(softmax) {
  SEQKERN_ENTRY(softmax, forward, softmax_forward);
  SEQKERN_ENTRY(softmax, backward, softmax_backward);
  SEQKERN_ENTRY(softmax, log_forward, log_softmax_forward);
  SEQKERN_ENTRY(softmax, log_backward, log_softmax_backward);
}

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
