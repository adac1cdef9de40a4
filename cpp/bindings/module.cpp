// module.cpp: the extension module `seqkern._core`, one line per family.
#include <pybind11/pybind11.h>

#include "bindings/families.h"

PYBIND11_MODULE(_core, m) {
  using namespace seqkern::bind;
  m.doc() = "seqkern compiled kernels; use the functions in the seqkern package instead";
  bind_runtime(m);
  bind_softmax(m);
  bind_matmul(m);
  bind_lowp(m);
  bind_lstm(m);
  bind_gru(m);
  bind_rnn(m);
  bind_attention(m);
  bind_additive(m);
  bind_pool(m);
}
