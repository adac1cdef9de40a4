// check.h: what every binding shares: argument checks with messages that name the function and
// the argument, the footprint guard, the dtype dispatch and the kernel call without the GIL.
//
// Every entry point: check dtypes (TypeError), ranks, shapes and layout (ValueError), with
// messages "<function>: <argument> must ..., got ..."; allocate C-contiguous outputs; take raw
// pointers; release the GIL around the kernel call alone (call_kernel); return. No math lives
// in the bindings.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <cstdint>
#include <functional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "seqkern/dispatch.h"
#include "seqkern/kernels.h"

namespace seqkern {
namespace bind {

namespace py = pybind11;

std::string shape_str(const std::vector<int64_t>& dims);
std::vector<int64_t> dims_of(const py::array& a);
std::string dtype_str(const py::array& a);
std::string of_shape(const char* name, const py::array& a);
py::module_ numpy();

template <typename T>
const char* dtype_name() {
  return sizeof(T) == 4 ? "float32" : "float64";
}

// A fresh C-contiguous array of T.
template <typename T>
py::array_t<T> empty(const std::vector<int64_t>& dims) {
  return py::array_t<T>(std::vector<py::ssize_t>(dims.begin(), dims.end()));
}

// C-contiguous version of `a` (a copy when it is not, or when `copy` is set).
py::array c_order(const py::array& a, bool copy = false);

// An array whose memory a capsule owns (writeable until frozen), and freezing it: numpy then
// refuses to make it, or any view of it, writeable again.
template <typename T>
py::array_t<T> capsule_owned(const std::vector<int64_t>& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  T* buf = new T[n > 0 ? n : 1];
  py::capsule owner(buf, [](void* p) { delete[] static_cast<T*>(p); });
  return py::array_t<T>(std::vector<py::ssize_t>(dims.begin(), dims.end()), buf, owner);
}
void freeze(const py::array& a);

// A frozen C-contiguous copy of `a`.
template <typename T>
py::array frozen_copy(const py::array& a) {
  py::array_t<T> out = capsule_owned<T>(dims_of(a));
  numpy().attr("copyto")(out, a);
  freeze(out);
  return std::move(out);
}

// Whether the bytes of a and b overlap.
bool overlaps(const py::array& a, const py::array& b);

template <typename T>
const T* ptr(const py::array& a) {
  return static_cast<const T*>(a.data());
}

// The data of an optional array (None: nullptr).
template <typename T>
const T* opt_ptr(const py::object& a) {
  return a.is_none() ? nullptr : ptr<T>(py::reinterpret_borrow<py::array>(a));
}

// Validation helpers bound to one public function's name, so every message starts with it.
struct Check {
  const char* fn;

  [[noreturn]] void type_error(const std::string& msg) const;
  [[noreturn]] void value_error(const std::string& msg) const;

  // Converts an argument to an ndarray without changing its dtype (lists become arrays).
  py::array array(const char* name, const py::handle& obj) const;

  bool is_f32(const py::array& a) const { return a.dtype().is(py::dtype::of<float>()); }
  bool is_f64(const py::array& a) const { return a.dtype().is(py::dtype::of<double>()); }

  void floating(const char* name, const py::array& a) const;
  void boolean(const char* name, const py::array& a) const;
  void contiguous(const char* name, const py::array& a) const;
  void ndim(const char* name, const py::array& a, py::ssize_t nd, const char* layout) const;
  // `formula` spells the expected shape in symbols, e.g. "(4*H, H)".
  void shape(const char* name, const py::array& a, const std::vector<int64_t>& expected,
             const char* formula) const;
  // That `dims` broadcasts to `target` (numpy's rule: trailing dims equal or 1).
  void broadcastable(const char* name, const std::vector<int64_t>& dims, const std::vector<int64_t>& target) const;

  template <typename T>
  void dtype_like(const char* name, const py::array& a, const char* ref) const {
    if (!a.dtype().is(py::dtype::of<T>())) {
      type_error(std::string(name) + " must be " + dtype_name<T>() + ", like " + ref + ", got " + dtype_str(a));
    }
  }

  // dtype T, C-contiguous and exactly `dims`, like the array `ref` describes.
  template <typename T>
  void same_as(const char* name, const py::array& a, const std::vector<int64_t>& dims, const char* ref) const {
    dtype_like<T>(name, a, ref);
    contiguous(name, a);
    if (dims_of(a) != dims) {
      value_error(std::string(name) + " must have the shape of " + ref + ", " + shape_str(dims) + ", got " +
                  shape_str(dims_of(a)));
    }
  }

  // A C-contiguous uint8 view of a bool mask broadcast to `target` (a copy only when the mask's
  // shape differs from target's).
  py::array mask_like(const char* name, const py::handle& obj, const std::vector<int64_t>& target) const;

  // Lengths: None, or integers of shape (n,) each in [0, max]; returned as C-contiguous int64
  // (None stays None). `formula` spells the shape, e.g. "(B,)"; `max_name` the bound, e.g. "T".
  py::object lengths(const char* name, const py::object& obj, int64_t n, int64_t max, const char* formula,
                     const char* max_name = nullptr) const;
};

// An argument that must have dtype T, like `ref` (TypeError), and the given shape (ValueError);
// returned C-contiguous (a copy when it was not).
template <typename T>
py::array operand(const Check& c, const char* name, const py::object& obj, const std::vector<int64_t>& dims,
                  const char* formula, const char* ref = "the weights") {
  py::array a = c.array(name, obj);
  c.dtype_like<T>(name, a, ref);
  c.shape(name, a, dims, formula);
  return c_order(a);
}

// The same for an optional argument (None stays None).
template <typename T>
py::object optional_operand(const Check& c, const char* name, const py::object& obj, const std::vector<int64_t>& dims,
                            const char* formula, const char* ref = "the weights") {
  return obj.is_none() ? py::object(py::none()) : py::object(operand<T>(c, name, obj, dims, formula, ref));
}

// What one call is about to allocate (outputs, cache, the kernel's large scratch), counted before
// anything is allocated or computed. Every product is overflow-checked: a size past 2**63 bytes
// raises ValueError; a total larger than the machine's physical memory raises MemoryError. Both
// name `what` (the argument whose shape implies the size), so an impossible call fails at once
// instead of dying in the allocator or the kernel.
class Footprint {
 public:
  // `what` builds the name only when a check fails (the hot, small calls never pay for it).
  Footprint(const Check& c, std::function<std::string()> what) : c_(c), what_(std::move(what)) {}

  Footprint& add(const std::vector<int64_t>& dims, int64_t elem_bytes);
  void check() const;

 private:
  [[noreturn]] void overflow() const;

  const Check& c_;
  std::function<std::string()> what_;
  int64_t total_ = 0;
};

// Runs f(float{}) or f(double{}) by the dtype of `a` (which Check::floating accepted), so a
// binding is written once as a generic lambda: [&](auto tag) { using T = decltype(tag); ... }.
template <typename F>
auto by_dtype(const Check& c, const py::array& a, F&& f) {
  return c.is_f64(a) ? f(double{}) : f(float{});
}

// Calls a kernel entry with the GIL released. The arguments are raw pointers, sizes and shape
// structs, never Python objects: everything Python is done before the call.
template <typename... P, typename... A>
void call_kernel(void (*fn)(P...), A&&... args) {
  static_assert(!(std::is_base_of_v<py::handle, std::decay_t<A>> || ...),
                "kernels take raw pointers: no Python object may cross into a GIL-free call");
  if (!fn) throw std::runtime_error(std::string("kernel missing at level ") + isa_name(current_isa()));
  py::gil_scoped_release release;
  fn(std::forward<A>(args)...);
}

// The per-dtype entries of the level this thread runs at.
template <typename T>
const Ops<T>& ops() {
  return table().ops<T>();
}

}  // namespace bind
}  // namespace seqkern
