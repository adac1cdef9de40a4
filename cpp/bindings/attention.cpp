// attention.cpp: attention_forward / attention_backward (scaled dot-product, fused).
#include <algorithm>
#include <cmath>

#include "bindings/families.h"
#include "bindings/masks.h"

namespace seqkern {
namespace bind {

namespace {

struct AttnArgs {
  AttnShape s;
  std::vector<int64_t> lead;
  MaskArgs mask;

  // lead + tail, e.g. out's shape lead + (lq, dv).
  std::vector<int64_t> with(std::initializer_list<int64_t> tail) const {
    std::vector<int64_t> d = lead;
    d.insert(d.end(), tail);
    return d;
  }
};

// Validates q, k, v (q floating, k and v of its dtype) and the mask arguments.
AttnArgs attention_args(const Check& c, const py::array& q, const py::array& k, const py::array& v,
                        const py::object& mask, bool causal, const py::object& kv_lengths, double scale) {
  c.floating("q", q);
  c.contiguous("q", q);
  if (q.ndim() < 2) c.value_error("q must have shape (..., Lq, Dh), got shape " + shape_str(dims_of(q)));
  AttnArgs a;
  by_dtype(c, q, [&](auto tag) {
    using T = decltype(tag);
    c.dtype_like<T>("k", k, "q");
    c.dtype_like<T>("v", v, "q");
  });
  c.contiguous("k", k);
  c.contiguous("v", v);
  const std::vector<int64_t> qd = dims_of(q);
  const size_t nd = qd.size();
  a.lead.assign(qd.begin(), qd.end() - 2);
  std::vector<int64_t> kd = dims_of(k), vd = dims_of(v);
  if (kd.size() != nd || !std::equal(a.lead.begin(), a.lead.end(), kd.begin()) || kd[nd - 1] != qd[nd - 1]) {
    c.value_error("k must have shape (..., Lk, Dh) with q's leading dims and Dh, " + std::string("q has shape ") +
                  shape_str(qd) + ", got " + shape_str(kd));
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
  Footprint(c, [&] { return of_shape("q", q) + ", " + of_shape("k", k) + " and " + of_shape("v", v); })
      .add(a.with({a.s.lq, a.s.dv}), q.itemsize())
      .add(a.with({2, a.s.lq}), q.itemsize())
      .add(a.with({2}), sizeof(int64_t))
      .add(a.with({a.s.lk, a.s.dh}), q.itemsize())
      .add(a.with({a.s.lk, a.s.dv}), q.itemsize())
      .check();
  attention_masks(c, a.mask, mask, kv_lengths, a.lead, a.s.lq, a.s.lk);
  return a;
}

py::tuple attention_forward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                            const py::object& mask, bool causal, const py::object& kv_lengths, double scale) {
  const Check c{"attention_forward"};
  py::array q = c.array("q", q_obj), k = c.array("k", k_obj), v = c.array("v", v_obj);
  const AttnArgs a = attention_args(c, q, k, v, mask, causal, kv_lengths, scale);
  return by_dtype(c, q, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    py::array_t<T> out = empty<T>(a.with({a.s.lq, a.s.dv}));
    py::array_t<T> lse = empty<T>(a.with({a.s.lq}));
    call_kernel(ops<T>().attention.forward, a.s, a.mask.m, ptr<T>(q), ptr<T>(k), ptr<T>(v), out.mutable_data(),
                lse.mutable_data());
    return py::make_tuple(out, lse);
  });
}

py::tuple attention_backward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                             const py::object& out_obj, const py::object& lse_obj, const py::object& dout_obj,
                             const py::object& mask, bool causal, const py::object& kv_lengths, double scale) {
  const Check c{"attention_backward"};
  py::array q = c.array("q", q_obj), k = c.array("k", k_obj), v = c.array("v", v_obj);
  py::array out = c.array("out", out_obj), lse = c.array("lse", lse_obj), dout = c.array("dout", dout_obj);
  const AttnArgs a = attention_args(c, q, k, v, mask, causal, kv_lengths, scale);
  return by_dtype(c, q, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    c.same_as<T>("out", out, a.with({a.s.lq, a.s.dv}), "the forward output");
    c.same_as<T>("lse", lse, a.with({a.s.lq}), "the saved row statistics");
    c.same_as<T>("dout", dout, a.with({a.s.lq, a.s.dv}), "out");
    py::array_t<T> dq = empty<T>(dims_of(q)), dk = empty<T>(dims_of(k)), dv = empty<T>(dims_of(v));
    call_kernel(ops<T>().attention.backward, a.s, a.mask.m, ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<T>(out),
                ptr<T>(lse), ptr<T>(dout), dq.mutable_data(), dk.mutable_data(), dv.mutable_data());
    return py::make_tuple(dq, dk, dv);
  });
}

}  // namespace

void bind_attention(py::module_& m) {
  m.def("attention_forward", &attention_forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask"),
        py::arg("causal"), py::arg("kv_lengths"), py::arg("scale"));
  m.def("attention_backward", &attention_backward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
        py::arg("lse"), py::arg("dout"), py::arg("mask"), py::arg("causal"), py::arg("kv_lengths"),
        py::arg("scale"));
}

}  // namespace bind
}  // namespace seqkern
