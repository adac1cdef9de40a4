// softmax.cpp: softmax_forward (with an optional bool mask) and softmax_backward, and the same two
// for the log-softmax.
#include "bindings/check.h"
#include "bindings/families.h"

namespace seqkern {
namespace bind {

namespace {

// x (or y) as the kernels take it: floating, C-contiguous, at least 1-D.
py::array softmax_input(const Check& c, const char* name, const py::object& obj) {
  py::array a = c.array(name, obj);
  c.floating(name, a);
  c.contiguous(name, a);
  if (a.ndim() == 0) c.value_error(std::string(name) + " must have at least one dimension, got a 0-d array");
  return a;
}

// The (outer, n, inner) view of `a` around `axis` (negative counts from the end).
SoftmaxShape softmax_shape(const Check& c, const py::array& a, int64_t axis) {
  const std::vector<int64_t> dims = dims_of(a);
  const int64_t nd = a.ndim();
  if (axis < -nd || axis >= nd) {
    c.value_error("axis " + std::to_string(axis) + " is out of range for x of shape " + shape_str(dims));
  }
  const int64_t ax = axis < 0 ? axis + nd : axis;
  SoftmaxShape s;
  s.outer = 1;
  s.inner = 1;
  for (int64_t i = 0; i < ax; ++i) s.outer *= dims[i];
  s.n = dims[ax];
  for (int64_t i = ax + 1; i < nd; ++i) s.inner *= dims[i];
  return s;
}

// Log: the log-softmax entries, and its name in the messages.
template <bool Log>
py::array softmax_forward(const py::object& x_obj, int64_t axis, const py::object& mask_obj) {
  const Check c{Log ? "log_softmax" : "softmax"};
  py::array x = softmax_input(c, "x", x_obj);
  const SoftmaxShape s = softmax_shape(c, x, axis);
  const std::vector<int64_t> dims = dims_of(x);
  Footprint(c, [&] { return of_shape("x", x); })
      .add(dims, x.itemsize())
      .add(dims, mask_obj.is_none() ? 0 : 1)
      .check();
  const py::object mask = mask_obj.is_none() ? py::object(py::none()) : c.mask_like("mask", mask_obj, dims);
  const uint8_t* mp = opt_ptr<uint8_t>(mask);
  return by_dtype(c, x, [&](auto tag) -> py::array {
    using T = decltype(tag);
    py::array_t<T> y = empty<T>(dims);
    const auto& f = ops<T>().softmax;
    call_kernel(Log ? f.log_forward : f.forward, s, ptr<T>(x), mp, y.mutable_data());
    return y;
  });
}

template <bool Log>
py::array softmax_backward(const py::object& y_obj, const py::object& dy_obj, int64_t axis) {
  const Check c{Log ? "log_softmax_backward" : "softmax_backward"};
  py::array y = softmax_input(c, "y", y_obj);
  py::array dy = c.array("dy", dy_obj);
  const SoftmaxShape s = softmax_shape(c, y, axis);
  return by_dtype(c, y, [&](auto tag) -> py::array {
    using T = decltype(tag);
    c.same_as<T>("dy", dy, dims_of(y), "y");
    py::array_t<T> dx = empty<T>(dims_of(y));
    const auto& f = ops<T>().softmax;
    call_kernel(Log ? f.log_backward : f.backward, s, ptr<T>(y), ptr<T>(dy), dx.mutable_data());
    return dx;
  });
}

}  // namespace

void bind_softmax(py::module_& m) {
  m.def("softmax_forward", &softmax_forward<false>, py::arg("x"), py::arg("axis"), py::arg("mask"));
  m.def("softmax_backward", &softmax_backward<false>, py::arg("y"), py::arg("dy"), py::arg("axis"));
  m.def("log_softmax_forward", &softmax_forward<true>, py::arg("x"), py::arg("axis"), py::arg("mask"));
  m.def("log_softmax_backward", &softmax_backward<true>, py::arg("y"), py::arg("dy"), py::arg("axis"));
}

}  // namespace bind
}  // namespace seqkern
