// ops/lowp.h: the low-precision weight formats of the recurrent cells (float32 layers only).
//
// bf16: every weight is a bfloat16 number (seqkern.reference.lowp.round_bfloat16 rounds to nearest
// even), kept as float32 in w_ih and w_hh for the GEMM paths and as 16-bit panels (RnnParams::wih_b,
// whh_b) for the fused tiles, which widen them in registers. The arithmetic is the float32
// kernels'. A 16-bit panel is the float panel (kernels/recurrent.h) with rows k and k+1 (k even)
// interleaved element by element: block j at j·C·16·Kp (C the panel's gate columns, Kp = K
// rounded up to even), the pair at k·C·w, element e of the row at 2e (row k) and 2e + 1 (row k+1;
// 0 past K) (pack_bf16_pairs, called with G = C).
//
// int8: each product of a step, x_t·w_ihᵀ and h_{t-1}·w_hhᵀ, in integers (seqkern.reference.lowp
// is the spec):
//   weights    w[n, k] = s[n]·q[n, k], q in [-127, 127], one scale per gate column n
//   activations, per row m of x_t and of h_{t-1}, quantized at every step:
//              a[m] = max_k |v[m, k]| / 127 (float32), u[m, k] = rint(v[m, k] / a[m]) in [-127, 127]
//              (all 0 when a[m] = 0)
//   product    P[m, n] = (a[m]·s[n])·float(Σ_k u[m, k]·q[n, k]) (float32 products, the sum exact in
//              32-bit integers), then pre-activation = bias + (P_x + P_h), and the cell as in float.
// The kernels compute Σ_k (u + 128)·q - 128·Σ_k q with VNNI's vpdpbusd (unsigned by signed bytes),
// Σ_k |u|·(sign(u)·q) with vpmaddubsw elsewhere (pairs within 16 bits), or plain integers; every
// level gets the same integers, so the same bits. K (D, and H) is at most kInt8MaxK, so that no
// 32-bit sum can overflow.
#pragma once

#include <cstdint>
#include <cstring>

namespace seqkern {

// The bf16 panel of a float panel (G gates, H units, K rows) whose values are bfloat16 numbers.
inline void pack_bf16_pairs(int64_t G, int64_t H, int64_t K, const float* fpanel, uint16_t* out) {
  const int64_t U = 16, Kp = K + (K & 1);
  for (int64_t j = 0; j * U < H; ++j) {
    const int64_t w = H - j * U < U ? H - j * U : U;
    const float* src = fpanel + j * G * U * K;
    uint16_t* dst = out + j * G * U * Kp;
    for (int64_t k = 0; k < Kp; ++k)
      for (int64_t e = 0; e < G * w; ++e) {
        uint32_t b = 0;
        if (k < K) std::memcpy(&b, src + k * G * w + e, 4);
        dst[(k & ~int64_t(1)) * G * w + 2 * e + (k & 1)] = static_cast<uint16_t>(b >> 16);
      }
  }
}
inline int64_t bf16_panel_size(int64_t G, int64_t H, int64_t K) {
  return (H + 15) / 16 * G * 16 * (K + (K & 1));
}

// Unit blocks of 16 units, as the float panels' (kernels/recurrent.h: 64 bytes of float).
constexpr int64_t kInt8Units = 16;
constexpr int64_t kInt8MaxK = 65536;

// One product's int8 weights for G gate columns per unit, H units and K inputs. panel: unit block
// j (units j*16 .. j*16+15, the last block padded with zero weights) at j·K4·G·64 bytes, K4 =
// ceil(K/4) groups of 4 inputs, then per group and gate 16 units x 4 inputs:
//   panel[((j·K4 + g)·G + q)·64 + r·4 + i] = q[q·H + j·16 + r, 4g + i]   (0 past K or H)
// scale and colsum (Σ_k q) per gate column, by block too: [(j·G + q)·16 + r] (0 past H).
struct Int8Panels {
  const int8_t* panel = nullptr;
  const float* scale = nullptr;
  const int32_t* colsum = nullptr;
};

struct Int8Weights {
  Int8Panels ih, hh;
};

inline int64_t int8_groups(int64_t K) { return (K + 3) / 4; }
inline int64_t int8_panel_bytes(int64_t G, int64_t H, int64_t K) {
  return (H + kInt8Units - 1) / kInt8Units * int8_groups(K) * G * 64;
}
// Entries of the per-column arrays (scale, colsum) in their block layout.
inline int64_t int8_columns(int64_t G, int64_t H) { return (H + kInt8Units - 1) / kInt8Units * G * kInt8Units; }

// Packs q (G·H, K), row n = gate column n, and its scales (G·H, natural order) into `panel`
// (int8_panel_bytes), `scale_p` and `colsum` (int8_columns each, block layout).
inline void pack_int8(int64_t G, int64_t H, int64_t K, const int8_t* q, const float* scale, int8_t* panel,
                      float* scale_p, int32_t* colsum) {
  const int64_t K4 = int8_groups(K), nb = (H + kInt8Units - 1) / kInt8Units;
  for (int64_t i = 0; i < int8_panel_bytes(G, H, K); ++i) panel[i] = 0;
  for (int64_t i = 0; i < int8_columns(G, H); ++i) {
    scale_p[i] = 0.0f;
    colsum[i] = 0;
  }
  for (int64_t gate = 0; gate < G; ++gate)
    for (int64_t u = 0; u < H; ++u) {
      const int64_t n = gate * H + u, at = ((u / kInt8Units) * G + gate) * kInt8Units + u % kInt8Units;
      int32_t sum = 0;
      for (int64_t k = 0; k < K; ++k) sum += q[n * K + k];
      colsum[at] = sum;
      scale_p[at] = scale[n];
    }
  for (int64_t j = 0; j < nb; ++j)
    for (int64_t g = 0; g < K4; ++g)
      for (int64_t gate = 0; gate < G; ++gate)
        for (int64_t r = 0; r < kInt8Units && j * kInt8Units + r < H; ++r)
          for (int64_t i = 0; i < 4 && 4 * g + i < K; ++i)
            panel[((j * K4 + g) * G + gate) * 64 + r * 4 + i] = q[(gate * H + j * kInt8Units + r) * K + 4 * g + i];
}

}  // namespace seqkern
