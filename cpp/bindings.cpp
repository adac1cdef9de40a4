// bindings.cpp: the only file that includes pybind11, and the only place inputs are validated.
//
// Every entry point: check dtypes (TypeError), ranks, shapes and layout (ValueError), with
// messages "<function>: <argument> must ..., got ..."; allocate C-contiguous outputs; take raw
// pointers; release the GIL around the kernel call alone; return. No math lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "seqkern/dispatch.h"
#include "seqkern/kernels.h"

namespace py = pybind11;

namespace seqkern {
namespace {

std::string shape_str(const std::vector<int64_t>& dims) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < dims.size(); ++i) s << (i ? ", " : "") << dims[i];
  s << (dims.size() == 1 ? ",)" : ")");
  return s.str();
}

std::vector<int64_t> dims_of(const py::array& a) {
  return std::vector<int64_t>(a.shape(), a.shape() + a.ndim());
}

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

template <typename T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

// Validation helpers bound to one public function's name, so every message starts with it.
struct Check {
  const char* fn;

  [[noreturn]] void type_error(const std::string& msg) const {
    throw py::type_error(std::string(fn) + ": " + msg);
  }
  [[noreturn]] void value_error(const std::string& msg) const {
    throw py::value_error(std::string(fn) + ": " + msg);
  }

  // Converts an argument to an ndarray without changing its dtype (lists become arrays).
  py::array array(const char* name, const py::handle& obj) const {
    if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
    try {
      return py::array(py::module_::import("numpy").attr("asarray")(obj));
    } catch (py::error_already_set&) {
      type_error(std::string(name) + " must be a numpy array, got " +
                 py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
    }
  }

  bool is_f32(const py::array& a) const { return a.dtype().is(py::dtype::of<float>()); }
  bool is_f64(const py::array& a) const { return a.dtype().is(py::dtype::of<double>()); }

  void floating(const char* name, const py::array& a) const {
    if (!is_f32(a) && !is_f64(a)) {
      type_error(std::string(name) + " must be float32 or float64, got " + dtype_str(a));
    }
  }

  template <typename T>
  void dtype_like(const char* name, const py::array& a, const char* ref) const {
    if (!a.dtype().is(py::dtype::of<T>())) {
      type_error(std::string(name) + " must be " + dtype_name<T>() + ", like " + ref + ", got " +
                 dtype_str(a));
    }
  }

  void boolean(const char* name, const py::array& a) const {
    if (!a.dtype().is(py::dtype::of<bool>())) {
      type_error(std::string(name) + " must be bool, got " + dtype_str(a));
    }
  }

  void contiguous(const char* name, const py::array& a) const {
    if (!(a.flags() & py::array::c_style)) {
      value_error(std::string(name) + " must be C-contiguous (the Python layer makes it so)");
    }
  }

  void ndim(const char* name, const py::array& a, py::ssize_t nd, const char* layout) const {
    if (a.ndim() != nd) {
      value_error(std::string(name) + " must be " + std::to_string(nd) + "-D " + layout + ", got shape " +
                  shape_str(dims_of(a)));
    }
  }

  // `formula` spells the expected shape in symbols, e.g. "(4*H, H)".
  void shape(const char* name, const py::array& a, const std::vector<int64_t>& expected,
             const char* formula) const {
    if (dims_of(a) != expected) {
      value_error(std::string(name) + " must have shape " + formula + " = " + shape_str(expected) +
                  ", got " + shape_str(dims_of(a)));
    }
  }

  // Returns a C-contiguous uint8 view of a bool mask broadcast to `target` (a copy only when
  // the mask's shape differs from target's).
  py::array mask_like(const char* name, const py::handle& obj, const std::vector<int64_t>& target) const {
    py::array m = array(name, obj);
    boolean(name, m);
    std::vector<int64_t> md = dims_of(m);
    bool ok = md.size() <= target.size();
    for (size_t i = 0; ok && i < md.size(); ++i) {
      const int64_t want = target[target.size() - md.size() + i];
      ok = md[i] == want || md[i] == 1;
    }
    if (!ok) {
      value_error(std::string(name) + " must be broadcastable to " + shape_str(target) + ", got shape " +
                  shape_str(md));
    }
    if (md != target) {
      py::module_ np = py::module_::import("numpy");
      m = py::array(np.attr("ascontiguousarray")(np.attr("broadcast_to")(m, py::tuple(py::cast(target)))));
    } else if (!(m.flags() & py::array::c_style)) {
      m = py::array(py::module_::import("numpy").attr("ascontiguousarray")(m));
    }
    return m;
  }
};

template <typename T>
py::array_t<T> empty_like_shape(const std::vector<int64_t>& dims) {
  return py::array_t<T>(std::vector<py::ssize_t>(dims.begin(), dims.end()));
}

int64_t normalize_axis(const Check& c, int64_t axis, int64_t nd, const std::vector<int64_t>& dims) {
  if (axis < -nd || axis >= nd) {
    c.value_error("axis " + std::to_string(axis) + " is out of range for x of shape " + shape_str(dims));
  }
  return axis < 0 ? axis + nd : axis;
}

SoftmaxShape softmax_shape(const std::vector<int64_t>& dims, int64_t axis) {
  SoftmaxShape s;
  s.outer = 1;
  s.inner = 1;
  for (int64_t i = 0; i < axis; ++i) s.outer *= dims[i];
  s.n = dims[axis];
  for (size_t i = axis + 1; i < dims.size(); ++i) s.inner *= dims[i];
  return s;
}

// ---------------------------------------------------------------------------------------------
// softmax

template <typename T>
py::array softmax_forward_impl(const Check& c, const py::array& x, int64_t axis, const py::object& mask_obj) {
  const std::vector<int64_t> dims = dims_of(x);
  const int64_t ax = normalize_axis(c, axis, x.ndim(), dims);
  py::array mask;
  const uint8_t* mp = nullptr;
  if (!mask_obj.is_none()) {
    mask = c.mask_like("mask", mask_obj, dims);
    mp = static_cast<const uint8_t*>(mask.data());
  }
  py::array_t<T> y = empty_like_shape<T>(dims);
  const SoftmaxShape s = softmax_shape(dims, ax);
  const T* xp = static_cast<const T*>(x.data());
  T* yp = y.mutable_data();
  {
    py::gil_scoped_release release;
    table().ops<T>().softmax_forward(s, xp, mp, yp);
  }
  return y;
}

py::array softmax_forward(const py::object& x_obj, int64_t axis, const py::object& mask) {
  const Check c{"softmax"};
  py::array x = c.array("x", x_obj);
  c.floating("x", x);
  c.contiguous("x", x);
  if (x.ndim() == 0) c.value_error("x must have at least one dimension, got a 0-d array");
  return c.is_f32(x) ? softmax_forward_impl<float>(c, x, axis, mask)
                     : softmax_forward_impl<double>(c, x, axis, mask);
}

template <typename T>
py::array softmax_backward_impl(const Check& c, const py::array& y, const py::array& dy, int64_t axis) {
  const std::vector<int64_t> dims = dims_of(y);
  const int64_t ax = normalize_axis(c, axis, y.ndim(), dims);
  c.dtype_like<T>("dy", dy, "y");
  c.contiguous("dy", dy);
  if (dims_of(dy) != dims) {
    c.value_error("dy must have the shape of y, " + shape_str(dims) + ", got " + shape_str(dims_of(dy)));
  }
  py::array_t<T> dx = empty_like_shape<T>(dims);
  const SoftmaxShape s = softmax_shape(dims, ax);
  const T* yp = static_cast<const T*>(y.data());
  const T* dyp = static_cast<const T*>(dy.data());
  T* dxp = dx.mutable_data();
  {
    py::gil_scoped_release release;
    table().ops<T>().softmax_backward(s, yp, dyp, dxp);
  }
  return dx;
}

py::array softmax_backward(const py::object& y_obj, const py::object& dy_obj, int64_t axis) {
  const Check c{"softmax_backward"};
  py::array y = c.array("y", y_obj);
  py::array dy = c.array("dy", dy_obj);
  c.floating("y", y);
  c.contiguous("y", y);
  if (y.ndim() == 0) c.value_error("y must have at least one dimension, got a 0-d array");
  return c.is_f32(y) ? softmax_backward_impl<float>(c, y, dy, axis)
                     : softmax_backward_impl<double>(c, y, dy, axis);
}

// ---------------------------------------------------------------------------------------------
// _matmul (private: tests and benchmarks of gemm.h)

template <typename T>
py::array matmul_impl(const Check& c, const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                      int threads, int64_t packed_repeat, double alpha, double beta, const py::object& c_obj) {
  c.dtype_like<T>("b", b, "a");
  const int64_t M = trans_a ? a.shape(1) : a.shape(0);
  const int64_t K = trans_a ? a.shape(0) : a.shape(1);
  const int64_t N = trans_b ? b.shape(0) : b.shape(1);
  const int64_t Kb = trans_b ? b.shape(1) : b.shape(0);
  if (Kb != K) {
    c.value_error(std::string("b must have ") + (trans_b ? "shape (N, K)" : "shape (K, N)") + " with K = " +
                  std::to_string(K) + " (from a), got " + shape_str(dims_of(b)));
  }
  py::array_t<T> out = empty_like_shape<T>({M, N});
  if (!c_obj.is_none()) {
    py::array c_in = c.array("c", c_obj);
    c.dtype_like<T>("c", c_in, "a");
    c.shape("c", c_in, {M, N}, "(M, N)");
    out = py::array_t<T>(py::module_::import("numpy").attr("array")(c_in, py::arg("order") = "C"));
  }
  const T* ap = static_cast<const T*>(a.data());
  const T* bp = static_cast<const T*>(b.data());
  T* cp = out.mutable_data();
  {
    py::gil_scoped_release release;
    table().ops<T>().matmul(trans_a, trans_b, M, N, K, static_cast<T>(alpha), ap, bp, static_cast<T>(beta), cp,
                            threads, packed_repeat);
  }
  return out;
}

// beta * c + alpha * op(a) op(b) as a new array (c None: treated as uninitialised, beta ignored).
py::array matmul(const py::object& a_obj, const py::object& b_obj, bool trans_a, bool trans_b, int threads,
                 int64_t packed_repeat, double alpha, double beta, const py::object& c_obj) {
  const Check c{"_matmul"};
  py::array a = c.array("a", a_obj);
  py::array b = c.array("b", b_obj);
  c.floating("a", a);
  c.contiguous("a", a);
  c.contiguous("b", b);
  c.ndim("a", a, 2, trans_a ? "(K, M)" : "(M, K)");
  c.ndim("b", b, 2, trans_b ? "(N, K)" : "(K, N)");
  if (threads < 0) c.value_error("threads must be >= 0, got " + std::to_string(threads));
  if (packed_repeat < 0) c.value_error("packed_repeat must be >= 0, got " + std::to_string(packed_repeat));
  if (c_obj.is_none()) beta = 0.0;
  return c.is_f32(a) ? matmul_impl<float>(c, a, b, trans_a, trans_b, threads, packed_repeat, alpha, beta, c_obj)
                     : matmul_impl<double>(c, a, b, trans_a, trans_b, threads, packed_repeat, alpha, beta, c_obj);
}

// ---------------------------------------------------------------------------------------------
// runtime settings

py::list isa_names(const std::vector<Isa>& v) {
  py::list l;
  for (Isa isa : v) l.append(isa_name(isa));
  return l;
}

}  // namespace
}  // namespace seqkern

PYBIND11_MODULE(_core, m) {
  using namespace seqkern;
  m.doc() = "seqkern compiled kernels; use the functions in the seqkern package instead";
  current_isa();  // reads SEQKERN_ISA now, so a bad value fails the import with ValueError

  m.def("compiled_isas", [] { return isa_names(compiled_isas()); });
  m.def("available_isas", [] { return isa_names(available_isas()); });
  m.def("get_isa", [] { return std::string(isa_name(current_isa())); });
  m.def("set_isa", [](const std::string& name) { seqkern::set_isa(name); }, py::arg("name"));
  m.def("get_num_threads", &seqkern::get_num_threads);
  m.def("set_num_threads", &seqkern::set_num_threads, py::arg("n"));
  m.def("have_openmp", &seqkern::have_openmp);

  m.def("softmax_forward", &softmax_forward, py::arg("x"), py::arg("axis"), py::arg("mask"));
  m.def("softmax_backward", &softmax_backward, py::arg("y"), py::arg("dy"), py::arg("axis"));
  m.def("_matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("threads") = 0, py::arg("packed_repeat") = 0, py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        py::arg("c") = py::none());
}
