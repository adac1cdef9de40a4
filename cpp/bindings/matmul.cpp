// matmul.cpp: _matmul, private: tests and benchmarks of the blocked GEMM (kernels/gemm.h).
#include "bindings/check.h"
#include "bindings/families.h"

namespace seqkern {
namespace bind {

namespace {

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
  const int64_t M = trans_a ? a.shape(1) : a.shape(0);
  const int64_t K = trans_a ? a.shape(0) : a.shape(1);
  const int64_t N = trans_b ? b.shape(0) : b.shape(1);
  const int64_t Kb = trans_b ? b.shape(1) : b.shape(0);
  return by_dtype(c, a, [&](auto tag) -> py::array {
    using T = decltype(tag);
    c.dtype_like<T>("b", b, "a");
    if (Kb != K) {
      c.value_error(std::string("b must have ") + (trans_b ? "shape (N, K)" : "shape (K, N)") + " with K = " +
                    std::to_string(K) + " (from a), got " + shape_str(dims_of(b)));
    }
    py::array_t<T> out = empty<T>({M, N});
    if (!c_obj.is_none()) {
      py::array c_in = c.array("c", c_obj);
      c.dtype_like<T>("c", c_in, "a");
      c.shape("c", c_in, {M, N}, "(M, N)");
      out = py::array_t<T>(c_order(c_in, true));
    }
    call_kernel(ops<T>().matmul.run, trans_a, trans_b, M, N, K, static_cast<T>(alpha), ptr<T>(a), ptr<T>(b),
                static_cast<T>(beta), out.mutable_data(), threads, packed_repeat);
    return out;
  });
}

}  // namespace

void bind_matmul(py::module_& m) {
  m.def("_matmul", &matmul, py::arg("a"), py::arg("b"), py::arg("trans_a") = false, py::arg("trans_b") = false,
        py::arg("threads") = 0, py::arg("packed_repeat") = 0, py::arg("alpha") = 1.0, py::arg("beta") = 0.0,
        py::arg("c") = py::none());
}

}  // namespace bind
}  // namespace seqkern
