// simd.h: the vector type and math shared by every kernel, compiled once per ISA level.
//
// Vec<T> wraps one register: 16 floats / 8 doubles (AVX-512), 8 / 4 (AVX2+FMA), 1 (portable).
// Everything here lives in seqkern::<level>::simd. An inline helper outside the per-level
// namespace would be merged by the linker across levels and could run AVX-512 code on an AVX2
// machine; for the same reason kernels avoid out-of-line std:: templates (std::vector and
// friends) and allocate through Buffer below.
//
// Math (error bounds measured against long double over 1e7 points per range):
//   exp     Cody-Waite range reduction, degree-6 minimax (float, <= 2 ulp) or degree-13 Taylor
//           (double, <= 2 ulp); exactly 0 below the smallest normal result (x = -inf gives 0).
//   tanh    odd minimax polynomial (float) / rational (double) for |x| < 0.625, else
//           1 - 2/(exp(2|x|)+1): <= 3 ulp float, <= 4 ulp double.
//   sigmoid 1/(1+exp(-x)): <= 3 ulp.
// NaN inputs give NaN outputs.
#pragma once

#ifndef SEQKERN_ISA_NS
#error "simd.h is compiled once per ISA level; SEQKERN_ISA_NS must name the level"
#endif

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "seqkern/kernels.h"

#if defined(__x86_64__) || defined(__i386__) || defined(_M_X64)
#include <immintrin.h>
#define SEQKERN_X86 1
#endif
// Unrolls the loop that follows completely (register tiles: the trip counts are template
// constants, and a loop left rolled keeps its accumulators in memory).
#if defined(__clang__)
#define SEQKERN_UNROLL _Pragma("unroll")
#elif defined(__GNUC__)
#define SEQKERN_UNROLL _Pragma("GCC unroll 16")
#else
#define SEQKERN_UNROLL
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace simd {

template <typename T>
struct Vec;

// ------------------------------------------------------------------------------------------
#if defined(__AVX512F__)

template <>
struct Vec<float> {
  static constexpr int W = 16;
  using Mask = __mmask16;
  __m512 v;
  static Vec zero() { return {_mm512_setzero_ps()}; }
  static Vec set1(float a) { return {_mm512_set1_ps(a)}; }
  static Vec load(const float* p) { return {_mm512_loadu_ps(p)}; }
  static Vec load_n(const float* p, int n) { return {_mm512_maskz_loadu_ps(tail(n), p)}; }
  // 16 pairs of bfloat16 numbers (bit patterns, the first of each pair in the low half of a 32-bit
  // word) widened to float, exactly: the first numbers in `even`, the second in `odd`.
  static void load_bf16_pairs(const uint16_t* p, Vec& even, Vec& odd) { widen_pairs(_mm512_loadu_si512(p), even, odd); }
  static void load_bf16_pairs_n(const uint16_t* p, int n, Vec& even, Vec& odd) {
    widen_pairs(_mm512_maskz_loadu_epi32(tail(n), p), even, odd);
  }
  static void widen_pairs(__m512i w, Vec& even, Vec& odd) {
    even.v = _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
    odd.v = _mm512_castsi512_ps(_mm512_and_si512(w, _mm512_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
  void store(float* p) const { _mm512_storeu_ps(p, v); }
  void store_n(float* p, int n) const { _mm512_mask_storeu_ps(p, tail(n), v); }
  static Mask tail(int n) { return n >= W ? Mask(0xFFFF) : Mask((1u << n) - 1u); }
  static Mask first(int n) { return tail(n); }
  static Mask keep_bytes(const uint8_t* m, int n) {
    __m128i b = _mm_maskz_loadu_epi8(n >= W ? 0xFFFF : ((1u << n) - 1u), m);
    return _mm512_test_epi32_mask(_mm512_cvtepu8_epi32(b), _mm512_cvtepu8_epi32(b));
  }
};

template <>
struct Vec<double> {
  static constexpr int W = 8;
  using Mask = __mmask8;
  __m512d v;
  static Vec zero() { return {_mm512_setzero_pd()}; }
  static Vec set1(double a) { return {_mm512_set1_pd(a)}; }
  static Vec load(const double* p) { return {_mm512_loadu_pd(p)}; }
  static Vec load_n(const double* p, int n) { return {_mm512_maskz_loadu_pd(tail(n), p)}; }
  void store(double* p) const { _mm512_storeu_pd(p, v); }
  void store_n(double* p, int n) const { _mm512_mask_storeu_pd(p, tail(n), v); }
  static Mask tail(int n) { return n >= W ? Mask(0xFF) : Mask((1u << n) - 1u); }
  static Mask first(int n) { return tail(n); }
  static Mask keep_bytes(const uint8_t* m, int n) {
    __m128i b = _mm_maskz_loadu_epi8(static_cast<__mmask16>(n >= W ? 0xFF : ((1u << n) - 1u)), m);
    __m512i w = _mm512_cvtepu8_epi64(b);
    return _mm512_test_epi64_mask(w, w);
  }
};

inline Vec<float> operator+(Vec<float> a, Vec<float> b) { return {_mm512_add_ps(a.v, b.v)}; }
inline Vec<float> operator-(Vec<float> a, Vec<float> b) { return {_mm512_sub_ps(a.v, b.v)}; }
inline Vec<float> operator*(Vec<float> a, Vec<float> b) { return {_mm512_mul_ps(a.v, b.v)}; }
inline Vec<float> operator/(Vec<float> a, Vec<float> b) { return {_mm512_div_ps(a.v, b.v)}; }
inline Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return {_mm512_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec<float> fnmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return {_mm512_fnmadd_ps(a.v, b.v, c.v)}; }
// max/min return b when either operand is NaN: pass the data as b so NaN propagates.
inline Vec<float> max(Vec<float> a, Vec<float> b) { return {_mm512_max_ps(a.v, b.v)}; }
inline Vec<float> min(Vec<float> a, Vec<float> b) { return {_mm512_min_ps(a.v, b.v)}; }
inline Vec<float> abs(Vec<float> a) { return {_mm512_abs_ps(a.v)}; }
inline Vec<float> copysign(Vec<float> mag, Vec<float> sgn) {
  const __m512i s = _mm512_set1_epi32(0x80000000);
  return {_mm512_castsi512_ps(_mm512_ternarylogic_epi32(s, _mm512_castps_si512(mag.v), _mm512_castps_si512(sgn.v), 0xAC))};
}
inline Vec<float> round(Vec<float> a) { return {_mm512_roundscale_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline Vec<float> select(Vec<float>::Mask m, Vec<float> a, Vec<float> b) { return {_mm512_mask_blend_ps(m, b.v, a.v)}; }
inline Vec<float>::Mask cmp_lt(Vec<float> a, Vec<float> b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_LT_OQ); }
inline Vec<float>::Mask cmp_eq(Vec<float> a, Vec<float> b) { return _mm512_cmp_ps_mask(a.v, b.v, _CMP_EQ_OQ); }
inline float hsum(Vec<float> a) { return _mm512_reduce_add_ps(a.v); }
inline float hmax(Vec<float> a) { return _mm512_reduce_max_ps(a.v); }
inline Vec<float> pow2i(Vec<float> n) {
  __m512 t = _mm512_add_ps(n.v, _mm512_set1_ps(8388608.0f + 127.0f));
  return {_mm512_castsi512_ps(_mm512_slli_epi32(_mm512_castps_si512(t), 23))};
}

inline Vec<double> operator+(Vec<double> a, Vec<double> b) { return {_mm512_add_pd(a.v, b.v)}; }
inline Vec<double> operator-(Vec<double> a, Vec<double> b) { return {_mm512_sub_pd(a.v, b.v)}; }
inline Vec<double> operator*(Vec<double> a, Vec<double> b) { return {_mm512_mul_pd(a.v, b.v)}; }
inline Vec<double> operator/(Vec<double> a, Vec<double> b) { return {_mm512_div_pd(a.v, b.v)}; }
inline Vec<double> fmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return {_mm512_fmadd_pd(a.v, b.v, c.v)}; }
inline Vec<double> fnmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return {_mm512_fnmadd_pd(a.v, b.v, c.v)}; }
inline Vec<double> max(Vec<double> a, Vec<double> b) { return {_mm512_max_pd(a.v, b.v)}; }
inline Vec<double> min(Vec<double> a, Vec<double> b) { return {_mm512_min_pd(a.v, b.v)}; }
inline Vec<double> abs(Vec<double> a) { return {_mm512_abs_pd(a.v)}; }
inline Vec<double> copysign(Vec<double> mag, Vec<double> sgn) {
  const __m512i s = _mm512_set1_epi64(static_cast<long long>(0x8000000000000000ull));
  return {_mm512_castsi512_pd(_mm512_ternarylogic_epi64(s, _mm512_castpd_si512(mag.v), _mm512_castpd_si512(sgn.v), 0xAC))};
}
inline Vec<double> round(Vec<double> a) { return {_mm512_roundscale_pd(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline Vec<double> select(Vec<double>::Mask m, Vec<double> a, Vec<double> b) { return {_mm512_mask_blend_pd(m, b.v, a.v)}; }
inline Vec<double>::Mask cmp_lt(Vec<double> a, Vec<double> b) { return _mm512_cmp_pd_mask(a.v, b.v, _CMP_LT_OQ); }
inline Vec<double>::Mask cmp_eq(Vec<double> a, Vec<double> b) { return _mm512_cmp_pd_mask(a.v, b.v, _CMP_EQ_OQ); }
inline double hsum(Vec<double> a) { return _mm512_reduce_add_pd(a.v); }
inline double hmax(Vec<double> a) { return _mm512_reduce_max_pd(a.v); }
inline Vec<double> pow2i(Vec<double> n) {
  __m512d t = _mm512_add_pd(n.v, _mm512_set1_pd(4503599627370496.0 + 1023.0));
  return {_mm512_castsi512_pd(_mm512_slli_epi64(_mm512_castpd_si512(t), 52))};
}

// ------------------------------------------------------------------------------------------
#elif defined(__AVX2__) && defined(__FMA__)

namespace detail {
inline __m256i tail_epi32(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline __m256i tail_epi64(int n) {
  return _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
}
}  // namespace detail

template <>
struct Vec<float> {
  static constexpr int W = 8;
  using Mask = __m256;
  __m256 v;
  static Vec zero() { return {_mm256_setzero_ps()}; }
  static Vec set1(float a) { return {_mm256_set1_ps(a)}; }
  static Vec load(const float* p) { return {_mm256_loadu_ps(p)}; }
  static Vec load_n(const float* p, int n) {
    return n >= W ? load(p) : Vec{_mm256_maskload_ps(p, detail::tail_epi32(n))};
  }
  static void load_bf16_pairs(const uint16_t* p, Vec& even, Vec& odd) {
    widen_pairs(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)), even, odd);
  }
  static void load_bf16_pairs_n(const uint16_t* p, int n, Vec& even, Vec& odd) {
    uint16_t t[2 * W] = {};
    for (int i = 0; i < 2 * n && i < 2 * W; ++i) t[i] = p[i];
    load_bf16_pairs(t, even, odd);
  }
  static void widen_pairs(__m256i w, Vec& even, Vec& odd) {
    even.v = _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
    odd.v = _mm256_castsi256_ps(_mm256_and_si256(w, _mm256_set1_epi32(static_cast<int>(0xFFFF0000u))));
  }
  void store(float* p) const { _mm256_storeu_ps(p, v); }
  // Partial stores in 4-, 2- and 1-lane pieces: AMD Zen runs vmaskmovps stores as a long
  // microcoded sequence (measured on Zen 3: the tail block of an H = 100 LSTM cost as much as
  // six full blocks).
  void store_n(float* p, int n) const {
    if (n >= W) {
      store(p);
      return;
    }
    if (n <= 0) return;
    __m128 x = _mm256_castps256_ps128(v);
    if (n & 4) {
      _mm_storeu_ps(p, x);
      x = _mm256_extractf128_ps(v, 1);
      p += 4;
    }
    if (n & 2) {
      _mm_storel_pi(reinterpret_cast<__m64*>(p), x);
      x = _mm_movehl_ps(x, x);
      p += 2;
    }
    if (n & 1) _mm_store_ss(p, x);
  }
  static Mask first(int n) { return _mm256_castsi256_ps(detail::tail_epi32(n)); }
  static Mask keep_bytes(const uint8_t* m, int n) {
    uint8_t tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    std::memcpy(tmp, m, static_cast<size_t>(n >= W ? W : n));
    __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(tmp));
    __m256i w = _mm256_cvtepu8_epi32(b);
    return _mm256_castsi256_ps(_mm256_cmpgt_epi32(w, _mm256_setzero_si256()));
  }
};

template <>
struct Vec<double> {
  static constexpr int W = 4;
  using Mask = __m256d;
  __m256d v;
  static Vec zero() { return {_mm256_setzero_pd()}; }
  static Vec set1(double a) { return {_mm256_set1_pd(a)}; }
  static Vec load(const double* p) { return {_mm256_loadu_pd(p)}; }
  static Vec load_n(const double* p, int n) {
    return n >= W ? load(p) : Vec{_mm256_maskload_pd(p, detail::tail_epi64(n))};
  }
  void store(double* p) const { _mm256_storeu_pd(p, v); }
  void store_n(double* p, int n) const {  // in pieces, as Vec<float>::store_n
    if (n >= W) {
      store(p);
      return;
    }
    if (n <= 0) return;
    __m128d x = _mm256_castpd256_pd128(v);
    if (n & 2) {
      _mm_storeu_pd(p, x);
      x = _mm256_extractf128_pd(v, 1);
      p += 2;
    }
    if (n & 1) _mm_store_sd(p, x);
  }
  static Mask first(int n) { return _mm256_castsi256_pd(detail::tail_epi64(n)); }
  static Mask keep_bytes(const uint8_t* m, int n) {
    uint8_t tmp[4] = {0, 0, 0, 0};
    std::memcpy(tmp, m, static_cast<size_t>(n >= W ? W : n));
    int32_t word;
    std::memcpy(&word, tmp, 4);
    __m256i w = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(word));
    return _mm256_castsi256_pd(_mm256_cmpgt_epi64(w, _mm256_setzero_si256()));
  }
};

inline Vec<float> operator+(Vec<float> a, Vec<float> b) { return {_mm256_add_ps(a.v, b.v)}; }
inline Vec<float> operator-(Vec<float> a, Vec<float> b) { return {_mm256_sub_ps(a.v, b.v)}; }
inline Vec<float> operator*(Vec<float> a, Vec<float> b) { return {_mm256_mul_ps(a.v, b.v)}; }
inline Vec<float> operator/(Vec<float> a, Vec<float> b) { return {_mm256_div_ps(a.v, b.v)}; }
inline Vec<float> fmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return {_mm256_fmadd_ps(a.v, b.v, c.v)}; }
inline Vec<float> fnmadd(Vec<float> a, Vec<float> b, Vec<float> c) { return {_mm256_fnmadd_ps(a.v, b.v, c.v)}; }
inline Vec<float> max(Vec<float> a, Vec<float> b) { return {_mm256_max_ps(a.v, b.v)}; }
inline Vec<float> min(Vec<float> a, Vec<float> b) { return {_mm256_min_ps(a.v, b.v)}; }
inline Vec<float> abs(Vec<float> a) { return {_mm256_andnot_ps(_mm256_set1_ps(-0.0f), a.v)}; }
inline Vec<float> copysign(Vec<float> mag, Vec<float> sgn) {
  const __m256 s = _mm256_set1_ps(-0.0f);
  return {_mm256_or_ps(_mm256_andnot_ps(s, mag.v), _mm256_and_ps(s, sgn.v))};
}
inline Vec<float> round(Vec<float> a) { return {_mm256_round_ps(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline Vec<float> select(Vec<float>::Mask m, Vec<float> a, Vec<float> b) { return {_mm256_blendv_ps(b.v, a.v, m)}; }
inline Vec<float>::Mask cmp_lt(Vec<float> a, Vec<float> b) { return _mm256_cmp_ps(a.v, b.v, _CMP_LT_OQ); }
inline Vec<float>::Mask cmp_eq(Vec<float> a, Vec<float> b) { return _mm256_cmp_ps(a.v, b.v, _CMP_EQ_OQ); }
inline float hsum(Vec<float> a) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline float hmax(Vec<float> a) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(a.v), _mm256_extractf128_ps(a.v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}
inline Vec<float> pow2i(Vec<float> n) {
  __m256 t = _mm256_add_ps(n.v, _mm256_set1_ps(8388608.0f + 127.0f));
  return {_mm256_castsi256_ps(_mm256_slli_epi32(_mm256_castps_si256(t), 23))};
}

inline Vec<double> operator+(Vec<double> a, Vec<double> b) { return {_mm256_add_pd(a.v, b.v)}; }
inline Vec<double> operator-(Vec<double> a, Vec<double> b) { return {_mm256_sub_pd(a.v, b.v)}; }
inline Vec<double> operator*(Vec<double> a, Vec<double> b) { return {_mm256_mul_pd(a.v, b.v)}; }
inline Vec<double> operator/(Vec<double> a, Vec<double> b) { return {_mm256_div_pd(a.v, b.v)}; }
inline Vec<double> fmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return {_mm256_fmadd_pd(a.v, b.v, c.v)}; }
inline Vec<double> fnmadd(Vec<double> a, Vec<double> b, Vec<double> c) { return {_mm256_fnmadd_pd(a.v, b.v, c.v)}; }
inline Vec<double> max(Vec<double> a, Vec<double> b) { return {_mm256_max_pd(a.v, b.v)}; }
inline Vec<double> min(Vec<double> a, Vec<double> b) { return {_mm256_min_pd(a.v, b.v)}; }
inline Vec<double> abs(Vec<double> a) { return {_mm256_andnot_pd(_mm256_set1_pd(-0.0), a.v)}; }
inline Vec<double> copysign(Vec<double> mag, Vec<double> sgn) {
  const __m256d s = _mm256_set1_pd(-0.0);
  return {_mm256_or_pd(_mm256_andnot_pd(s, mag.v), _mm256_and_pd(s, sgn.v))};
}
inline Vec<double> round(Vec<double> a) { return {_mm256_round_pd(a.v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC)}; }
inline Vec<double> select(Vec<double>::Mask m, Vec<double> a, Vec<double> b) { return {_mm256_blendv_pd(b.v, a.v, m)}; }
inline Vec<double>::Mask cmp_lt(Vec<double> a, Vec<double> b) { return _mm256_cmp_pd(a.v, b.v, _CMP_LT_OQ); }
inline Vec<double>::Mask cmp_eq(Vec<double> a, Vec<double> b) { return _mm256_cmp_pd(a.v, b.v, _CMP_EQ_OQ); }
inline double hsum(Vec<double> a) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
  return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
inline double hmax(Vec<double> a) {
  __m128d s = _mm_max_pd(_mm256_castpd256_pd128(a.v), _mm256_extractf128_pd(a.v, 1));
  return _mm_cvtsd_f64(_mm_max_sd(s, _mm_unpackhi_pd(s, s)));
}
inline Vec<double> pow2i(Vec<double> n) {
  __m256d t = _mm256_add_pd(n.v, _mm256_set1_pd(4503599627370496.0 + 1023.0));
  return {_mm256_castsi256_pd(_mm256_slli_epi64(_mm256_castpd_si256(t), 52))};
}

// ------------------------------------------------------------------------------------------
#else  // portable scalar level: one lane, plain C++ (the compiler may still vectorize loops)

template <typename T>
struct Vec {
  static constexpr int W = 1;
  using Mask = bool;
  T v;
  static Vec zero() { return {T(0)}; }
  static Vec set1(T a) { return {a}; }
  static Vec load(const T* p) { return {*p}; }
  static Vec load_n(const T* p, int n) { return {n > 0 ? *p : T(0)}; }
  static void load_bf16_pairs(const uint16_t* p, Vec& even, Vec& odd) {
    even = {T(widen(p[0]))};
    odd = {T(widen(p[1]))};
  }
  static void load_bf16_pairs_n(const uint16_t* p, int n, Vec& even, Vec& odd) {
    if (n > 0) {
      load_bf16_pairs(p, even, odd);
    } else {
      even = odd = zero();
    }
  }
  static float widen(uint16_t h) {
    const uint32_t b = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
  }
  void store(T* p) const { *p = v; }
  void store_n(T* p, int n) const { if (n > 0) *p = v; }
  static Mask first(int n) { return n > 0; }
  static Mask keep_bytes(const uint8_t* m, int n) { return n > 0 && *m != 0; }
};

template <typename T> inline Vec<T> operator+(Vec<T> a, Vec<T> b) { return {a.v + b.v}; }
template <typename T> inline Vec<T> operator-(Vec<T> a, Vec<T> b) { return {a.v - b.v}; }
template <typename T> inline Vec<T> operator*(Vec<T> a, Vec<T> b) { return {a.v * b.v}; }
template <typename T> inline Vec<T> operator/(Vec<T> a, Vec<T> b) { return {a.v / b.v}; }
template <typename T> inline Vec<T> fmadd(Vec<T> a, Vec<T> b, Vec<T> c) { return {a.v * b.v + c.v}; }
template <typename T> inline Vec<T> fnmadd(Vec<T> a, Vec<T> b, Vec<T> c) { return {c.v - a.v * b.v}; }
template <typename T> inline Vec<T> max(Vec<T> a, Vec<T> b) { return {a.v > b.v ? a.v : b.v}; }
template <typename T> inline Vec<T> min(Vec<T> a, Vec<T> b) { return {a.v < b.v ? a.v : b.v}; }
template <typename T> inline Vec<T> abs(Vec<T> a) { return {std::fabs(a.v)}; }
template <typename T> inline Vec<T> copysign(Vec<T> m, Vec<T> s) { return {std::copysign(m.v, s.v)}; }
template <typename T> inline Vec<T> round(Vec<T> a) { return {std::nearbyint(a.v)}; }
template <typename T> inline Vec<T> select(bool m, Vec<T> a, Vec<T> b) { return m ? a : b; }
template <typename T> inline bool cmp_lt(Vec<T> a, Vec<T> b) { return a.v < b.v; }
template <typename T> inline bool cmp_eq(Vec<T> a, Vec<T> b) { return a.v == b.v; }
template <typename T> inline T hsum(Vec<T> a) { return a.v; }
template <typename T> inline T hmax(Vec<T> a) { return a.v; }
inline Vec<float> pow2i(Vec<float> n) {
  float t = n.v + (8388608.0f + 127.0f);
  uint32_t bits;
  std::memcpy(&bits, &t, 4);
  bits <<= 23;
  float r;
  std::memcpy(&r, &bits, 4);
  return {r};
}
inline Vec<double> pow2i(Vec<double> n) {
  double t = n.v + (4503599627370496.0 + 1023.0);
  uint64_t bits;
  std::memcpy(&bits, &t, 8);
  bits <<= 52;
  double r;
  std::memcpy(&r, &bits, 8);
  return {r};
}

#endif

// ------------------------------------------------------------------------------------------
// Math on top of the primitives, the same source for every level.

template <typename T> struct ExpConst;
template <> struct ExpConst<float> {
  static constexpr float lo = -87.3365447f;  // smallest x with a normal exp(x); below gives 0
  static constexpr float hi = 88.3762626f;
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2_hi = 0.693359375f;
  static constexpr float ln2_lo = -2.12194440e-4f;
};
template <> struct ExpConst<double> {
  static constexpr double lo = -708.3964185322641;
  static constexpr double hi = 709.0;
  static constexpr double log2e = 1.4426950408889634074;
  static constexpr double ln2_hi = 6.93145751953125e-1;
  static constexpr double ln2_lo = 1.42860682030941723212e-6;
};

inline Vec<float> exp_poly(Vec<float> r) {
  using V = Vec<float>;
  V p = V::set1(1.9875691500e-4f);
  p = fmadd(p, r, V::set1(1.3981999507e-3f));
  p = fmadd(p, r, V::set1(8.3334519073e-3f));
  p = fmadd(p, r, V::set1(4.1665795894e-2f));
  p = fmadd(p, r, V::set1(1.6666665459e-1f));
  p = fmadd(p, r, V::set1(5.0000001201e-1f));
  return fmadd(p * r, r, r + V::set1(1.0f));
}

inline Vec<double> exp_poly(Vec<double> r) {
  using V = Vec<double>;
  // Taylor series to r^13: the remainder is below 5e-18 for |r| <= ln2/2.
  V p = V::set1(1.0 / 6227020800.0);
  p = fmadd(p, r, V::set1(1.0 / 479001600.0));
  p = fmadd(p, r, V::set1(1.0 / 39916800.0));
  p = fmadd(p, r, V::set1(1.0 / 3628800.0));
  p = fmadd(p, r, V::set1(1.0 / 362880.0));
  p = fmadd(p, r, V::set1(1.0 / 40320.0));
  p = fmadd(p, r, V::set1(1.0 / 5040.0));
  p = fmadd(p, r, V::set1(1.0 / 720.0));
  p = fmadd(p, r, V::set1(1.0 / 120.0));
  p = fmadd(p, r, V::set1(1.0 / 24.0));
  p = fmadd(p, r, V::set1(1.0 / 6.0));
  p = fmadd(p, r, V::set1(0.5));
  return fmadd(p * r, r, r + V::set1(1.0));
}

template <typename T>
inline Vec<T> exp(Vec<T> x) {
  using V = Vec<T>;
  using C = ExpConst<T>;
  const V lo = V::set1(C::lo);
  V xc = min(V::set1(C::hi), max(lo, x));  // x second: NaN propagates
  V n = round(xc * V::set1(C::log2e));
  V r = fnmadd(n, V::set1(C::ln2_hi), xc);
  r = fnmadd(n, V::set1(C::ln2_lo), r);
  V y = exp_poly(r) * pow2i(n);
  return select(cmp_lt(x, lo), V::zero(), y);
}

template <typename T>
inline Vec<T> sigmoid(Vec<T> x) {
  using V = Vec<T>;
  return V::set1(T(1)) / (V::set1(T(1)) + exp(V::zero() - x));
}

inline Vec<float> tanh_small(Vec<float> x) {
  using V = Vec<float>;
  V z = x * x;
  V p = V::set1(-5.70498872745e-3f);
  p = fmadd(p, z, V::set1(2.06390887954e-2f));
  p = fmadd(p, z, V::set1(-5.37397155531e-2f));
  p = fmadd(p, z, V::set1(1.33314422036e-1f));
  p = fmadd(p, z, V::set1(-3.33332819422e-1f));
  return fmadd(p * z, x, x);
}

inline Vec<double> tanh_small(Vec<double> x) {
  using V = Vec<double>;
  V z = x * x;
  V p = V::set1(-9.64399179425052238628e-1);
  p = fmadd(p, z, V::set1(-9.92877231001918586564e1));
  p = fmadd(p, z, V::set1(-1.61468768441708447952e3));
  V q = z + V::set1(1.12811678491632931402e2);
  q = fmadd(q, z, V::set1(2.23548839060100448583e3));
  q = fmadd(q, z, V::set1(4.84406305325125486048e3));
  return fmadd(x * z, p / q, x);
}

template <typename T>
inline Vec<T> tanh(Vec<T> x) {
  using V = Vec<T>;
  V ax = abs(x);
  V big = V::set1(T(1)) - V::set1(T(2)) / (exp(ax + ax) + V::set1(T(1)));
  big = copysign(big, x);
  return select(cmp_lt(ax, V::set1(T(0.625))), tanh_small(x), big);
}

// ------------------------------------------------------------------------------------------
// Level-1 helpers on contiguous vectors of n entries (tails handled by masked loads/stores).

// sum_i x[i] * y[i], accumulated lane-wise in index order, then reduced.
template <typename T>
inline T dot(int64_t n, const T* x, const T* y) {
  using V = Vec<T>;
  V acc = V::zero();
  for (int64_t c = 0; c < n; c += V::W) {
    const int cnt = static_cast<int>(n - c < V::W ? n - c : V::W);
    acc = fmadd(V::load_n(x + c, cnt), V::load_n(y + c, cnt), acc);
  }
  return hsum(acc);
}

// y += alpha * x.
template <typename T>
inline void axpy(int64_t n, T alpha, const T* x, T* y) {
  using V = Vec<T>;
  const V va = V::set1(alpha);
  for (int64_t c = 0; c < n; c += V::W) {
    const int cnt = static_cast<int>(n - c < V::W ? n - c : V::W);
    fmadd(va, V::load_n(x + c, cnt), V::load_n(y + c, cnt)).store_n(y + c, cnt);
  }
}

// ------------------------------------------------------------------------------------------
// Hygiene helpers.

// Sets flush-to-zero and denormals-are-zero for this thread's lifetime of the guard; denormal
// operands slow x86 arithmetic by 10-100x. Each OpenMP worker opens its own guard.
struct DenormalGuard {
#if defined(SEQKERN_X86)
  unsigned int saved;
  DenormalGuard() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040u); }
  ~DenormalGuard() { _mm_setcsr(saved); }
#else
  DenormalGuard() {}
#endif
  DenormalGuard(const DenormalGuard&) = delete;
  DenormalGuard& operator=(const DenormalGuard&) = delete;
};

// 64-byte aligned scratch memory; throws std::bad_alloc (MemoryError in Python) on failure.
template <typename T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(int64_t n) { reset(n); }
  ~Buffer() { std::free(p_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void reset(int64_t n) {
    std::free(p_);
    p_ = nullptr;
    n_ = 0;
    if (n <= 0) return;
    size_t bytes = (static_cast<size_t>(n) * sizeof(T) + 63) & ~size_t(63);
    p_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!p_) throw std::bad_alloc();
    n_ = n;
  }
  T* data() { return p_; }
  const T* data() const { return p_; }
  int64_t size() const { return n_; }
  T& operator[](int64_t i) { return p_[i]; }
  const T& operator[](int64_t i) const { return p_[i]; }

 private:
  T* p_ = nullptr;
  int64_t n_ = 0;
};

// This thread's index in the enclosing OpenMP team, and the team's size (0 and 1 outside one).
inline int team_rank() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}
inline int team_size() {
#ifdef _OPENMP
  return omp_get_num_threads();
#else
  return 1;
#endif
}

// Threads for `work` units of roughly `grain` cost each: never more than the caller's OpenMP
// limit (set_num_threads / OMP_NUM_THREADS / threadpoolctl), and 1 for small problems where
// waking a team costs more than it saves.
inline int threads_for(int64_t work, int64_t min_per_thread) {
#ifdef _OPENMP
  int nt = seqkern::max_threads();
  if (min_per_thread > 0) {
    int64_t cap = work / min_per_thread;
    if (cap < nt) nt = static_cast<int>(cap < 1 ? 1 : cap);
  }
  return nt < 1 ? 1 : nt;
#else
  (void)work;
  (void)min_per_thread;
  return 1;
#endif
}

}  // namespace simd
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
