// lstm_weights.h: LSTMWeights, one layer's validated weights (lstm_weights.cpp), which
// lstm_forward, lstm_backward and the streaming step take.
//
// Two modes, one rule: every method reads the arrays the object exposes, as they are now.
// - copy=True: the object owns read-only copies (their memory belongs to a capsule, so numpy
//   cannot make them writeable again) and packs them once.
// - copy=False: the object keeps views of the caller's C-contiguous arrays (copies of others)
//   and packs them on every call, so an in-place update of those arrays is seen by the forward,
//   the step and the backward alike, at any batch size.
#pragma once

#include <cstddef>
#include <vector>

#include "bindings/check.h"

namespace seqkern {
namespace bind {

struct LstmWeightsCore {
  // Zeroed storage: an instance made by __new__ without __init__ (pybind11 then allocates it
  // without constructing it) has ready == false, and every method refuses it.
  static void* operator new(std::size_t n);
  static void operator delete(void* p);

  py::array w_ih, w_hh;
  py::object bias, peephole;             // arrays, or None
  mutable py::object whh_p, wih_p;       // packed panels (copy=True); wih_p at the first step
  py::object lowp;                       // a LowpForm (float32, copy=True only), or None
  int64_t D = 0, H = 0;
  bool f64 = false, live = false, ready = false;

  LstmWeightsCore(const py::object& w_ih, const py::object& w_hh, const py::object& bias,
                  const py::object& peephole, bool copy);

  // Throws TypeError when the object was never initialised.
  void require(const char* fn) const;
  const char* dtype() const { return f64 ? "float64" : "float32"; }
  // The int8 form, if attached (it changes the arithmetic; bf16 does not).
  bool int8() const;

  // The kernels' view of the weights; packed panels made for this call (copy=False, or wih_p on
  // the first step) are kept alive in `keep`.
  template <typename T>
  LstmParams<T> params(bool with_wih, std::vector<py::object>& keep) const;

};

// `obj` as initialised weights (TypeError naming `fn` otherwise).
const LstmWeightsCore& lstm_weights(const char* fn, const py::object& obj);

void bind_lstm_weights(py::module_& m);

}  // namespace bind
}  // namespace seqkern
