// lowp.h: LowpForm, the low-precision form of one layer's weights (ops/lowp.h), which an
// LSTMWeights, GRUWeights or RNNWeights of float32 carries next to its float arrays (those then
// hold the format's values: bf16 numbers, or scale·q).
#pragma once

#include <memory>

#include "bindings/check.h"

namespace seqkern {
namespace bind {

struct LowpForm {
  enum Format { bf16 = 1, int8 = 2 };
  Format fmt = bf16;
  int64_t G = 0, D = 0, H = 0;
  py::array wih_b, whh_b;                    // bf16: uint16 panels
  py::array qih, qhh, s_ih, s_hh, cs_ih, cs_hh;  // int8: panels, scales, column sums
  Int8Weights i8;                            // int8: pointers into those

  const char* name() const { return fmt == bf16 ? "bf16" : "int8"; }
  py::ssize_t nbytes() const;
  // Refuses (ValueError naming fn) a form made for other sizes than the layer's.
  void check_sizes(const Check& c, int64_t G_, int64_t D_, int64_t H_) const;
  // Points the kernels' params at the form.
  void apply(RnnParams<float>& p) const;
};

// The form attached to `obj` (a LowpForm) or nullptr for None.
const LowpForm* lowp_form_of(const py::object& obj);

// For the int8 form: rejects non-finite values of a (ValueError "<fn>: <name> must be finite ...").
void finite_for_int8(const Check& c, const char* name, const py::object& a);

void bind_lowp(py::module_& m);

}  // namespace bind
}  // namespace seqkern
