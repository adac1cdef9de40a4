// shapes.h: the small structs that kernels receive beside raw pointers, and the ISA enum.
//
// Kernels never see Python objects: cpp/bindings/ validates, allocates, and hands over pointers
// plus one of these. All sizes are int64_t element counts; every array is C-contiguous.
#pragma once

#include <cstdint>

namespace seqkern {

enum class Isa : int { scalar = 0, avx2 = 1, avx512 = 2 };

// softmax over the middle axis of x viewed as (outer, n, inner).
struct SoftmaxShape {
  int64_t outer = 0;
  int64_t n = 0;
  int64_t inner = 0;
};

// A recurrent layer (LSTM, GRU) over a time-major sequence: x (T, B, D), hidden size H.
struct RnnShape {
  int64_t T = 0;
  int64_t B = 0;
  int64_t D = 0;
  int64_t H = 0;
};

// Scaled dot-product attention over `batch` independent problems (the product of the leading
// dims, e.g. B*NH): q (batch, lq, dh), k (batch, lk, dh), v (batch, lk, dv), out (batch, lq, dv).
struct AttnShape {
  int64_t batch = 0;
  int64_t lq = 0;
  int64_t lk = 0;
  int64_t dh = 0;
  int64_t dv = 0;
  double scale = 1.0;
  bool causal = false;        // query i sees keys j <= i + causal_offset
  int64_t causal_offset = 0;  // 0: top-left aligned (PyTorch's is_causal); lk - lq: bottom-right
  bool causal_to_len = false; // with kv_len: the offset is kv_len[b] - lq, problem by problem
  int64_t group = 1;          // query problems per key/value problem: problem b reads k, v of b / group
  double softcap = 0.0;       // > 0: scores s = scale q·k become softcap·tanh(s / softcap) (before the bias)
  int64_t window_left = -1;   // >= 0: query i sees no key j < i + offset - window_left (offset as causal's)
  int64_t window_right = -1;  // >= 0: nor any key j > i + offset + window_right
  int64_t k_stride = 0;       // elements from one key/value problem's k to the next (0: lk·dh), so a
  int64_t v_stride = 0;       // cache's filled part is read where it lies; v likewise (0: lk·dv)
};

// Which keys a query row sees, for problem b, query i, key j (all conditions combine):
//   keep[keep_offset[b] + i*row_stride + j*col_stride] != 0   (when keep is not null)
//   j < kv_len[b]                                             (when kv_len is not null)
// A broadcast bool mask is passed in its own shape with zero strides, never expanded.
// bias (the kernel's T, when not null): added to the scaled scores, s_ij = scale q_i·k_j +
// bias[bias_offset[b] + i*bias_row_stride + j*bias_col_stride], read in place the same way.
// dbias (backward only, T (batch, lq, lk), zeroed by the caller): receives ds_ij, the gradient of
// the scores (0 where masked), for the caller to sum over the bias's broadcast dims.
struct AttnMask {
  const uint8_t* keep = nullptr;
  const int64_t* keep_offset = nullptr;  // batch entries
  int64_t row_stride = 0;
  int64_t col_stride = 0;
  const int64_t* kv_len = nullptr;  // batch entries, each in [0, lk]
  const void* bias = nullptr;
  const int64_t* bias_offset = nullptr;  // batch entries
  int64_t bias_row_stride = 0;
  int64_t bias_col_stride = 0;
  void* dbias = nullptr;
};

// Additive attention: q (batch, lq, dq), k (batch, lk, dk), v (batch, lk, dv), w_q (a, dq),
// w_k (a, dk), w_v (a).
struct AdditiveAttnShape {
  int64_t batch = 0;
  int64_t lq = 0;
  int64_t lk = 0;
  int64_t dq = 0;
  int64_t dk = 0;
  int64_t dv = 0;
  int64_t a = 0;
};

// Attention pooling over time-major LSTM outputs h (t, b, h) with w (a, h).
struct AttnPoolShape {
  int64_t t = 0;
  int64_t b = 0;
  int64_t h = 0;
  int64_t a = 0;
};

}  // namespace seqkern
