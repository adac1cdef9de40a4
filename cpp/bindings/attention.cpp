// attention.cpp: attention_forward / attention_backward (scaled dot-product, fused).
#include <algorithm>
#include <cmath>
#include <cstring>

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

// 0 for a C-contiguous k or v; else, when its problems (the leading dims) are evenly spaced and
// each problem's (L, D) rows lie one after the other, as in the filled part of a KVCache, the
// elements from one problem to the next; any other layout raises.
int64_t problem_stride(const Check& c, const char* name, const py::array& a) {
  if (a.flags() & py::array::c_style) return 0;
  const py::ssize_t nd = a.ndim(), isz = a.itemsize();
  bool ok = nd >= 2;
  py::ssize_t rows = 1;
  if (ok) {
    // The last two dims row-major (a dim of size 1 may have any stride).
    ok = (a.shape(nd - 1) <= 1 || a.strides(nd - 1) == isz) &&
         (a.shape(nd - 2) <= 1 || a.strides(nd - 2) == a.shape(nd - 1) * isz);
    rows = a.shape(nd - 2) * a.shape(nd - 1);
  }
  int64_t step = rows;  // elements between problems
  if (ok && nd > 2) {
    const py::ssize_t last = a.strides(nd - 3);
    ok = last % isz == 0 && last / isz >= rows;
    step = last / isz;
    for (py::ssize_t i = nd - 4; ok && i >= 0; --i) {
      ok = a.shape(i) <= 1 || a.strides(i) == a.strides(i + 1) * a.shape(i + 1);
    }
  }
  if (!ok) {
    c.value_error(std::string(name) + " must be C-contiguous, or the filled part of a larger buffer along its " +
                  "length axis (problems evenly spaced, each problem's rows contiguous)");
  }
  return step == rows ? 0 : step;
}

// Validates q, k, v (q floating, k and v of its dtype) and the mask and bias arguments. With two
// or more leading dims (..., NH, L, D), k and v may have fewer heads than q (grouped-query
// attention): every leading dim the same except the last, k's dividing q's.
AttnArgs attention_args(const Check& c, const py::array& q, const py::array& k, const py::array& v,
                        const py::object& mask, bool causal, bool bottom_right, const py::object& kv_lengths,
                        double scale, const py::object& bias, double softcap, int64_t window_left,
                        int64_t window_right) {
  c.floating("q", q);
  c.contiguous("q", q);
  if (q.ndim() < 2) c.value_error("q must have shape (..., Lq, Dh), got shape " + shape_str(dims_of(q)));
  AttnArgs a;
  by_dtype(c, q, [&](auto tag) {
    using T = decltype(tag);
    c.dtype_like<T>("k", k, "q");
    c.dtype_like<T>("v", v, "q");
  });
  const int64_t k_stride = problem_stride(c, "k", k), v_stride = problem_stride(c, "v", v);
  const std::vector<int64_t> qd = dims_of(q);
  const size_t nd = qd.size();
  a.lead.assign(qd.begin(), qd.end() - 2);
  std::vector<int64_t> kd = dims_of(k), vd = dims_of(v);
  // The leading dims k and v must share with q: all; the last (the heads) may divide q's.
  const size_t nl = a.lead.size();
  auto lead_ok = [&](const std::vector<int64_t>& d) {
    if (d.size() != nd) return false;
    for (size_t i = 0; i + 1 < nl; ++i) {
      if (d[i] != qd[i]) return false;
    }
    if (nl == 0) return true;
    if (nl < 2) return d[0] == qd[0];  // (B, L, D): no heads to group
    return (d[nl - 1] > 0 && qd[nl - 1] % d[nl - 1] == 0) || (d[nl - 1] == 0 && qd[nl - 1] == 0);
  };
  if (!lead_ok(kd) || kd[nd - 1] != qd[nd - 1]) {
    c.value_error("k must have shape (..., Lk, Dh) with q's leading dims (its heads may divide q's) and Dh, " +
                  std::string("q has shape ") + shape_str(qd) + ", got " + shape_str(kd));
  }
  if (!lead_ok(vd) || vd[nd - 2] != kd[nd - 2] || (nl > 0 && vd[nl - 1] != kd[nl - 1])) {
    c.value_error("v must have shape (..., Lk, Dv) with k's leading dims and Lk, q has shape " +
                  shape_str(qd) + " and k " + shape_str(kd) + ", got " + shape_str(vd));
  }
  a.s.group = nl >= 2 && kd[nl - 1] > 0 ? qd[nl - 1] / kd[nl - 1] : 1;
  a.s.k_stride = k_stride;
  a.s.v_stride = v_stride;
  a.s.batch = 1;
  for (int64_t d : a.lead) a.s.batch *= d;
  a.s.lq = qd[nd - 2];
  a.s.lk = kd[nd - 2];
  a.s.dh = qd[nd - 1];
  a.s.dv = vd[nd - 1];
  a.s.scale = scale;
  a.s.causal = causal || bottom_right;
  a.s.causal_offset = bottom_right ? a.s.lk - a.s.lq : 0;
  a.s.causal_to_len = bottom_right && !kv_lengths.is_none();
  if (!(softcap >= 0) || !std::isfinite(softcap)) {
    c.value_error("softcap must be a finite number >= 0 (0: none), got " + std::to_string(softcap));
  }
  a.s.softcap = softcap;
  if (window_left < -1 || window_right < -1) {
    c.value_error("window sizes must be >= 0 (or None: unbounded), got (" + std::to_string(window_left) + ", " +
                  std::to_string(window_right) + ")");
  }
  a.s.window_left = window_left;
  a.s.window_right = window_right;
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
  attention_bias(c, a.mask, bias, q, a.lead, a.s.lq, a.s.lk);
  return a;
}

py::tuple attention_forward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                            const py::object& mask, bool causal, bool bottom_right, const py::object& kv_lengths,
                            double scale, const py::object& bias, double softcap, int64_t window_left,
                            int64_t window_right) {
  const Check c{"attention_forward"};
  py::array q = c.array("q", q_obj), k = c.array("k", k_obj), v = c.array("v", v_obj);
  const AttnArgs a = attention_args(c, q, k, v, mask, causal, bottom_right, kv_lengths, scale, bias, softcap,
                                    window_left, window_right);
  return by_dtype(c, q, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    py::array_t<T> out = empty<T>(a.with({a.s.lq, a.s.dv}));
    py::array_t<T> lse = empty<T>(a.with({a.s.lq}));
    call_kernel(ops<T>().attention.forward, a.s, a.mask.m, ptr<T>(q), ptr<T>(k), ptr<T>(v), out.mutable_data(),
                lse.mutable_data());
    return py::make_tuple(out, lse);
  });
}

// (dq, dk, dv, dbias_full): with grouped heads dk and dv are per query head, q's leading dims +
// (Lk, Dh) and (Lk, Dv), for the caller to sum over each group; dbias_full (q's leading dims, Lq,
// Lk) the scores' gradient when need_dbias, else None.
py::tuple attention_backward(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                             const py::object& out_obj, const py::object& lse_obj, const py::object& dout_obj,
                             const py::object& mask, bool causal, bool bottom_right, const py::object& kv_lengths,
                             double scale, const py::object& bias, double softcap, int64_t window_left,
                             int64_t window_right, bool need_dbias) {
  const Check c{"attention_backward"};
  py::array q = c.array("q", q_obj), k = c.array("k", k_obj), v = c.array("v", v_obj);
  py::array out = c.array("out", out_obj), lse = c.array("lse", lse_obj), dout = c.array("dout", dout_obj);
  AttnArgs a = attention_args(c, q, k, v, mask, causal, bottom_right, kv_lengths, scale, bias, softcap, window_left,
                              window_right);
  return by_dtype(c, q, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    c.same_as<T>("out", out, a.with({a.s.lq, a.s.dv}), "the forward output");
    c.same_as<T>("lse", lse, a.with({a.s.lq}), "the saved row statistics");
    c.same_as<T>("dout", dout, a.with({a.s.lq, a.s.dv}), "out");
    Footprint(c, [&] { return of_shape("q", q) + " with Lk = " + std::to_string(a.s.lk); })
        .add(a.with({a.s.lk, a.s.dh + a.s.dv}), a.s.group > 1 ? sizeof(T) : 0)
        .add(a.with({a.s.lq, a.s.lk}), need_dbias ? sizeof(T) : 0)
        .check();
    py::array_t<T> dq = empty<T>(dims_of(q));
    py::array_t<T> dk = empty<T>(a.s.group > 1 ? a.with({a.s.lk, a.s.dh}) : dims_of(k));
    py::array_t<T> dv = empty<T>(a.s.group > 1 ? a.with({a.s.lk, a.s.dv}) : dims_of(v));
    py::object dbias = py::none();
    if (need_dbias) {
      py::array_t<T> g = empty<T>(a.with({a.s.lq, a.s.lk}));
      std::memset(g.mutable_data(), 0, static_cast<size_t>(g.nbytes()));  // skipped tiles stay 0
      a.mask.m.dbias = g.mutable_data();
      dbias = g;
    }
    call_kernel(ops<T>().attention.backward, a.s, a.mask.m, ptr<T>(q), ptr<T>(k), ptr<T>(v), ptr<T>(out),
                ptr<T>(lse), ptr<T>(dout), dq.mutable_data(), dk.mutable_data(), dv.mutable_data());
    return py::make_tuple(dq, dk, dv, dbias);
  });
}

// The score matrix of a forward call at a stage (ops/attention.h), q's leading dims + (Lq, Lk).
py::array attention_scores(const py::object& q_obj, const py::object& k_obj, const py::object& v_obj,
                           const py::object& lse_obj, const py::object& mask, bool causal, bool bottom_right,
                           const py::object& kv_lengths, double scale, const py::object& bias, double softcap,
                           int64_t window_left, int64_t window_right, int stage) {
  const Check c{"attention_scores"};
  py::array q = c.array("q", q_obj), k = c.array("k", k_obj), v = c.array("v", v_obj);
  py::array lse = c.array("lse", lse_obj);
  const AttnArgs a = attention_args(c, q, k, v, mask, causal, bottom_right, kv_lengths, scale, bias, softcap,
                                    window_left, window_right);
  if (stage < 0 || stage > 2) c.value_error("stage must be 0, 1 or 2, got " + std::to_string(stage));
  return by_dtype(c, q, [&](auto tag) -> py::array {
    using T = decltype(tag);
    c.same_as<T>("lse", lse, a.with({a.s.lq}), "the saved row statistics");
    Footprint(c, [&] { return of_shape("q", q) + " with Lk = " + std::to_string(a.s.lk); })
        .add(a.with({a.s.lq, a.s.lk}), sizeof(T))
        .check();
    py::array_t<T> out = empty<T>(a.with({a.s.lq, a.s.lk}));
    call_kernel(ops<T>().attention.scores, a.s, a.mask.m, ptr<T>(q), ptr<T>(k), ptr<T>(lse), stage,
                out.mutable_data());
    return out;
  });
}

}  // namespace

void bind_attention(py::module_& m) {
  m.def("attention_forward", &attention_forward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("mask"),
        py::arg("causal"), py::arg("bottom_right"), py::arg("kv_lengths"), py::arg("scale"), py::arg("bias"),
        py::arg("softcap"), py::arg("window_left"), py::arg("window_right"));
  m.def("attention_backward", &attention_backward, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("out"),
        py::arg("lse"), py::arg("dout"), py::arg("mask"), py::arg("causal"), py::arg("bottom_right"),
        py::arg("kv_lengths"), py::arg("scale"), py::arg("bias"), py::arg("softcap"), py::arg("window_left"),
        py::arg("window_right"), py::arg("need_dbias"));
  m.def("attention_scores", &attention_scores, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("lse"),
        py::arg("mask"), py::arg("causal"), py::arg("bottom_right"), py::arg("kv_lengths"), py::arg("scale"),
        py::arg("bias"), py::arg("softcap"), py::arg("window_left"), py::arg("window_right"), py::arg("stage"));
}

}  // namespace bind
}  // namespace seqkern
