// kernels.h: the table of kernel entry points, one per instruction-set level.
//
// Each level (scalar, avx2, avx512) compiles every file in cpp/kernels/ into its own namespace;
// each kernel file registers its entries in that level's table (kernels/registry.h), and
// dispatch.cpp picks one table. A family's entries are plain function pointers taking raw
// pointers and a shape struct (inputs first, then saved state, then outputs, non-const), declared
// in seqkern/ops/<family>.h. A new family is a new header plus one line here.
#pragma once

#include "seqkern/ops/attention.h"
#include "seqkern/ops/gru.h"
#include "seqkern/ops/lstm.h"
#include "seqkern/ops/matmul.h"
#include "seqkern/ops/rnn.h"
#include "seqkern/ops/softmax.h"

namespace seqkern {

template <typename T>
struct Ops {
  SoftmaxOps<T> softmax;
  LstmOps<T> lstm;
  GruOps<T> gru;
  GruOps<T> gru_rb;  // reset before the product (kernels/gru_reset_before.cpp)
  RnnOps<T> rnn;
  MatmulOps<T> matmul;
  AttentionOps<T> attention;
  AdditiveOps<T> additive;
  PoolOps<T> pool;
};

// Threads a kernel may use when called from this thread: OpenMP's max threads, or 1 in a child
// process forked after the parent ran OpenMP threads (GNU OpenMP's pool does not survive fork;
// using it there would hang). Defined in dispatch.cpp, outside the per-ISA code.
int max_threads();

struct KernelTable {
  Ops<float> f32;
  Ops<double> f64;

  template <typename T>
  const Ops<T>& ops() const;
};

template <>
inline const Ops<float>& KernelTable::ops<float>() const { return f32; }
template <>
inline const Ops<double>& KernelTable::ops<double>() const { return f64; }

}  // namespace seqkern
