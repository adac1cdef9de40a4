// additive.cpp: additive_attention_forward / additive_attention_backward.
#include "bindings/families.h"
#include "bindings/masks.h"

namespace seqkern {
namespace bind {

namespace {

struct AddArgs {
  AdditiveAttnShape s;
  MaskArgs mask;
};

// Validates q (floating, (B, Lq, Dq)), k, v and the weights (q's dtype) and the mask arguments.
AddArgs additive_args(const Check& c, const py::array& q, const py::array& k, const py::array& v,
                      const py::array& w_q, const py::array& w_k, const py::array& w_v, const py::object& mask,
                      const py::object& kv_lengths) {
  c.floating("q", q);
  c.contiguous("q", q);
  c.ndim("q", q, 3, "(B, Lq, Dq)");
  AddArgs a;
  const char* names[] = {"k", "v", "w_q", "w_k", "w_v"};
  const py::array* arrs[] = {&k, &v, &w_q, &w_k, &w_v};
  for (int i = 0; i < 5; ++i) {
    by_dtype(c, q, [&](auto tag) { c.dtype_like<decltype(tag)>(names[i], *arrs[i], "q"); });
    c.contiguous(names[i], *arrs[i]);
  }
  c.ndim("k", k, 3, "(B, Lk, Dk)");
  c.ndim("v", v, 3, "(B, Lk, Dv)");
  c.ndim("w_q", w_q, 2, "(A, Dq)");
  AdditiveAttnShape& s = a.s;
  s.batch = q.shape(0);
  s.lq = q.shape(1);
  s.dq = q.shape(2);
  s.lk = k.shape(1);
  s.dk = k.shape(2);
  s.dv = v.shape(2);
  s.a = w_q.shape(0);
  c.shape("k", k, {s.batch, s.lk, s.dk}, "(B, Lk, Dk)");
  c.shape("v", v, {s.batch, s.lk, s.dv}, "(B, Lk, Dv)");
  c.shape("w_q", w_q, {s.a, s.dq}, "(A, Dq)");
  c.shape("w_k", w_k, {s.a, s.dk}, "(A, Dk)");
  c.shape("w_v", w_v, {s.a}, "(A,)");
  // The projections (and backward's gradients of them), out, lse, the mask's offsets and lengths.
  Footprint(c, [&] {
    return of_shape("q", q) + ", " + of_shape("k", k) + ", " + of_shape("v", v) + " and " + of_shape("w_q", w_q);
  })
      .add({2, s.batch, s.lq, s.a}, q.itemsize())
      .add({2, s.batch, s.lk, s.a}, q.itemsize())
      .add({s.batch, s.lq, s.dv}, q.itemsize())
      .add({s.batch, s.lq}, q.itemsize())
      .add({s.batch, s.a}, q.itemsize())
      .add({s.batch, 2}, sizeof(int64_t))
      .check();
  attention_masks(c, a.mask, mask, kv_lengths, {s.batch}, s.lq, s.lk);
  return a;
}

py::tuple additive_attention_forward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                                     const py::object& wq_obj, const py::object& wk_obj, const py::object& wv_obj,
                                     const py::object& mask, const py::object& kv_lengths) {
  const Check c{"additive_attention_forward"};
  py::array q = c.array("q", q_obj), k = c.array("k", k_obj), v = c.array("v", v_obj);
  py::array wq = c.array("w_q", wq_obj), wk = c.array("w_k", wk_obj), wv = c.array("w_v", wv_obj);
  const AddArgs a = additive_args(c, q, k, v, wq, wk, wv, mask, kv_lengths);
  const AdditiveAttnShape& s = a.s;
  return by_dtype(c, q, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    py::array_t<T> qp = empty<T>({s.batch, s.lq, s.a}), kp = empty<T>({s.batch, s.lk, s.a});
    py::array_t<T> out = empty<T>({s.batch, s.lq, s.dv}), lse = empty<T>({s.batch, s.lq});
    call_kernel(ops<T>().additive.forward, s, a.mask.m, ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<T>(wq), ptr<T>(wk),
                ptr<T>(wv), qp.mutable_data(), kp.mutable_data(), out.mutable_data(), lse.mutable_data());
    return py::make_tuple(out, qp, kp, lse);
  });
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
  const AddArgs a = additive_args(c, q, k, v, wq, wk, wv, mask, kv_lengths);
  const AdditiveAttnShape& s = a.s;
  return by_dtype(c, q, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    c.same_as<T>("qp", qp, {s.batch, s.lq, s.a}, "the saved q projection");
    c.same_as<T>("kp", kp, {s.batch, s.lk, s.a}, "the saved k projection");
    c.same_as<T>("out", out, {s.batch, s.lq, s.dv}, "the forward output");
    c.same_as<T>("lse", lse, {s.batch, s.lq}, "the saved row statistics");
    c.same_as<T>("dout", dout, {s.batch, s.lq, s.dv}, "out");
    py::array_t<T> dq = empty<T>(dims_of(q)), dk = empty<T>(dims_of(k)), dv = empty<T>(dims_of(v));
    py::array_t<T> dwq = empty<T>(dims_of(wq)), dwk = empty<T>(dims_of(wk)), dwv = empty<T>(dims_of(wv));
    call_kernel(ops<T>().additive.backward, s, a.mask.m, ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<T>(wq), ptr<T>(wk),
                ptr<T>(wv), ptr<T>(qp), ptr<T>(kp), ptr<T>(out), ptr<T>(lse), ptr<T>(dout), dq.mutable_data(),
                dk.mutable_data(), dv.mutable_data(), dwq.mutable_data(), dwk.mutable_data(), dwv.mutable_data());
    return py::make_tuple(dq, dk, dv, dwq, dwk, dwv);
  });
}

}  // namespace

void bind_additive(py::module_& m) {
  m.def("additive_attention_forward", &additive_attention_forward, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("w_q"), py::arg("w_k"), py::arg("w_v"), py::arg("mask"), py::arg("kv_lengths"));
  m.def("additive_attention_backward", &additive_attention_backward, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("w_q"), py::arg("w_k"), py::arg("w_v"), py::arg("qp"), py::arg("kp"), py::arg("out"),
        py::arg("lse"), py::arg("dout"), py::arg("mask"), py::arg("kv_lengths"));
}

}  // namespace bind
}  // namespace seqkern
