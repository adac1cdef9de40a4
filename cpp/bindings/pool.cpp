// pool.cpp: attention_pool_forward / attention_pool_backward over time-major LSTM outputs.
#include <utility>

#include "bindings/check.h"
#include "bindings/families.h"

namespace seqkern {
namespace bind {

namespace {

struct PoolArgs {
  AttnPoolShape s;
  py::object lengths;  // int64 (B,) or None
};

// Validates h (floating, (T, B, H)), w (h's dtype, (A, H)) and lengths.
PoolArgs pool_args(const Check& c, const py::array& h, const py::array& w, const py::object& lengths) {
  c.floating("h", h);
  c.contiguous("h", h);
  c.ndim("h", h, 3, "(T, B, H)");
  by_dtype(c, h, [&](auto tag) { c.dtype_like<decltype(tag)>("w", w, "h"); });
  c.contiguous("w", w);
  c.ndim("w", w, 2, "(A, H)");
  PoolArgs a;
  a.s.t = h.shape(0);
  a.s.b = h.shape(1);
  a.s.h = h.shape(2);
  a.s.a = w.shape(0);
  c.shape("w", w, {a.s.a, a.s.h}, "(A, H)");
  // u (and backward's dz), alpha (and its gradient), context, dh.
  Footprint(c, [&] { return of_shape("h", h) + " and " + of_shape("w", w); })
      .add({2, a.s.t, a.s.b, a.s.a}, h.itemsize())
      .add({2, a.s.t, a.s.b}, h.itemsize())
      .add({a.s.b, a.s.h}, h.itemsize())
      .add({a.s.t, a.s.b, a.s.h}, h.itemsize())
      .check();
  a.lengths = c.lengths("lengths", lengths, a.s.b, a.s.t, "(B,)");
  return a;
}

py::tuple attention_pool_forward(const py::object& h_obj, const py::object& w_obj, const py::object& b_obj,
                                 const py::object& ws_obj, const py::object& lengths) {
  const Check c{"attention_pool_forward"};
  py::array h = c.array("h", h_obj), w = c.array("w", w_obj), b = c.array("b", b_obj), ws = c.array("w_s", ws_obj);
  const PoolArgs a = pool_args(c, h, w, lengths);
  const AttnPoolShape& s = a.s;
  return by_dtype(c, h, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    for (auto [name, arr] : {std::pair<const char*, const py::array*>{"b", &b}, {"w_s", &ws}}) {
      c.dtype_like<T>(name, *arr, "h");
      c.contiguous(name, *arr);
      c.shape(name, *arr, {s.a}, "(A,)");
    }
    py::array_t<T> u = empty<T>({s.t, s.b, s.a}), alpha = empty<T>({s.t, s.b}), context = empty<T>({s.b, s.h});
    call_kernel(ops<T>().pool.forward, s, opt_ptr<int64_t>(a.lengths), ptr<T>(h), ptr<T>(w), ptr<T>(b),
                ptr<T>(ws), u.mutable_data(), alpha.mutable_data(), context.mutable_data());
    return py::make_tuple(context, alpha, u);
  });
}

py::tuple attention_pool_backward(const py::object& h_obj, const py::object& w_obj, const py::object& ws_obj,
                                  const py::object& u_obj, const py::object& alpha_obj,
                                  const py::object& dctx_obj, const py::object& lengths) {
  const Check c{"attention_pool_backward"};
  py::array h = c.array("h", h_obj), w = c.array("w", w_obj), ws = c.array("w_s", ws_obj);
  py::array u = c.array("u", u_obj), alpha = c.array("alpha", alpha_obj), g = c.array("dcontext", dctx_obj);
  const PoolArgs a = pool_args(c, h, w, lengths);
  const AttnPoolShape& s = a.s;
  return by_dtype(c, h, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    c.same_as<T>("w_s", ws, {s.a}, "(A,)");
    c.same_as<T>("u", u, {s.t, s.b, s.a}, "the saved projection");
    c.same_as<T>("alpha", alpha, {s.t, s.b}, "the saved weights");
    c.same_as<T>("dcontext", g, {s.b, s.h}, "context");
    py::array_t<T> dh = empty<T>({s.t, s.b, s.h}), dw = empty<T>({s.a, s.h}), db = empty<T>({s.a});
    py::array_t<T> dws = empty<T>({s.a});
    call_kernel(ops<T>().pool.backward, s, opt_ptr<int64_t>(a.lengths), ptr<T>(h), ptr<T>(w), ptr<T>(ws),
                ptr<T>(u), ptr<T>(alpha), ptr<T>(g), dh.mutable_data(), dw.mutable_data(), db.mutable_data(),
                dws.mutable_data());
    return py::make_tuple(dh, dw, db, dws);
  });
}

}  // namespace

void bind_pool(py::module_& m) {
  m.def("attention_pool_forward", &attention_pool_forward, py::arg("h"), py::arg("w"), py::arg("b"),
        py::arg("w_s"), py::arg("lengths"));
  m.def("attention_pool_backward", &attention_pool_backward, py::arg("h"), py::arg("w"), py::arg("w_s"),
        py::arg("u"), py::arg("alpha"), py::arg("dcontext"), py::arg("lengths"));
}

}  // namespace bind
}  // namespace seqkern
