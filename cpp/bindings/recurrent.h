// recurrent.h: the checks every recurrent family's weights share (LSTM, GRU).
#pragma once

#include <cmath>
#include <string>
#include <utility>

#include "bindings/check.h"

namespace seqkern {
namespace bind {

// w_ih (G*H, D) and w_hh (G*H, H) of dtype T, for a layer with `gates` row blocks; `copies` the
// number of copies (and packed panels) of each the caller keeps, in `kept` gate columns, which
// the footprint guard counts before any is made. Returns (D, H).
template <typename T>
std::pair<int64_t, int64_t> recurrent_weights(const Check& c, const py::array& wi, const py::array& wh, int gates,
                                              int copies, int kept) {
  const std::string g = gates == 1 ? "H" : std::to_string(gates) + "*H";
  const std::string rows_hh = "(" + g + ", H)", rows_ih = "(" + g + ", D)";
  c.dtype_like<T>("w_hh", wh, "w_ih");
  c.ndim("w_ih", wi, 2, rows_ih.c_str());
  c.ndim("w_hh", wh, 2, rows_hh.c_str());
  const int64_t H = wh.shape(1), D = wi.shape(1);
  // Only an empty w_hh can have an H so large that G*H overflows.
  if (H > INT64_MAX / 4) c.value_error("w_hh must have shape " + rows_hh + ", got " + shape_str(dims_of(wh)));
  Footprint(c, [&] { return of_shape("w_ih", wi) + " and " + of_shape("w_hh", wh); })
      .add({copies, kept, H, D}, sizeof(T))
      .add({copies, kept, H, H}, sizeof(T))
      .check();
  c.shape("w_hh", wh, {gates * H, H}, rows_hh.c_str());
  c.shape("w_ih", wi, {gates * H, D}, (rows_ih.substr(0, rows_ih.size() - 1) + ") with H = w_hh.shape[1]").c_str());
  return {D, H};
}

// recurrent_mask (RnnParams::h_mask): None, or (B, H) of dtype T, finite. Returned as a
// C-contiguous copy of its own, which the cache keeps: a later change to the caller's array
// cannot make the backward differ from the forward.
template <typename T>
py::object recurrent_mask(const Check& c, const py::object& obj, int64_t B, int64_t H) {
  if (obj.is_none()) return py::none();
  const py::array a = operand<T>(c, "recurrent_mask", obj, {B, H}, "(B, H), like h0");
  py::array_t<T> out = empty<T>({B, H});
  const T* s = ptr<T>(a);
  T* d = out.mutable_data();
  for (int64_t i = 0; i < B * H; ++i) {
    if (!std::isfinite(s[i])) c.value_error("recurrent_mask must be finite (a dropout mask holds 0 and 1/(1 - p))");
    d[i] = s[i];
  }
  out.attr("setflags")(py::arg("write") = false);
  return out;
}

// The same as the backward gets it back (from a cache, or the caller's arrays): checked again
// against (B, H), not copied.
template <typename T>
const T* recurrent_mask_ptr(const Check& c, const char* name, const py::object& obj, int64_t B, int64_t H) {
  if (obj.is_none()) return nullptr;
  const py::array a = c.array(name, obj);
  c.same_as<T>(name, a, {B, H}, "the forward's h0");
  return ptr<T>(a);
}

}  // namespace bind
}  // namespace seqkern
