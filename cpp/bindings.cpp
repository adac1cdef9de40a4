// bindings.cpp: the only file that includes pybind11, and the only place inputs are validated.
//
// Every entry point: check dtypes (TypeError), ranks, shapes and layout (ValueError), with
// messages "<function>: <argument> must ..., got ..."; allocate C-contiguous outputs; take raw
// pointers; release the GIL around the kernel call alone; return. No math lives here.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "seqkern/cache.h"
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

// What one call is about to allocate (outputs, cache, the kernel's large scratch), counted before
// anything is allocated or computed. Every product is overflow-checked: a size past 2**63 bytes
// raises ValueError; a total larger than the machine's physical memory raises MemoryError. Both
// name `what` (the argument whose shape implies the size), so an impossible call fails at once
// instead of dying in the allocator or the kernel.
class Footprint {
 public:
  // `what` builds the name only when a check fails (the hot, small calls never pay for it).
  Footprint(const Check& c, std::function<std::string()> what) : c_(c), what_(std::move(what)) {}

  Footprint& add(const std::vector<int64_t>& dims, int64_t elem_bytes) {
    for (int64_t d : dims) {
      if (d == 0) return *this;
    }
    int64_t n = elem_bytes;
    for (int64_t d : dims) {
      if (__builtin_mul_overflow(n, d, &n)) overflow();
    }
    if (__builtin_add_overflow(total_, n, &total_)) overflow();
    return *this;
  }

  void check() const {
    static const double have = physical_memory();
    if (have <= 0) return;
    const double gib = 1024.0 * 1024.0 * 1024.0;
    if (static_cast<double>(total_) > have) {
      std::ostringstream s;
      s.precision(1);
      s << std::fixed << c_.fn << ": " << what_() << " needs " << static_cast<double>(total_) / gib
        << " GiB of outputs and scratch, more than this machine's " << have / gib << " GiB of memory";
      PyErr_SetString(PyExc_MemoryError, s.str().c_str());
      throw py::error_already_set();
    }
  }

 private:
  [[noreturn]] void overflow() const { c_.value_error(what_() + " implies a buffer of more than 2**63 bytes"); }

  // Bytes of physical memory (0 when unknown); read once, as it costs a system call.
  static double physical_memory() {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
    return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
  }

  const Check& c_;
  std::function<std::string()> what_;
  int64_t total_ = 0;
};

std::string of_shape(const char* name, const py::array& a) {
  return std::string(name) + " of shape " + shape_str(dims_of(a));
}

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
  Footprint(c, [&] { return of_shape("x", x); }).add(dims, sizeof(T)).add(dims, mask_obj.is_none() ? 0 : 1).check();
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
// LSTM

py::module_ numpy() { return py::module_::import("numpy"); }

// C-contiguous version of `a` (a copy when it is not, or when `copy` is set).
py::array c_order(const py::array& a, bool copy = false) {
  if (!copy && (a.flags() & py::array::c_style)) return a;
  return py::array(numpy().attr("array")(a, py::arg("order") = "C", py::arg("copy") = true));
}

bool overlaps(const py::array& a, const py::array& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  const char* a0 = static_cast<const char*>(a.data());
  const char* b0 = static_cast<const char*>(b.data());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

// One layer's weights, validated, C-contiguous and packed once (see LstmParams in kernels.h).
struct LstmWeightsCore {
  py::array w_ih, w_hh, whh_p;
  mutable py::object wih_p = py::none();  // packed at the first step (only the step uses it)
  py::object bias = py::none(), peephole = py::none();
  int64_t D = 0, H = 0;
  bool f64 = false;

  LstmWeightsCore(const py::object& w_ih_obj, const py::object& w_hh_obj, const py::object& bias_obj,
                  const py::object& peephole_obj, bool copy) {
    const Check c{"LSTMWeights"};
    w_ih = c.array("w_ih", w_ih_obj);
    w_hh = c.array("w_hh", w_hh_obj);
    c.floating("w_ih", w_ih);
    f64 = c.is_f64(w_ih);
    f64 ? c.dtype_like<double>("w_hh", w_hh, "w_ih") : c.dtype_like<float>("w_hh", w_hh, "w_ih");
    c.ndim("w_ih", w_ih, 2, "(4*H, D)");
    c.ndim("w_hh", w_hh, 2, "(4*H, H)");
    H = w_hh.shape(1);
    D = w_ih.shape(1);
    // Only an empty w_hh can have an H so large that 4*H overflows.
    if (H > INT64_MAX / 4) c.value_error("w_hh must have shape (4*H, H), got " + shape_str(dims_of(w_hh)));
    // The copies and the packed panels: w_ih and w_hh up to three times over.
    Footprint(c, [&] { return of_shape("w_ih", w_ih) + " and " + of_shape("w_hh", w_hh); })
        .add({3, 4, H, D}, w_ih.itemsize())
        .add({3, 4, H, H}, w_ih.itemsize())
        .check();
    c.shape("w_hh", w_hh, {4 * H, H}, "(4*H, H)");
    c.shape("w_ih", w_ih, {4 * H, D}, "(4*H, D) with H = w_hh.shape[1]");
    w_ih = c_order(w_ih, copy);
    w_hh = c_order(w_hh, copy);
    if (!bias_obj.is_none()) {
      py::array b = c.array("bias", bias_obj);
      f64 ? c.dtype_like<double>("bias", b, "w_ih") : c.dtype_like<float>("bias", b, "w_ih");
      c.shape("bias", b, {4 * H}, "(4*H,)");
      bias = c_order(b, copy);
    }
    if (!peephole_obj.is_none()) {
      py::array pp = c.array("peephole", peephole_obj);
      f64 ? c.dtype_like<double>("peephole", pp, "w_ih") : c.dtype_like<float>("peephole", pp, "w_ih");
      c.shape("peephole", pp, {3, H}, "(3, H)");
      peephole = c_order(pp, copy);
    }
    f64 ? pack<double>() : pack<float>();
  }

  template <typename T>
  void pack() {
    py::array_t<T> c(std::vector<py::ssize_t>{H * 4 * H});
    const LstmShape s{0, 0, D, H};
    table().ops<T>().lstm_pack(s, static_cast<const T*>(w_ih.data()), static_cast<const T*>(w_hh.data()),
                               nullptr, c.mutable_data());
    whh_p = c;
  }

  template <typename T>
  const T* packed_wih() const {
    if (wih_p.is_none()) {
      py::array_t<T> b(std::vector<py::ssize_t>{D * 4 * H});
      const LstmShape s{0, 0, D, H};
      table().ops<T>().lstm_pack(s, static_cast<const T*>(w_ih.data()), static_cast<const T*>(w_hh.data()),
                                 b.mutable_data(), nullptr);
      wih_p = b;
    }
    return static_cast<const T*>(py::reinterpret_borrow<py::array>(wih_p).data());
  }

  template <typename T>
  LstmParams<T> params() const {
    LstmParams<T> p;
    p.w_ih = static_cast<const T*>(w_ih.data());
    p.w_hh = static_cast<const T*>(w_hh.data());
    p.bias = bias.is_none() ? nullptr : static_cast<const T*>(py::reinterpret_borrow<py::array>(bias).data());
    p.peephole =
        peephole.is_none() ? nullptr : static_cast<const T*>(py::reinterpret_borrow<py::array>(peephole).data());
    p.wih_p = wih_p.is_none() ? nullptr : static_cast<const T*>(py::reinterpret_borrow<py::array>(wih_p).data());
    p.whh_p = static_cast<const T*>(whh_p.data());
    return p;
  }

  const char* dtype() const { return f64 ? "float64" : "float32"; }

  // Checks that `a` has this object's dtype (TypeError) and the given shape (ValueError).
  template <typename T>
  py::array operand(const Check& c, const char* name, const py::object& obj, const std::vector<int64_t>& dims,
                    const char* formula) const {
    py::array a = c.array(name, obj);
    c.dtype_like<T>(name, a, "the weights");
    c.shape(name, a, dims, formula);
    return c_order(a);
  }

  template <typename T>
  py::tuple step_impl(const py::object& x_obj, const py::object& h_obj, const py::object& c_obj,
                      const py::object& out_h_obj, const py::object& out_c_obj) const {
    const Check c{"LSTMWeights.step"};
    py::array x = c.array("x", x_obj);
    c.dtype_like<T>("x", x, "the weights");
    c.ndim("x", x, 2, "(B, D)");
    const int64_t B = x.shape(0);
    c.shape("x", x, {B, D}, "(B, D)");
    // Copies of x, h and c when they are not C-contiguous, the outputs and their temporaries.
    Footprint(c, [&] { return of_shape("x", x); }).add({B, D}, sizeof(T)).add({6, B, H}, sizeof(T)).check();
    x = c_order(x);
    py::array h = operand<T>(c, "h", h_obj, {B, H}, "(B, H)");
    py::array cc = operand<T>(c, "c", c_obj, {B, H}, "(B, H)");
    auto output = [&](const char* name, const py::object& obj) -> py::array {
      if (obj.is_none()) return py::array_t<T>(std::vector<py::ssize_t>{B, H});
      py::array o = c.array(name, obj);
      c.dtype_like<T>(name, o, "the weights");
      c.shape(name, o, {B, H}, "(B, H)");
      c.contiguous(name, o);
      if (!o.writeable()) c.value_error(std::string(name) + " must be writeable");
      return o;
    };
    py::array out_h = output("out_h", out_h_obj);
    py::array out_c = output("out_c", out_c_obj);
    if (overlaps(out_h, out_c)) c.value_error("out_h and out_c must not overlap");
    // The kernel reads all of h and x while writing out_h block by block; c is read and
    // written element by element, so out_c may be c itself but must not overlap it otherwise.
    const bool clash = overlaps(out_h, x) || overlaps(out_h, h) || overlaps(out_h, cc) || overlaps(out_c, x) ||
                       overlaps(out_c, h) || (overlaps(out_c, cc) && out_c.data() != cc.data());
    py::array_t<T> tmp_h, tmp_c;
    T* hp = static_cast<T*>(out_h.mutable_data());
    T* cp = static_cast<T*>(out_c.mutable_data());
    if (clash) {
      tmp_h = py::array_t<T>(std::vector<py::ssize_t>{B, H});
      tmp_c = py::array_t<T>(std::vector<py::ssize_t>{B, H});
      hp = tmp_h.mutable_data();
      cp = tmp_c.mutable_data();
    }
    packed_wih<T>();
    const LstmParams<T> p = params<T>();
    const LstmShape s{1, B, D, H};
    const T* xp = static_cast<const T*>(x.data());
    const T* h_in = static_cast<const T*>(h.data());
    const T* c_in = static_cast<const T*>(cc.data());
    {
      py::gil_scoped_release release;
      table().ops<T>().lstm_step(s, xp, p, h_in, c_in, hp, cp);
      if (clash) {
        std::memcpy(out_h.mutable_data(), hp, sizeof(T) * B * H);
        std::memcpy(out_c.mutable_data(), cp, sizeof(T) * B * H);
      }
    }
    return py::make_tuple(out_h, out_c);
  }

  py::tuple step(const py::object& x, const py::object& h, const py::object& c, const py::object& out_h,
                 const py::object& out_c) const {
    return f64 ? step_impl<double>(x, h, c, out_h, out_c) : step_impl<float>(x, h, c, out_h, out_c);
  }
};

// lengths: None, or integers (B,) in [0, T]; returned as a C-contiguous int64 array (or None).
py::object lstm_lengths(const Check& c, const py::object& obj, int64_t T, int64_t B) {
  if (obj.is_none()) return py::none();
  py::array a = c.array("lengths", obj);
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u') c.type_error("lengths must be an integer array, got " + dtype_str(a));
  c.shape("lengths", a, {B}, "(B,)");
  py::array_t<int64_t> l(numpy().attr("ascontiguousarray")(a, py::arg("dtype") = "int64"));
  const int64_t* lp = l.data();
  for (int64_t b = 0; b < B; ++b) {
    if (lp[b] < 0 || lp[b] > T) {
      c.value_error("lengths must lie in [0, T] = [0, " + std::to_string(T) + "], got lengths[" +
                    std::to_string(b) + "] = " + std::to_string(lp[b]));
    }
  }
  return std::move(l);
}

const int64_t* lengths_ptr(const py::object& l) {
  return l.is_none() ? nullptr : static_cast<const int64_t*>(py::reinterpret_borrow<py::array>(l).data());
}

template <typename T>
const T* opt_ptr(const py::object& a) {
  return a.is_none() ? nullptr : static_cast<const T*>(py::reinterpret_borrow<py::array>(a).data());
}

template <typename T>
py::tuple lstm_forward_impl(const Check& c, const py::array& x, const LstmWeightsCore& w, const py::object& h0_obj,
                            const py::object& c0_obj, const py::object& lengths_obj, bool need_cache) {
  const int64_t T_ = x.shape(0), B = x.shape(1), D = w.D, H = w.H;
  c.shape("x", x, {T_, B, D}, "(T, B, D) with D = w_ih.shape[1]");
  // y, the gates (the cache's, or the kernel's scratch without a cache), h and c of every step.
  Footprint(c, [&] { return of_shape("x", x) + " with H = " + std::to_string(H); })
      .add({T_, B, H}, sizeof(T))
      .add({T_, B, 4, H}, sizeof(T))
      .add({2, T_, B, H}, need_cache ? sizeof(T) : 0)
      .add({8, B, H}, sizeof(T))
      .check();
  py::object h0 = h0_obj.is_none() ? py::object(py::none()) : py::object(w.operand<T>(c, "h0", h0_obj, {B, H}, "(B, H)"));
  py::object c0 = c0_obj.is_none() ? py::object(py::none()) : py::object(w.operand<T>(c, "c0", c0_obj, {B, H}, "(B, H)"));
  py::object lengths = lstm_lengths(c, lengths_obj, T_, B);
  py::array_t<T> y = empty_like_shape<T>({T_, B, H});
  py::array_t<T> h_n = empty_like_shape<T>({B, H});
  py::array_t<T> c_n = empty_like_shape<T>({B, H});
  py::object gates = py::none(), hs = py::none(), cs = py::none();
  T *gp = nullptr, *hsp = nullptr, *csp = nullptr;
  if (need_cache) {
    py::array_t<T> g = empty_like_shape<T>({T_, B, 4 * H});
    py::array_t<T> hh = empty_like_shape<T>({T_ + 1, B, H});
    py::array_t<T> ch = empty_like_shape<T>({T_ + 1, B, H});
    gp = g.mutable_data();
    hsp = hh.mutable_data();
    csp = ch.mutable_data();
    gates = g;
    hs = hh;
    cs = ch;
  }
  const LstmParams<T> p = w.params<T>();
  const LstmShape s{T_, B, D, H};
  const T* xp = static_cast<const T*>(x.data());
  const T* h0p = opt_ptr<T>(h0);
  const T* c0p = opt_ptr<T>(c0);
  const int64_t* lp = lengths_ptr(lengths);
  T* yp = y.mutable_data();
  T* hnp = h_n.mutable_data();
  T* cnp = c_n.mutable_data();
  {
    py::gil_scoped_release release;
    table().ops<T>().lstm_forward(s, xp, p, h0p, c0p, lp, yp, hnp, cnp, gp, hsp, csp);
  }
  return py::make_tuple(y, h_n, c_n, gates, hs, cs, lengths);
}

py::tuple lstm_forward(const py::object& x_obj, const LstmWeightsCore& w, const py::object& h0,
                       const py::object& c0, const py::object& lengths, bool need_cache) {
  const Check c{"lstm_forward"};
  py::array x = c.array("x", x_obj);
  c.floating("x", x);
  if (c.is_f64(x) != w.f64) {
    c.type_error(std::string("x must be ") + w.dtype() + ", like the weights, got " + dtype_str(x));
  }
  c.ndim("x", x, 3, "(T, B, D)");
  c.contiguous("x", x);
  return w.f64 ? lstm_forward_impl<double>(c, x, w, h0, c0, lengths, need_cache)
               : lstm_forward_impl<float>(c, x, w, h0, c0, lengths, need_cache);
}

template <typename T>
py::tuple lstm_backward_impl(const Check& c, const py::array& x, const LstmWeightsCore& w,
                             const py::object& lengths, const py::array& gates, const py::array& hs,
                             const py::array& cs, const py::object& dy_obj, const py::object& dh_obj,
                             const py::object& dc_obj) {
  const int64_t T_ = x.shape(0), B = x.shape(1), D = w.D, H = w.H;
  c.shape("cache gates", gates, {T_, B, 4 * H}, "(T, B, 4*H)");
  c.shape("cache h", hs, {T_ + 1, B, H}, "(T+1, B, H)");
  c.shape("cache c", cs, {T_ + 1, B, H}, "(T+1, B, H)");
  // dx, the weight gradients, the kernel's (T*B, 4*H) scratch, copies of dy, dh_n and dc_n.
  Footprint(c, [&] { return "cache x " + shape_str(dims_of(x)) + " with H = " + std::to_string(H); })
      .add({T_, B, D}, sizeof(T))
      .add({4, H, D + H + 1}, sizeof(T))
      .add({T_, B, 4, H}, sizeof(T))
      .add({T_, B, H}, sizeof(T))
      .add({7, B, H}, sizeof(T))
      .check();
  py::object dy = dy_obj.is_none() ? py::object(py::none())
                                   : py::object(w.operand<T>(c, "dy", dy_obj, {T_, B, H}, "(T, B, H), like y"));
  py::object dh = dh_obj.is_none() ? py::object(py::none())
                                   : py::object(w.operand<T>(c, "dh_n", dh_obj, {B, H}, "(B, H), like h_n"));
  py::object dc = dc_obj.is_none() ? py::object(py::none())
                                   : py::object(w.operand<T>(c, "dc_n", dc_obj, {B, H}, "(B, H), like c_n"));
  py::array_t<T> dx = empty_like_shape<T>({T_, B, D});
  py::array_t<T> dw_ih = empty_like_shape<T>({4 * H, D});
  py::array_t<T> dw_hh = empty_like_shape<T>({4 * H, H});
  py::array_t<T> dbias = empty_like_shape<T>({4 * H});
  py::array_t<T> dh0 = empty_like_shape<T>({B, H});
  py::array_t<T> dc0 = empty_like_shape<T>({B, H});
  py::object dpeep = py::none();
  T* dpp = nullptr;
  if (!w.peephole.is_none()) {
    py::array_t<T> a = empty_like_shape<T>({3, H});
    dpp = a.mutable_data();
    dpeep = a;
  }
  const LstmParams<T> p = w.params<T>();
  const LstmShape s{T_, B, D, H};
  const T* xp = static_cast<const T*>(x.data());
  const int64_t* lp = lengths_ptr(lengths);
  const T* gp = static_cast<const T*>(gates.data());
  const T* hsp = static_cast<const T*>(hs.data());
  const T* csp = static_cast<const T*>(cs.data());
  const T* dyp = opt_ptr<T>(dy);
  const T* dhp = opt_ptr<T>(dh);
  const T* dcp = opt_ptr<T>(dc);
  T *dxp = dx.mutable_data(), *dwip = dw_ih.mutable_data(), *dwhp = dw_hh.mutable_data();
  T *dbp = dbias.mutable_data(), *dh0p = dh0.mutable_data(), *dc0p = dc0.mutable_data();
  {
    py::gil_scoped_release release;
    table().ops<T>().lstm_backward(s, xp, p, lp, gp, hsp, csp, dyp, dhp, dcp, dxp, dwip, dwhp, dbp, dh0p, dc0p,
                                   dpp);
  }
  return py::make_tuple(dx, dw_ih, dw_hh, dbias, dh0, dc0, dpeep);
}

py::tuple lstm_backward(const py::object& x_obj, const LstmWeightsCore& w, const py::object& lengths,
                        const py::object& gates_obj, const py::object& hs_obj, const py::object& cs_obj,
                        const py::object& dy, const py::object& dh_n, const py::object& dc_n) {
  const Check c{"lstm_backward"};
  py::array x = c.array("x", x_obj);
  py::array gates = c.array("cache gates", gates_obj);
  py::array hs = c.array("cache h", hs_obj);
  py::array cs = c.array("cache c", cs_obj);
  c.ndim("x", x, 3, "(T, B, D)");
  for (auto* a : {&x, &gates, &hs, &cs}) c.contiguous("cache", *a);
  if (w.f64) {
    for (auto* a : {&x, &gates, &hs, &cs}) c.dtype_like<double>("cache", *a, "the weights");
    return lstm_backward_impl<double>(c, x, w, lengths, gates, hs, cs, dy, dh_n, dc_n);
  }
  for (auto* a : {&x, &gates, &hs, &cs}) c.dtype_like<float>("cache", *a, "the weights");
  return lstm_backward_impl<float>(c, x, w, lengths, gates, hs, cs, dy, dh_n, dc_n);
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
// attention

// The mask arguments of an attention call, validated, with the arrays the kernel's AttnMask
// points into kept alive here.
struct MaskArgs {
  py::array keep;
  std::vector<int64_t> keep_offset;
  std::vector<int64_t> kv_len;
  AttnMask m;
};

// lead: the leading (problem) dims; the mask broadcasts to lead + (lq, lk); kv_lengths has shape
// (lead[0],) and applies to every problem under that index.
void attention_masks(const Check& c, MaskArgs& out, const py::object& mask_obj, const py::object& len_obj,
                     const std::vector<int64_t>& lead, int64_t lq, int64_t lk, const char* len_name) {
  int64_t batch = 1;
  for (int64_t d : lead) batch *= d;
  if (!mask_obj.is_none()) {
    std::vector<int64_t> target = lead;
    target.push_back(lq);
    target.push_back(lk);
    py::array m = c.array("mask", mask_obj);
    c.boolean("mask", m);
    std::vector<int64_t> md = dims_of(m);
    bool ok = md.size() <= target.size();
    for (size_t i = 0; ok && i < md.size(); ++i) {
      const int64_t want = target[target.size() - md.size() + i];
      ok = md[i] == want || md[i] == 1;
    }
    if (!ok) {
      c.value_error("mask must be broadcastable to " + shape_str(target) + ", got shape " + shape_str(md));
    }
    if (!(m.flags() & py::array::c_style)) {
      // A broadcast view (zero strides) keeps one entry along those dims: only its distinct
      // values are copied, never the expanded mask.
      py::tuple idx(m.ndim());
      for (py::ssize_t i = 0; i < m.ndim(); ++i) {
        const bool bcast = m.strides(i) == 0 && m.shape(i) > 1;
        idx[static_cast<size_t>(i)] = py::slice(0, bcast ? 1 : m.shape(i), 1);
      }
      m = py::array(py::module_::import("numpy").attr("ascontiguousarray")(m[idx]));
      md = dims_of(m);
    }
    // Strides of the mask in its own shape, padded on the left to target's rank; 0 along
    // broadcast dims, so the mask is read in place and never expanded.
    const size_t nd = target.size();
    std::vector<int64_t> stride(nd, 0);
    int64_t st = 1;
    for (size_t i = md.size(); i-- > 0;) {
      const size_t d = nd - md.size() + i;
      stride[d] = md[i] == 1 ? 0 : st;
      st *= md[i];
    }
    out.keep = m;
    out.keep_offset.assign(static_cast<size_t>(batch), 0);
    for (int64_t b = 0; b < batch; ++b) {
      int64_t rem = b;
      int64_t off = 0;
      for (size_t d = lead.size(); d-- > 0;) {
        off += (rem % lead[d]) * stride[d];
        rem /= lead[d];
      }
      out.keep_offset[static_cast<size_t>(b)] = off;
    }
    out.m.keep = static_cast<const uint8_t*>(m.data());
    out.m.keep_offset = out.keep_offset.data();
    out.m.row_stride = stride[nd - 2];
    out.m.col_stride = stride[nd - 1];
  }
  if (!len_obj.is_none()) {
    py::array l = c.array(len_name, len_obj);
    const char kind = l.dtype().kind();
    if (kind != 'i' && kind != 'u') c.type_error(std::string(len_name) + " must be an integer array, got " + dtype_str(l));
    if (lead.empty()) {
      c.value_error(std::string(len_name) + " needs a leading (batch) dimension; q has none");
    }
    c.shape(len_name, l, {lead[0]}, "(B,)");
    py::array_t<int64_t> l64 = py::array_t<int64_t>(py::module_::import("numpy").attr("ascontiguousarray")(l, "int64"));
    const int64_t* lp = l64.data();
    for (int64_t i = 0; i < lead[0]; ++i) {
      if (lp[i] < 0 || lp[i] > lk) {
        c.value_error(std::string(len_name) + " must lie in [0, " + std::to_string(lk) + "], got " +
                      std::to_string(lp[i]) + " at index " + std::to_string(i));
      }
    }
    const int64_t per = lead[0] ? batch / lead[0] : 0;
    out.kv_len.assign(static_cast<size_t>(batch), 0);
    for (int64_t b = 0; b < batch; ++b) out.kv_len[static_cast<size_t>(b)] = lp[b / per];
    out.m.kv_len = out.kv_len.data();
  }
}

struct AttnArgs {
  AttnShape s;
  std::vector<int64_t> lead;
  MaskArgs mask;
};

// Validates q, k, v (and their dtype T) and the mask arguments.
template <typename T>
AttnArgs attention_args(const Check& c, const py::array& q, const py::array& k, const py::array& v,
                        const py::object& mask, bool causal, const py::object& kv_lengths, double scale) {
  AttnArgs a;
  c.dtype_like<T>("k", k, "q");
  c.dtype_like<T>("v", v, "q");
  c.contiguous("k", k);
  c.contiguous("v", v);
  const std::vector<int64_t> qd = dims_of(q);
  const size_t nd = qd.size();
  a.lead.assign(qd.begin(), qd.end() - 2);
  std::vector<int64_t> kd = dims_of(k), vd = dims_of(v);
  if (kd.size() != nd || !std::equal(a.lead.begin(), a.lead.end(), kd.begin()) || kd[nd - 1] != qd[nd - 1]) {
    c.value_error("k must have shape (..., Lk, Dh) with q's leading dims and Dh, " +
                  std::string("q has shape ") + shape_str(qd) + ", got " + shape_str(kd));
  }
  if (vd.size() != nd || !std::equal(a.lead.begin(), a.lead.end(), vd.begin()) || vd[nd - 2] != kd[nd - 2]) {
    c.value_error("v must have shape (..., Lk, Dv) with q's leading dims and k's Lk, q has shape " +
                  shape_str(qd) + " and k " + shape_str(kd) + ", got " + shape_str(vd));
  }
  a.s.batch = 1;
  for (int64_t d : a.lead) a.s.batch *= d;
  a.s.lq = qd[nd - 2];
  a.s.lk = kd[nd - 2];
  a.s.dh = qd[nd - 1];
  a.s.dv = vd[nd - 1];
  a.s.scale = scale;
  a.s.causal = causal;
  if (!std::isfinite(scale)) c.value_error("scale must be finite, got " + std::to_string(scale));
  // out, lse (and backward's row sums), the mask's per-problem offsets and lengths, the
  // kernels' transposed copies of k and v: checked before any of it is allocated.
  auto with = [&](std::initializer_list<int64_t> tail) {
    std::vector<int64_t> d = a.lead;
    d.insert(d.end(), tail);
    return d;
  };
  Footprint(c, [&] { return of_shape("q", q) + ", " + of_shape("k", k) + " and " + of_shape("v", v); })
      .add(with({a.s.lq, a.s.dv}), sizeof(T))
      .add(with({2, a.s.lq}), sizeof(T))
      .add(with({2}), sizeof(int64_t))
      .add(with({a.s.lk, a.s.dh}), sizeof(T))
      .add(with({a.s.lk, a.s.dv}), sizeof(T))
      .check();
  attention_masks(c, a.mask, mask, kv_lengths, a.lead, a.s.lq, a.s.lk, "kv_lengths");
  return a;
}

void attention_qkv(const Check& c, const py::array& q) {
  c.floating("q", q);
  c.contiguous("q", q);
  if (q.ndim() < 2) c.value_error("q must have shape (..., Lq, Dh), got shape " + shape_str(dims_of(q)));
}

template <typename T>
py::tuple attention_forward_impl(const Check& c, const py::array& q, const py::array& k, const py::array& v,
                                 const py::object& mask, bool causal, const py::object& kv_lengths, double scale) {
  AttnArgs a = attention_args<T>(c, q, k, v, mask, causal, kv_lengths, scale);
  std::vector<int64_t> od = a.lead, ld = a.lead;
  od.push_back(a.s.lq);
  od.push_back(a.s.dv);
  ld.push_back(a.s.lq);
  py::array_t<T> out = empty_like_shape<T>(od);
  py::array_t<T> lse = empty_like_shape<T>(ld);
  const T* qp = static_cast<const T*>(q.data());
  const T* kp = static_cast<const T*>(k.data());
  const T* vp = static_cast<const T*>(v.data());
  T* op = out.mutable_data();
  T* lp = lse.mutable_data();
  {
    py::gil_scoped_release release;
    table().ops<T>().attention_forward(a.s, a.mask.m, qp, kp, vp, op, lp);
  }
  return py::make_tuple(out, lse);
}

py::tuple attention_forward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                            const py::object& mask, bool causal, const py::object& kv_lengths, double scale) {
  const Check c{"attention_forward"};
  py::array q = c.array("q", q_obj), k = c.array("k", k_obj), v = c.array("v", v_obj);
  attention_qkv(c, q);
  return c.is_f32(q) ? attention_forward_impl<float>(c, q, k, v, mask, causal, kv_lengths, scale)
                     : attention_forward_impl<double>(c, q, k, v, mask, causal, kv_lengths, scale);
}

template <typename T>
void same_as(const Check& c, const char* name, const py::array& a, const std::vector<int64_t>& dims,
             const char* ref) {
  c.dtype_like<T>(name, a, ref);
  c.contiguous(name, a);
  if (dims_of(a) != dims) {
    c.value_error(std::string(name) + " must have the shape of " + ref + ", " + shape_str(dims) + ", got " +
                  shape_str(dims_of(a)));
  }
}

template <typename T>
py::tuple attention_backward_impl(const Check& c, const py::array& q, const py::array& k, const py::array& v,
                                  const py::array& out, const py::array& lse, const py::array& dout,
                                  const py::object& mask, bool causal, const py::object& kv_lengths,
                                  double scale) {
  AttnArgs a = attention_args<T>(c, q, k, v, mask, causal, kv_lengths, scale);
  std::vector<int64_t> od = a.lead, ld = a.lead;
  od.push_back(a.s.lq);
  od.push_back(a.s.dv);
  ld.push_back(a.s.lq);
  same_as<T>(c, "out", out, od, "the forward output");
  same_as<T>(c, "lse", lse, ld, "the saved row statistics");
  same_as<T>(c, "dout", dout, od, "out");
  py::array_t<T> dq = empty_like_shape<T>(dims_of(q));
  py::array_t<T> dk = empty_like_shape<T>(dims_of(k));
  py::array_t<T> dv = empty_like_shape<T>(dims_of(v));
  const T* qp = static_cast<const T*>(q.data());
  const T* kp = static_cast<const T*>(k.data());
  const T* vp = static_cast<const T*>(v.data());
  const T* op = static_cast<const T*>(out.data());
  const T* lp = static_cast<const T*>(lse.data());
  const T* gp = static_cast<const T*>(dout.data());
  T* dqp = dq.mutable_data();
  T* dkp = dk.mutable_data();
  T* dvp = dv.mutable_data();
  {
    py::gil_scoped_release release;
    table().ops<T>().attention_backward(a.s, a.mask.m, qp, kp, vp, op, lp, gp, dqp, dkp, dvp);
  }
  return py::make_tuple(dq, dk, dv);
}

py::tuple attention_backward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                             const py::object& out_obj, const py::object& lse_obj, const py::object& dout_obj,
                             const py::object& mask, bool causal, const py::object& kv_lengths, double scale) {
  const Check c{"attention_backward"};
  py::array q = c.array("q", q_obj), k = c.array("k", k_obj), v = c.array("v", v_obj);
  py::array out = c.array("out", out_obj), lse = c.array("lse", lse_obj), dout = c.array("dout", dout_obj);
  attention_qkv(c, q);
  return c.is_f32(q) ? attention_backward_impl<float>(c, q, k, v, out, lse, dout, mask, causal, kv_lengths, scale)
                     : attention_backward_impl<double>(c, q, k, v, out, lse, dout, mask, causal, kv_lengths, scale);
}

// ---------------------------------------------------------------------------------------------
// additive attention

struct AddArgs {
  AdditiveAttnShape s;
  MaskArgs mask;
};

template <typename T>
AddArgs additive_args(const Check& c, const py::array& q, const py::array& k, const py::array& v,
                      const py::array& w_q, const py::array& w_k, const py::array& w_v, const py::object& mask,
                      const py::object& kv_lengths) {
  AddArgs a;
  const char* names[] = {"k", "v", "w_q", "w_k", "w_v"};
  const py::array* arrs[] = {&k, &v, &w_q, &w_k, &w_v};
  for (int i = 0; i < 5; ++i) {
    c.dtype_like<T>(names[i], *arrs[i], "q");
    c.contiguous(names[i], *arrs[i]);
  }
  c.ndim("k", k, 3, "(B, Lk, Dk)");
  c.ndim("v", v, 3, "(B, Lk, Dv)");
  c.ndim("w_q", w_q, 2, "(A, Dq)");
  a.s.batch = q.shape(0);
  a.s.lq = q.shape(1);
  a.s.dq = q.shape(2);
  a.s.lk = k.shape(1);
  a.s.dk = k.shape(2);
  a.s.dv = v.shape(2);
  a.s.a = w_q.shape(0);
  c.shape("k", k, {a.s.batch, a.s.lk, a.s.dk}, "(B, Lk, Dk)");
  c.shape("v", v, {a.s.batch, a.s.lk, a.s.dv}, "(B, Lk, Dv)");
  c.shape("w_q", w_q, {a.s.a, a.s.dq}, "(A, Dq)");
  c.shape("w_k", w_k, {a.s.a, a.s.dk}, "(A, Dk)");
  c.shape("w_v", w_v, {a.s.a}, "(A,)");
  // The projections (and backward's gradients of them), out, lse, the mask's offsets and lengths.
  Footprint(c, [&] { return of_shape("q", q) + ", " + of_shape("k", k) + ", " + of_shape("v", v) + " and " +
                   of_shape("w_q", w_q); })
      .add({2, a.s.batch, a.s.lq, a.s.a}, sizeof(T))
      .add({2, a.s.batch, a.s.lk, a.s.a}, sizeof(T))
      .add({a.s.batch, a.s.lq, a.s.dv}, sizeof(T))
      .add({a.s.batch, a.s.lq}, sizeof(T))
      .add({a.s.batch, a.s.a}, sizeof(T))
      .add({a.s.batch, 2}, sizeof(int64_t))
      .check();
  attention_masks(c, a.mask, mask, kv_lengths, {a.s.batch}, a.s.lq, a.s.lk, "kv_lengths");
  return a;
}

void additive_q(const Check& c, const py::array& q) {
  c.floating("q", q);
  c.contiguous("q", q);
  c.ndim("q", q, 3, "(B, Lq, Dq)");
}

template <typename T>
py::tuple additive_forward_impl(const Check& c, const py::array& q, const py::array& k, const py::array& v,
                                const py::array& w_q, const py::array& w_k, const py::array& w_v,
                                const py::object& mask, const py::object& kv_lengths) {
  AddArgs a = additive_args<T>(c, q, k, v, w_q, w_k, w_v, mask, kv_lengths);
  const AdditiveAttnShape& s = a.s;
  py::array_t<T> qp = empty_like_shape<T>({s.batch, s.lq, s.a});
  py::array_t<T> kp = empty_like_shape<T>({s.batch, s.lk, s.a});
  py::array_t<T> out = empty_like_shape<T>({s.batch, s.lq, s.dv});
  py::array_t<T> lse = empty_like_shape<T>({s.batch, s.lq});
  auto P = [](const py::array& x) { return static_cast<const T*>(x.data()); };
  const T *q_ = P(q), *k_ = P(k), *v_ = P(v), *wq = P(w_q), *wk = P(w_k), *wv = P(w_v);
  T *qpp = qp.mutable_data(), *kpp = kp.mutable_data(), *op = out.mutable_data(), *lp = lse.mutable_data();
  {
    py::gil_scoped_release release;
    table().ops<T>().additive_attention_forward(s, a.mask.m, q_, k_, v_, wq, wk, wv, qpp, kpp, op, lp);
  }
  return py::make_tuple(out, qp, kp, lse);
}

py::tuple additive_attention_forward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                                     const py::object& wq_obj, const py::object& wk_obj, const py::object& wv_obj,
                                     const py::object& mask, const py::object& kv_lengths) {
  const Check c{"additive_attention_forward"};
  py::array q = c.array("q", q_obj), k = c.array("k", k_obj), v = c.array("v", v_obj);
  py::array wq = c.array("w_q", wq_obj), wk = c.array("w_k", wk_obj), wv = c.array("w_v", wv_obj);
  additive_q(c, q);
  return c.is_f32(q) ? additive_forward_impl<float>(c, q, k, v, wq, wk, wv, mask, kv_lengths)
                     : additive_forward_impl<double>(c, q, k, v, wq, wk, wv, mask, kv_lengths);
}

template <typename T>
py::tuple additive_backward_impl(const Check& c, const py::array& q, const py::array& k, const py::array& v,
                                 const py::array& w_q, const py::array& w_k, const py::array& w_v,
                                 const py::array& qp, const py::array& kp, const py::array& out,
                                 const py::array& lse, const py::array& dout, const py::object& mask,
                                 const py::object& kv_lengths) {
  AddArgs a = additive_args<T>(c, q, k, v, w_q, w_k, w_v, mask, kv_lengths);
  const AdditiveAttnShape& s = a.s;
  same_as<T>(c, "qp", qp, {s.batch, s.lq, s.a}, "the saved q projection");
  same_as<T>(c, "kp", kp, {s.batch, s.lk, s.a}, "the saved k projection");
  same_as<T>(c, "out", out, {s.batch, s.lq, s.dv}, "the forward output");
  same_as<T>(c, "lse", lse, {s.batch, s.lq}, "the saved row statistics");
  same_as<T>(c, "dout", dout, {s.batch, s.lq, s.dv}, "out");
  py::array_t<T> dq = empty_like_shape<T>(dims_of(q));
  py::array_t<T> dk = empty_like_shape<T>(dims_of(k));
  py::array_t<T> dv = empty_like_shape<T>(dims_of(v));
  py::array_t<T> dwq = empty_like_shape<T>(dims_of(w_q));
  py::array_t<T> dwk = empty_like_shape<T>(dims_of(w_k));
  py::array_t<T> dwv = empty_like_shape<T>(dims_of(w_v));
  auto P = [](const py::array& x) { return static_cast<const T*>(x.data()); };
  const T *q_ = P(q), *k_ = P(k), *v_ = P(v), *wq = P(w_q), *wk = P(w_k), *wv = P(w_v);
  const T *qpp = P(qp), *kpp = P(kp), *op = P(out), *lp = P(lse), *gp = P(dout);
  T *dqp = dq.mutable_data(), *dkp = dk.mutable_data(), *dvp = dv.mutable_data();
  T *dwqp = dwq.mutable_data(), *dwkp = dwk.mutable_data(), *dwvp = dwv.mutable_data();
  {
    py::gil_scoped_release release;
    table().ops<T>().additive_attention_backward(s, a.mask.m, q_, k_, v_, wq, wk, wv, qpp, kpp, op, lp, gp, dqp,
                                                 dkp, dvp, dwqp, dwkp, dwvp);
  }
  return py::make_tuple(dq, dk, dv, dwq, dwk, dwv);
}

py::tuple additive_attention_backward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                                      const py::object& wq_obj, const py::object& wk_obj,
                                      const py::object& wv_obj, const py::object& qp_obj,
                                      const py::object& kp_obj, const py::object& out_obj,
                                      const py::object& lse_obj, const py::object& dout_obj,
                                      const py::object& mask, const py::object& kv_lengths) {
  const Check c{"additive_attention_backward"};
  py::array q = c.array("q", q_obj), k = c.array("k", k_obj), v = c.array("v", v_obj);
  py::array wq = c.array("w_q", wq_obj), wk = c.array("w_k", wk_obj), wv = c.array("w_v", wv_obj);
  py::array qp = c.array("qp", qp_obj), kp = c.array("kp", kp_obj), out = c.array("out", out_obj);
  py::array lse = c.array("lse", lse_obj), dout = c.array("dout", dout_obj);
  additive_q(c, q);
  return c.is_f32(q) ? additive_backward_impl<float>(c, q, k, v, wq, wk, wv, qp, kp, out, lse, dout, mask, kv_lengths)
                     : additive_backward_impl<double>(c, q, k, v, wq, wk, wv, qp, kp, out, lse, dout, mask, kv_lengths);
}

// ---------------------------------------------------------------------------------------------
// attention pooling

struct PoolArgs {
  AttnPoolShape s;
  std::vector<int64_t> lengths;
  const int64_t* lp = nullptr;
};

template <typename T>
PoolArgs pool_args(const Check& c, const py::array& h, const py::array& w, const py::object& lengths) {
  PoolArgs a;
  c.dtype_like<T>("w", w, "h");
  c.contiguous("w", w);
  c.ndim("w", w, 2, "(A, H)");
  a.s.t = h.shape(0);
  a.s.b = h.shape(1);
  a.s.h = h.shape(2);
  a.s.a = w.shape(0);
  c.shape("w", w, {a.s.a, a.s.h}, "(A, H)");
  // u (and backward's dz), alpha (and its gradient), context, dh.
  Footprint(c, [&] { return of_shape("h", h) + " and " + of_shape("w", w); })
      .add({2, a.s.t, a.s.b, a.s.a}, sizeof(T))
      .add({2, a.s.t, a.s.b}, sizeof(T))
      .add({a.s.b, a.s.h}, sizeof(T))
      .add({a.s.t, a.s.b, a.s.h}, sizeof(T))
      .check();
  if (!lengths.is_none()) {
    py::array l = c.array("lengths", lengths);
    const char kind = l.dtype().kind();
    if (kind != 'i' && kind != 'u') c.type_error("lengths must be an integer array, got " + dtype_str(l));
    c.shape("lengths", l, {a.s.b}, "(B,)");
    py::array_t<int64_t> l64 = py::array_t<int64_t>(py::module_::import("numpy").attr("ascontiguousarray")(l, "int64"));
    a.lengths.assign(l64.data(), l64.data() + a.s.b);
    for (int64_t i = 0; i < a.s.b; ++i) {
      if (a.lengths[i] < 0 || a.lengths[i] > a.s.t) {
        c.value_error("lengths must lie in [0, " + std::to_string(a.s.t) + "], got " +
                      std::to_string(a.lengths[i]) + " at index " + std::to_string(i));
      }
    }
    a.lp = a.lengths.data();
  }
  return a;
}

void pool_h(const Check& c, const py::array& h) {
  c.floating("h", h);
  c.contiguous("h", h);
  c.ndim("h", h, 3, "(T, B, H)");
}

template <typename T>
py::tuple pool_forward_impl(const Check& c, const py::array& h, const py::array& w, const py::array& bias,
                            const py::array& w_s, const py::object& lengths) {
  PoolArgs a = pool_args<T>(c, h, w, lengths);
  const AttnPoolShape& s = a.s;
  c.dtype_like<T>("b", bias, "h");
  c.contiguous("b", bias);
  c.shape("b", bias, {s.a}, "(A,)");
  c.dtype_like<T>("w_s", w_s, "h");
  c.contiguous("w_s", w_s);
  c.shape("w_s", w_s, {s.a}, "(A,)");
  py::array_t<T> u = empty_like_shape<T>({s.t, s.b, s.a});
  py::array_t<T> alpha = empty_like_shape<T>({s.t, s.b});
  py::array_t<T> context = empty_like_shape<T>({s.b, s.h});
  auto P = [](const py::array& x) { return static_cast<const T*>(x.data()); };
  const T *hp = P(h), *wp = P(w), *bp = P(bias), *wsp = P(w_s);
  T *up = u.mutable_data(), *ap = alpha.mutable_data(), *cp = context.mutable_data();
  const int64_t* lp = a.lp;
  {
    py::gil_scoped_release release;
    table().ops<T>().attention_pool_forward(s, lp, hp, wp, bp, wsp, up, ap, cp);
  }
  return py::make_tuple(context, alpha, u);
}

py::tuple attention_pool_forward(const py::object& h_obj, const py::object& w_obj, const py::object& b_obj,
                                 const py::object& ws_obj, const py::object& lengths) {
  const Check c{"attention_pool_forward"};
  py::array h = c.array("h", h_obj), w = c.array("w", w_obj), b = c.array("b", b_obj), ws = c.array("w_s", ws_obj);
  pool_h(c, h);
  return c.is_f32(h) ? pool_forward_impl<float>(c, h, w, b, ws, lengths)
                     : pool_forward_impl<double>(c, h, w, b, ws, lengths);
}

template <typename T>
py::tuple pool_backward_impl(const Check& c, const py::array& h, const py::array& w, const py::array& w_s,
                             const py::array& u, const py::array& alpha, const py::array& dcontext,
                             const py::object& lengths) {
  PoolArgs a = pool_args<T>(c, h, w, lengths);
  const AttnPoolShape& s = a.s;
  same_as<T>(c, "w_s", w_s, {s.a}, "(A,)");
  same_as<T>(c, "u", u, {s.t, s.b, s.a}, "the saved projection");
  same_as<T>(c, "alpha", alpha, {s.t, s.b}, "the saved weights");
  same_as<T>(c, "dcontext", dcontext, {s.b, s.h}, "context");
  py::array_t<T> dh = empty_like_shape<T>({s.t, s.b, s.h});
  py::array_t<T> dw = empty_like_shape<T>({s.a, s.h});
  py::array_t<T> db = empty_like_shape<T>({s.a});
  py::array_t<T> dws = empty_like_shape<T>({s.a});
  auto P = [](const py::array& x) { return static_cast<const T*>(x.data()); };
  const T *hp = P(h), *wp = P(w), *wsp = P(w_s), *up = P(u), *ap = P(alpha), *gp = P(dcontext);
  T *dhp = dh.mutable_data(), *dwp = dw.mutable_data(), *dbp = db.mutable_data(), *dwsp = dws.mutable_data();
  const int64_t* lp = a.lp;
  {
    py::gil_scoped_release release;
    table().ops<T>().attention_pool_backward(s, lp, hp, wp, wsp, up, ap, gp, dhp, dwp, dbp, dwsp);
  }
  return py::make_tuple(dh, dw, db, dws);
}

py::tuple attention_pool_backward(const py::object& h_obj, const py::object& w_obj, const py::object& ws_obj,
                                  const py::object& u_obj, const py::object& alpha_obj,
                                  const py::object& dctx_obj, const py::object& lengths) {
  const Check c{"attention_pool_backward"};
  py::array h = c.array("h", h_obj), w = c.array("w", w_obj), ws = c.array("w_s", ws_obj);
  py::array u = c.array("u", u_obj), alpha = c.array("alpha", alpha_obj), g = c.array("dcontext", dctx_obj);
  pool_h(c, h);
  return c.is_f32(h) ? pool_backward_impl<float>(c, h, w, ws, u, alpha, g, lengths)
                     : pool_backward_impl<double>(c, h, w, ws, u, alpha, g, lengths);
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

static const char* LSTM_STEP_DOC = R"doc(One LSTM time step for B rows: ``(h_new, c_new) = step(x, h, c)``.

Parameters
----------
x : ndarray (B, D), the weights' dtype
    Input of this step.
h, c : ndarray (B, H), the weights' dtype
    Hidden and cell state before the step.
out_h, out_c : ndarray (B, H), C-contiguous, writeable, optional
    Where to write the new state (fresh arrays when omitted). They may be ``h`` and ``c``
    themselves (in-place update); other overlaps are handled with a temporary copy.

Returns
-------
tuple ``(h_new, c_new)`` of ndarrays (B, H): ``out_h`` and ``out_c`` when given.
No lengths here: every row takes the step.
)doc";

PYBIND11_MODULE(_core, m) {
  using namespace seqkern;
  m.doc() = "seqkern compiled kernels; use the functions in the seqkern package instead";
  current_isa();  // reads SEQKERN_ISA now, so a bad value fails the import (ImportError)

  m.def("compiled_isas", [] { return isa_names(compiled_isas()); });
  m.def("available_isas", [] { return isa_names(available_isas()); });
  m.def("get_isa", [] { return std::string(isa_name(current_isa())); });
  m.def("set_isa", [](const std::string& name) { seqkern::set_isa(name); }, py::arg("name"));
  m.def("get_num_threads", &seqkern::get_num_threads);
  m.def("set_num_threads", &seqkern::set_num_threads, py::arg("n"));
  m.def("have_openmp", &seqkern::have_openmp);
  cache_sizes();  // reads SEQKERN_CACHE now, so a bad value fails the import (ImportError)
  m.def("cache_sizes", [] {
    const CacheSizes c = cache_sizes();
    py::dict d;
    d["l1d"] = c.l1d;
    d["l2"] = c.l2;
    d["l3"] = c.l3;
    d["source"] = c.source;
    return d;
  });
  m.def("_set_cache_sizes", &seqkern::set_cache_sizes, py::arg("l1d"), py::arg("l2"), py::arg("l3"));

  m.def("softmax_forward", &softmax_forward, py::arg("x"), py::arg("axis"), py::arg("mask"));
  m.def("softmax_backward", &softmax_backward, py::arg("y"), py::arg("dy"), py::arg("axis"));

  py::class_<LstmWeightsCore>(m, "LstmWeightsCore", py::dynamic_attr())
      .def(py::init<const py::object&, const py::object&, const py::object&, const py::object&, bool>(),
           py::arg("w_ih"), py::arg("w_hh"), py::arg("bias") = py::none(), py::arg("peephole") = py::none(),
           py::arg("copy") = true)
      .def_property_readonly("w_ih", [](const LstmWeightsCore& w) { return w.w_ih; })
      .def_property_readonly("w_hh", [](const LstmWeightsCore& w) { return w.w_hh; })
      .def_property_readonly("bias", [](const LstmWeightsCore& w) { return w.bias; })
      .def_property_readonly("peephole", [](const LstmWeightsCore& w) { return w.peephole; })
      .def_property_readonly("input_size", [](const LstmWeightsCore& w) { return w.D; })
      .def_property_readonly("hidden_size", [](const LstmWeightsCore& w) { return w.H; })
      .def_property_readonly("dtype", [](const LstmWeightsCore& w) { return py::dtype(w.dtype()); })
      .def("step", &LstmWeightsCore::step, py::arg("x"), py::arg("h"), py::arg("c"),
           py::arg("out_h") = py::none(), py::arg("out_c") = py::none(), LSTM_STEP_DOC);
  m.def("lstm_forward", &lstm_forward, py::arg("x"), py::arg("weights"), py::arg("h0"), py::arg("c0"),
        py::arg("lengths"), py::arg("need_cache"));
  m.def("lstm_backward", &lstm_backward, py::arg("x"), py::arg("weights"), py::arg("lengths"), py::arg("gates"),
        py::arg("hs"), py::arg("cs"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"));
  m.def("_matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("threads") = 0, py::arg("packed_repeat") = 0, py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        py::arg("c") = py::none());
  m.def("attention_forward", &attention_forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask"),
        py::arg("causal"), py::arg("kv_lengths"), py::arg("scale"));
  m.def("attention_backward", &attention_backward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
        py::arg("lse"), py::arg("dout"), py::arg("mask"), py::arg("causal"), py::arg("kv_lengths"),
        py::arg("scale"));
  m.def("additive_attention_forward", &additive_attention_forward, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("w_q"), py::arg("w_k"), py::arg("w_v"), py::arg("mask"), py::arg("kv_lengths"));
  m.def("additive_attention_backward", &additive_attention_backward, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("w_q"), py::arg("w_k"), py::arg("w_v"), py::arg("qp"), py::arg("kp"), py::arg("out"),
        py::arg("lse"), py::arg("dout"), py::arg("mask"), py::arg("kv_lengths"));
  m.def("attention_pool_forward", &attention_pool_forward, py::arg("h"), py::arg("w"), py::arg("b"),
        py::arg("w_s"), py::arg("lengths"));
  m.def("attention_pool_backward", &attention_pool_backward, py::arg("h"), py::arg("w"), py::arg("w_s"),
        py::arg("u"), py::arg("alpha"), py::arg("dcontext"), py::arg("lengths"));
}
