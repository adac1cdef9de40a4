// gru.cpp: the GRU's bindings: gru_weights (the column forms and packed panels, seqkern._gru's
// GRUWeights keeps them), gru_forward, gru_step and gru_backward.
#include <cmath>
#include <cstring>

#include "bindings/check.h"
#include "bindings/families.h"
#include "bindings/recurrent.h"

namespace seqkern {
namespace bind {

namespace {

// The five arrays a GRUWeights keeps, checked against each other on every call (they are
// read-only, but a caller could hand in others): the column forms (ops/gru.h) and the panels.
struct GruArgs {
  py::array w_ih, w_hh, bias, wih_p, whh_p;
  int64_t D = 0, H = 0;

  GruArgs(const Check& c, const py::tuple& weights, bool with_wih) {
    if (weights.size() != 5) c.type_error("weights must be a GRUWeights");
    const char* names[] = {"weights w_ih", "weights w_hh", "weights bias", "weights wih_p", "weights whh_p"};
    py::array* arrs[] = {&w_ih, &w_hh, &bias, &wih_p, &whh_p};
    for (int i = 0; i < 5; ++i) {
      *arrs[i] = c.array(names[i], weights[i]);
      c.floating(names[i], *arrs[i]);
      c.contiguous(names[i], *arrs[i]);
    }
    c.ndim("weights w_hh", w_hh, 2, "(4*H, H)");
    c.ndim("weights w_ih", w_ih, 2, "(4*H, D)");
    H = w_hh.shape(1);
    D = w_ih.shape(1);
    by_dtype(c, w_ih, [&](auto tag) {
      using T = decltype(tag);
      for (int i = 1; i < 5; ++i) c.dtype_like<T>(names[i], *arrs[i], "weights w_ih");
    });
    c.shape("weights w_hh", w_hh, {4 * H, H}, "(4*H, H)");
    c.shape("weights w_ih", w_ih, {4 * H, D}, "(4*H, D)");
    c.shape("weights bias", bias, {4 * H}, "(4*H,)");
    c.shape("weights whh_p", whh_p, {4 * H * H}, "(4*H*H,)");
    if (with_wih) c.shape("weights wih_p", wih_p, {4 * H * D}, "(4*H*D,)");
  }

  template <typename T>
  GruParams<T> params() const {
    return GruParams<T>{ptr<T>(w_ih), ptr<T>(w_hh), ptr<T>(bias), ptr<T>(wih_p), ptr<T>(whh_p)};
  }

};

template <typename T>
bool has_inf(const T* p, int64_t n) {
  bool any = false;
  for (int64_t i = 0; i < n; ++i) any |= std::isinf(p[i]);
  return any;
}

// (w_ih_c, w_hh_c, bias_c, wih_p, whh_p), frozen, from PyTorch's w_ih (3H, D), w_hh (3H, H),
// b_ih, b_hh (3H,) or None.
py::tuple gru_weights(const py::object& wi_obj, const py::object& wh_obj, const py::object& bi_obj,
                      const py::object& bh_obj) {
  const Check c{"GRUWeights"};
  py::array wi = c.array("w_ih", wi_obj), wh = c.array("w_hh", wh_obj);
  c.floating("w_ih", wi);
  return by_dtype(c, wi, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    // The column forms and their panels, of four gate columns.
    const auto [D, H] = recurrent_weights<T>(c, wi, wh, 3, 2, 4);
    const py::array w_ih = c_order(wi), w_hh = c_order(wh);
    const py::object b_ih = optional_operand<T>(c, "b_ih", bi_obj, {3 * H}, "(3*H,)", "w_ih");
    const py::object b_hh = optional_operand<T>(c, "b_hh", bh_obj, {3 * H}, "(3*H,)", "w_ih");
    py::array_t<T> wic = capsule_owned<T>({4 * H, D}), whc = capsule_owned<T>({4 * H, H});
    py::array_t<T> bc = capsule_owned<T>({4 * H});
    py::array_t<T> wip = capsule_owned<T>({4 * H * D}), whp = capsule_owned<T>({4 * H * H});
    T *a = wic.mutable_data(), *b = whc.mutable_data(), *s = bc.mutable_data();
    const T *wi_p = ptr<T>(w_ih), *wh_p = ptr<T>(w_hh), *bi = opt_ptr<T>(b_ih), *bh = opt_ptr<T>(b_hh);
    std::memcpy(a, wi_p, sizeof(T) * 3 * H * D);             // [W_ir; W_iz; W_in; 0]
    std::memset(a + 3 * H * D, 0, sizeof(T) * H * D);
    std::memcpy(b, wh_p, sizeof(T) * 2 * H * H);             // [W_hr; W_hz; 0; W_hn]
    std::memset(b + 2 * H * H, 0, sizeof(T) * H * H);
    std::memcpy(b + 3 * H * H, wh_p + 2 * H * H, sizeof(T) * H * H);
    for (int64_t i = 0; i < 4 * H; ++i) {                    // [b_ir + b_hr; b_iz + b_hz; b_in; b_hn]
      const T x = i < 3 * H && bi ? bi[i] : T(0);
      const int64_t j = i < 2 * H ? i : i - H;                // b_hh's index feeding column entry i
      const T y = (i < 2 * H || i >= 3 * H) && bh ? bh[j] : T(0);
      s[i] = x + y;
    }
    call_kernel(ops<T>().gru.pack, RnnShape{0, 0, D, H}, static_cast<const T*>(a), static_cast<const T*>(b),
                wip.mutable_data(), whp.mutable_data());
    for (const py::array* arr : {static_cast<py::array*>(&wic), static_cast<py::array*>(&whc),
                                 static_cast<py::array*>(&bc), static_cast<py::array*>(&wip),
                                 static_cast<py::array*>(&whp)}) {
      freeze(*arr);
    }
    return py::make_tuple(wic, whc, bc, wip, whp);
  });
}

py::tuple gru_forward(const py::object& x_obj, const py::tuple& weights, const py::object& h0_obj,
                      const py::object& lengths_obj, bool need_cache) {
  const Check c{"gru_forward"};
  const GruArgs w(c, weights, false);
  py::array x = c.array("x", x_obj);
  c.floating("x", x);
  c.ndim("x", x, 3, "(T, B, D)");
  c.contiguous("x", x);
  return by_dtype(c, w.w_ih, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    c.dtype_like<T>("x", x, "the weights");
    const int64_t T_ = x.shape(0), B = x.shape(1), D = w.D, H = w.H;
    c.shape("x", x, {T_, B, D}, "(T, B, D) with D = w_ih.shape[1]");
    // y, the gates (the cache's, or the kernel's scratch), h of every step, the state buffers.
    Footprint(c, [&] { return of_shape("x", x) + " with H = " + std::to_string(H); })
        .add({T_, B, H}, sizeof(T))
        .add({T_, B, 4, H}, sizeof(T))
        .add({T_, B, H}, need_cache ? sizeof(T) : 0)
        .add({6, B, H}, sizeof(T))
        .check();
    const py::object h0 = optional_operand<T>(c, "h0", h0_obj, {B, H}, "(B, H)");
    const py::object lengths = c.lengths("lengths", lengths_obj, B, T_, "(B,)", "T");
    py::array_t<T> y = empty<T>({T_, B, H}), h_n = empty<T>({B, H});
    py::object gates = py::none(), hs = py::none();
    T *gp = nullptr, *hp = nullptr;
    if (need_cache) {
      py::array_t<T> g = empty<T>({T_, B, 4 * H}), h = empty<T>({T_ + 1, B, H});
      gp = g.mutable_data();
      hp = h.mutable_data();
      gates = g;
      hs = h;
    }
    const T* init[1] = {opt_ptr<T>(h0)};
    T* last[1] = {h_n.mutable_data()};
    T* states[1] = {hp};
    GruParams<T> p = w.params<T>();
    // An infinity in x or h0 would meet the column forms' zero blocks in the per-step GEMM.
    p.tiles_only = has_inf(ptr<T>(x), T_ * B * D) || (init[0] && has_inf(init[0], B * H));
    call_kernel(ops<T>().gru.forward, RnnShape{T_, B, D, H}, ptr<T>(x), p, init,
                opt_ptr<int64_t>(lengths), y.mutable_data(), last, gp, need_cache ? states : nullptr);
    return py::make_tuple(y, h_n, gates, hs, lengths);
  });
}

py::array gru_step(const py::tuple& weights, const py::object& x_obj, const py::object& h_obj,
                   const py::object& out_obj) {
  const Check c{"GRUWeights.step"};
  const GruArgs w(c, weights, true);
  return by_dtype(c, w.w_ih, [&](auto tag) -> py::array {
    using T = decltype(tag);
    py::array x = c.array("x", x_obj);
    c.dtype_like<T>("x", x, "the weights");
    c.ndim("x", x, 2, "(B, D)");
    const int64_t B = x.shape(0), D = w.D, H = w.H;
    c.shape("x", x, {B, D}, "(B, D)");
    Footprint(c, [&] { return of_shape("x", x); }).add({B, D}, sizeof(T)).add({3, B, H}, sizeof(T)).check();
    x = c_order(x);
    const py::array h = operand<T>(c, "h", h_obj, {B, H}, "(B, H)");
    py::array out = out_obj.is_none() ? py::array(empty<T>({B, H})) : c.array("out_h", out_obj);
    if (!out_obj.is_none()) {
      c.dtype_like<T>("out_h", out, "the weights");
      c.shape("out_h", out, {B, H}, "(B, H)");
      c.contiguous("out_h", out);
      if (!out.writeable()) c.value_error("out_h must be writeable");
    }
    // The kernel reads all of h and x while writing out_h block by block.
    const bool clash = overlaps(out, x) || overlaps(out, h);
    py::array dst = clash ? py::array(empty<T>({B, H})) : out;
    const T* prev[1] = {ptr<T>(h)};
    T* next[1] = {static_cast<T*>(dst.mutable_data())};
    call_kernel(ops<T>().gru.step, RnnShape{1, B, D, H}, ptr<T>(x), w.params<T>(), prev, next);
    if (clash) std::memcpy(out.mutable_data(), dst.data(), sizeof(T) * B * H);
    return out;
  });
}

py::tuple gru_backward(const py::object& x_obj, const py::tuple& weights, const py::object& lengths_obj,
                       const py::object& gates_obj, const py::object& hs_obj, const py::object& dy_obj,
                       const py::object& dh_obj) {
  const Check c{"gru_backward"};
  const GruArgs w(c, weights, false);
  py::array x = c.array("cache x", x_obj), gates = c.array("cache gates", gates_obj), hs = c.array("cache h", hs_obj);
  c.ndim("cache x", x, 3, "(T, B, D)");
  return by_dtype(c, w.w_ih, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const int64_t T_ = x.shape(0), B = x.shape(1), D = w.D, H = w.H;
    c.same_as<T>("cache x", x, {T_, B, D}, "the forward's x");
    c.same_as<T>("cache gates", gates, {T_, B, 4 * H}, "(T, B, 4*H)");
    c.same_as<T>("cache h", hs, {T_ + 1, B, H}, "(T+1, B, H)");
    const py::object lengths = c.lengths("cache lengths", lengths_obj, B, T_, "(B,)", "T");
    Footprint(c, [&] { return "cache x " + shape_str(dims_of(x)) + " with H = " + std::to_string(H); })
        .add({T_, B, D}, sizeof(T))
        .add({4, H, D + H + 1}, sizeof(T))
        .add({T_, B, 4, H}, sizeof(T))
        .add({4, B, H}, sizeof(T))
        .check();
    const py::object dy = optional_operand<T>(c, "dy", dy_obj, {T_, B, H}, "(T, B, H), like y");
    const py::object dh = optional_operand<T>(c, "dh_n", dh_obj, {B, H}, "(B, H), like h_n");
    py::array_t<T> dx = empty<T>({T_, B, D}), dwi = empty<T>({4 * H, D}), dwh = empty<T>({4 * H, H});
    py::array_t<T> db = empty<T>({4 * H}), dh0 = empty<T>({B, H});
    const T* saved[1] = {ptr<T>(hs)};
    const T* d_last[1] = {opt_ptr<T>(dh)};
    T* d_init[1] = {dh0.mutable_data()};
    call_kernel(ops<T>().gru.backward, RnnShape{T_, B, D, H}, ptr<T>(x), w.params<T>(), opt_ptr<int64_t>(lengths),
                ptr<T>(gates), saved, opt_ptr<T>(dy), d_last, dx.mutable_data(), dwi.mutable_data(),
                dwh.mutable_data(), db.mutable_data(), d_init, static_cast<T*>(nullptr));
    return py::make_tuple(dx, dwi, dwh, db, dh0);
  });
}

}  // namespace

void bind_gru(py::module_& m) {
  m.def("gru_weights", &gru_weights, py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"));
  m.def("gru_forward", &gru_forward, py::arg("x"), py::arg("weights"), py::arg("h0"), py::arg("lengths"),
        py::arg("need_cache"));
  m.def("gru_step", &gru_step, py::arg("weights"), py::arg("x"), py::arg("h"), py::arg("out_h"));
  m.def("gru_backward", &gru_backward, py::arg("x"), py::arg("weights"), py::arg("lengths"), py::arg("gates"),
        py::arg("hs"), py::arg("dy"), py::arg("dh_n"));
}

}  // namespace bind
}  // namespace seqkern
