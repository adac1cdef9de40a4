// table.cpp: this ISA level's table of kernel entry points (see seqkern/kernels.h).
#include "kernels/ops.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {

namespace {

template <typename T>
Ops<T> make_ops() {
  Ops<T> o;
  o.softmax_forward = &softmax_forward<T>;
  o.softmax_backward = &softmax_backward<T>;
  o.lstm_pack = &lstm_pack<T>;
  o.lstm_forward = &lstm_forward<T>;
  o.lstm_step = &lstm_step<T>;
  o.lstm_backward = &lstm_backward<T>;
  o.matmul = &matmul<T>;
  o.attention_forward = &attention_forward<T>;
  o.attention_backward = &attention_backward<T>;
  o.additive_attention_forward = &additive_attention_forward<T>;
  o.additive_attention_backward = &additive_attention_backward<T>;
  o.attention_pool_forward = &attention_pool_forward<T>;
  o.attention_pool_backward = &attention_pool_backward<T>;
  return o;
}

}  // namespace

const KernelTable& kernel_table() {
  static const KernelTable table{make_ops<float>(), make_ops<double>()};
  return table;
}

}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
