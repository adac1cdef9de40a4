// families.h: one function per family that adds its bindings to the module (module.cpp calls
// them; each lives in its own file here).
#pragma once

#include <pybind11/pybind11.h>

namespace seqkern {
namespace bind {

void bind_runtime(pybind11::module_& m);
void bind_softmax(pybind11::module_& m);
void bind_matmul(pybind11::module_& m);
void bind_lowp(pybind11::module_& m);
void bind_lstm(pybind11::module_& m);
void bind_gru(pybind11::module_& m);
void bind_rnn(pybind11::module_& m);
void bind_attention(pybind11::module_& m);
void bind_additive(pybind11::module_& m);
void bind_pool(pybind11::module_& m);

}  // namespace bind
}  // namespace seqkern
