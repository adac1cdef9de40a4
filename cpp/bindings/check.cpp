// check.cpp: the shared argument checks and the footprint guard (check.h).
#include "bindings/check.h"

#include <pybind11/stl.h>
#include <unistd.h>

#include <sstream>

namespace seqkern {
namespace bind {

std::string shape_str(const std::vector<int64_t>& dims) {
  std::ostringstream s;
  s << "(";
  for (size_t i = 0; i < dims.size(); ++i) s << (i ? ", " : "") << dims[i];
  s << (dims.size() == 1 ? ",)" : ")");
  return s.str();
}

std::vector<int64_t> dims_of(const py::array& a) { return std::vector<int64_t>(a.shape(), a.shape() + a.ndim()); }

std::string dtype_str(const py::array& a) { return py::str(a.dtype()).cast<std::string>(); }

std::string of_shape(const char* name, const py::array& a) {
  return std::string(name) + " of shape " + shape_str(dims_of(a));
}

py::module_ numpy() { return py::module_::import("numpy"); }

py::array c_order(const py::array& a, bool copy) {
  if (!copy && (a.flags() & py::array::c_style)) return a;
  return py::array(numpy().attr("array")(a, py::arg("order") = "C", py::arg("copy") = true));
}

void freeze(const py::array& a) { a.attr("setflags")(py::arg("write") = false); }

bool overlaps(const py::array& a, const py::array& b) {
  if (a.nbytes() == 0 || b.nbytes() == 0) return false;
  const char* a0 = static_cast<const char*>(a.data());
  const char* b0 = static_cast<const char*>(b.data());
  return a0 < b0 + b.nbytes() && b0 < a0 + a.nbytes();
}

void Check::type_error(const std::string& msg) const { throw py::type_error(std::string(fn) + ": " + msg); }

void Check::value_error(const std::string& msg) const { throw py::value_error(std::string(fn) + ": " + msg); }

py::array Check::array(const char* name, const py::handle& obj) const {
  if (py::isinstance<py::array>(obj)) return py::reinterpret_borrow<py::array>(obj);
  try {
    return py::array(numpy().attr("asarray")(obj));
  } catch (py::error_already_set&) {
    type_error(std::string(name) + " must be a numpy array, got " +
               py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
}

void Check::floating(const char* name, const py::array& a) const {
  if (!is_f32(a) && !is_f64(a)) type_error(std::string(name) + " must be float32 or float64, got " + dtype_str(a));
}

void Check::boolean(const char* name, const py::array& a) const {
  if (!a.dtype().is(py::dtype::of<bool>())) type_error(std::string(name) + " must be bool, got " + dtype_str(a));
}

void Check::contiguous(const char* name, const py::array& a) const {
  if (!(a.flags() & py::array::c_style)) {
    value_error(std::string(name) + " must be C-contiguous (the Python layer makes it so)");
  }
}

void Check::ndim(const char* name, const py::array& a, py::ssize_t nd, const char* layout) const {
  if (a.ndim() != nd) {
    value_error(std::string(name) + " must be " + std::to_string(nd) + "-D " + layout + ", got shape " +
                shape_str(dims_of(a)));
  }
}

void Check::shape(const char* name, const py::array& a, const std::vector<int64_t>& expected,
                  const char* formula) const {
  if (dims_of(a) != expected) {
    value_error(std::string(name) + " must have shape " + formula + " = " + shape_str(expected) + ", got " +
                shape_str(dims_of(a)));
  }
}

void Check::broadcastable(const char* name, const std::vector<int64_t>& dims,
                          const std::vector<int64_t>& target) const {
  bool ok = dims.size() <= target.size();
  for (size_t i = 0; ok && i < dims.size(); ++i) {
    const int64_t want = target[target.size() - dims.size() + i];
    ok = dims[i] == want || dims[i] == 1;
  }
  if (!ok) {
    value_error(std::string(name) + " must be broadcastable to " + shape_str(target) + ", got shape " +
                shape_str(dims));
  }
}

py::array Check::mask_like(const char* name, const py::handle& obj, const std::vector<int64_t>& target) const {
  py::array m = array(name, obj);
  boolean(name, m);
  const std::vector<int64_t> md = dims_of(m);
  broadcastable(name, md, target);
  if (md != target) {
    return py::array(numpy().attr("ascontiguousarray")(numpy().attr("broadcast_to")(m, py::tuple(py::cast(target)))));
  }
  return c_order(m);
}

py::object Check::lengths(const char* name, const py::object& obj, int64_t n, int64_t max, const char* formula,
                          const char* max_name) const {
  if (obj.is_none()) return py::none();
  py::array a = array(name, obj);
  const char kind = a.dtype().kind();
  if (kind != 'i' && kind != 'u') type_error(std::string(name) + " must be an integer array, got " + dtype_str(a));
  shape(name, a, {n}, formula);
  py::array_t<int64_t> l(numpy().attr("array")(a, py::arg("dtype") = "int64", py::arg("order") = "C"));
  const int64_t* lp = l.data();
  for (int64_t i = 0; i < n; ++i) {
    if (lp[i] < 0 || lp[i] > max) {
      const std::string range = "[0, " + std::to_string(max) + "]";
      value_error(std::string(name) + " must lie in " + (max_name ? "[0, " + std::string(max_name) + "] = " : "") +
                  range + ", got " + name + "[" +
                  std::to_string(i) + "] = " + std::to_string(lp[i]));
    }
  }
  return std::move(l);
}

Footprint& Footprint::add(const std::vector<int64_t>& dims, int64_t elem_bytes) {
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

namespace {

// Bytes of physical memory (0 when unknown).
double physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<double>(pages) * static_cast<double>(page) : 0.0;
}

}  // namespace

void Footprint::check() const {
  static const double have = physical_memory();  // read once: it costs a system call
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

void Footprint::overflow() const { c_.value_error(what_() + " implies a buffer of more than 2**63 bytes"); }

}  // namespace bind
}  // namespace seqkern
