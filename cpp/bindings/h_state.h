// h_state.h: the bindings shared by the recurrent families whose only state is h (GRU, RNN):
// the checks of the five arrays their weights objects keep, and forward, step and backward.
// A family is a traits struct:
//   kGates                 gate columns per unit of the kernels' weights (GRU 4, RNN 1)
//   ops<T>()               its RecurrentOps table
//   params<T>(w, variant)  its Params from the arrays and the caller's variant (RNN: relu)
//   kZeroBlocks            whether its column forms have zero blocks (then an infinite x or h0
//                          runs on the fused tiles, RnnParams::tiles_only)
//   kMasks                 whether its kernels take a recurrent dropout mask (RnnParams::h_mask)
#pragma once

#include <cmath>
#include <cstring>
#include <string>

#include "bindings/check.h"
#include "bindings/lowp.h"
#include "bindings/recurrent.h"

namespace seqkern {
namespace bind {

// The arrays a family's weights object keeps (w_ih, w_hh, bias, wih_p, whh_p, and a LowpForm or
// None for a low-precision float32 layer), checked against each other on every call: they are
// read-only, but a caller could hand in others.
template <class Fam>
struct HStateArgs {
  py::array w_ih, w_hh, bias, wih_p, whh_p;
  const LowpForm* lowp = nullptr;
  int64_t D = 0, H = 0;

  bool int8() const { return lowp && lowp->fmt == LowpForm::int8; }

  HStateArgs(const Check& c, const py::tuple& weights, const char* kind, bool with_wih) {
    constexpr int64_t G = Fam::kGates;
    const std::string g = G == 1 ? "H" : std::to_string(G) + "*H";
    if (weights.size() != 5 && weights.size() != 6) c.type_error(std::string("weights must be a ") + kind);
    if (weights.size() == 6 && !weights[5].is_none()) {
      if (!py::isinstance<LowpForm>(weights[5])) c.type_error(std::string("weights must be a ") + kind);
      lowp = lowp_form_of(weights[5]);
    }
    const char* names[] = {"weights w_ih", "weights w_hh", "weights bias", "weights wih_p", "weights whh_p"};
    py::array* arrs[] = {&w_ih, &w_hh, &bias, &wih_p, &whh_p};
    for (int i = 0; i < 5; ++i) {
      *arrs[i] = c.array(names[i], weights[i]);
      c.floating(names[i], *arrs[i]);
      c.contiguous(names[i], *arrs[i]);
    }
    c.ndim("weights w_hh", w_hh, 2, ("(" + g + ", H)").c_str());
    c.ndim("weights w_ih", w_ih, 2, ("(" + g + ", D)").c_str());
    H = w_hh.shape(1);
    D = w_ih.shape(1);
    by_dtype(c, w_ih, [&](auto tag) {
      using T = decltype(tag);
      for (int i = 1; i < 5; ++i) c.dtype_like<T>(names[i], *arrs[i], "weights w_ih");
    });
    c.shape("weights w_hh", w_hh, {G * H, H}, ("(" + g + ", H)").c_str());
    c.shape("weights w_ih", w_ih, {G * H, D}, ("(" + g + ", D)").c_str());
    c.shape("weights bias", bias, {G * H}, ("(" + g + ",)").c_str());
    c.shape("weights whh_p", whh_p, {G * H * H}, ("(" + g + "*H,)").c_str());
    if (with_wih) c.shape("weights wih_p", wih_p, {G * H * D}, ("(" + g + "*D,)").c_str());
    if (lowp) {
      if (c.is_f64(w_ih)) c.type_error(std::string("weights must be a ") + kind);
      lowp->check_sizes(c, G, D, H);
    }
  }

  template <typename T>
  RnnParams<T> base() const {
    RnnParams<T> p{ptr<T>(w_ih), ptr<T>(w_hh), ptr<T>(bias), ptr<T>(wih_p), ptr<T>(whh_p)};
    if constexpr (std::is_same<T, float>::value) {
      if (lowp) lowp->apply(p);
    }
    return p;
  }
};

template <typename T>
bool has_inf(const T* p, int64_t n) {
  bool any = false;
  for (int64_t i = 0; i < n; ++i) any |= std::isinf(p[i]);
  return any;
}

// (y, h_n, gates or None, h of every step or None, int64 lengths or None, the recurrent mask's
// own copy or None).
template <class Fam>
py::tuple h_state_forward(const char* fn, const char* kind, const py::object& x_obj, const py::tuple& weights,
                          const py::object& h0_obj, const py::object& lengths_obj, bool need_cache, int variant,
                          const py::object& mask_obj) {
  constexpr int64_t G = Fam::kGates;
  const Check c{fn};
  const HStateArgs<Fam> w(c, weights, kind, false);
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
        .add({T_, B, G, H}, sizeof(T))
        .add({T_, B, H}, need_cache ? sizeof(T) : 0)
        .add({6, B, H}, sizeof(T))
        .check();
    const py::object h0 = optional_operand<T>(c, "h0", h0_obj, {B, H}, "(B, H)");
    const py::object lengths = c.lengths("lengths", lengths_obj, B, T_, "(B,)", "T");
    if (!mask_obj.is_none() && !Fam::kMasks) {
      c.value_error("recurrent_mask is not available with linear_before_reset=False (the reset-before GRU)");
    }
    const py::object mask = recurrent_mask<T>(c, mask_obj, B, H);
    if (!mask.is_none() && w.int8()) c.value_error("recurrent_mask needs float weights (int8 weights are for inference)");
    if (w.int8()) {
      // The int8 form is for inference: its steps have no gradient of their own.
      if (need_cache) c.value_error("int8 weights keep no cache (inference only): pass need_cache=False");
      finite_for_int8(c, "x", x);
      finite_for_int8(c, "h0", h0);
    }
    py::array_t<T> y = empty<T>({T_, B, H}), h_n = empty<T>({B, H});
    py::object gates = py::none(), hs = py::none();
    T *gp = nullptr, *hp = nullptr;
    if (need_cache) {
      py::array_t<T> g = empty<T>({T_, B, G * H}), h = empty<T>({T_ + 1, B, H});
      gp = g.mutable_data();
      hp = h.mutable_data();
      gates = g;
      hs = h;
    }
    const T* init[1] = {opt_ptr<T>(h0)};
    T* last[1] = {h_n.mutable_data()};
    T* states[1] = {hp};
    auto p = Fam::template params<T>(w.template base<T>(), variant);
    p.h_mask = opt_ptr<T>(mask);
    // An infinity in x or h0 would meet the column forms' zero blocks in the per-step GEMM.
    if (Fam::kZeroBlocks) {
      p.tiles_only = has_inf(ptr<T>(x), T_ * B * D) || (init[0] && has_inf(init[0], B * H));
    }
    call_kernel(Fam::template ops<T>().forward, RnnShape{T_, B, D, H}, ptr<T>(x), p, init,
                opt_ptr<int64_t>(lengths), y.mutable_data(), last, gp, need_cache ? states : nullptr);
    return py::make_tuple(y, h_n, gates, hs, lengths, mask);
  });
}

template <class Fam>
py::array h_state_step(const char* fn, const char* kind, const py::tuple& weights, const py::object& x_obj,
                       const py::object& h_obj, const py::object& out_obj, int variant) {
  const Check c{fn};
  const HStateArgs<Fam> w(c, weights, kind, true);
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
    if (w.int8()) {
      finite_for_int8(c, "x", x);
      finite_for_int8(c, "h", h);
    }
    const bool clash = overlaps(out, x) || overlaps(out, h);
    py::array dst = clash ? py::array(empty<T>({B, H})) : out;
    const T* prev[1] = {ptr<T>(h)};
    T* next[1] = {static_cast<T*>(dst.mutable_data())};
    call_kernel(Fam::template ops<T>().step, RnnShape{1, B, D, H}, ptr<T>(x),
                Fam::template params<T>(w.template base<T>(), variant), prev, next);
    if (clash) std::memcpy(out.mutable_data(), dst.data(), sizeof(T) * B * H);
    return out;
  });
}

// (dx, dw_ih, dw_hh, dbias, dh0) in the kernels' gate columns.
template <class Fam>
py::tuple h_state_backward(const char* fn, const char* kind, const py::object& x_obj, const py::tuple& weights,
                           const py::object& lengths_obj, const py::object& gates_obj, const py::object& hs_obj,
                           const py::object& dy_obj, const py::object& dh_obj, int variant,
                           const py::object& mask_obj) {
  constexpr int64_t G = Fam::kGates;
  const std::string g = G == 1 ? "H" : std::to_string(G) + "*H";
  const Check c{fn};
  const HStateArgs<Fam> w(c, weights, kind, false);
  if (w.int8()) c.value_error("weights: int8 weights have no backward (inference only)");
  py::array x = c.array("cache x", x_obj), gates = c.array("cache gates", gates_obj), hs = c.array("cache h", hs_obj);
  c.ndim("cache x", x, 3, "(T, B, D)");
  return by_dtype(c, w.w_ih, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const int64_t T_ = x.shape(0), B = x.shape(1), D = w.D, H = w.H;
    c.same_as<T>("cache x", x, {T_, B, D}, "the forward's x");
    c.same_as<T>("cache gates", gates, {T_, B, G * H}, ("(T, B, " + g + ")").c_str());
    c.same_as<T>("cache h", hs, {T_ + 1, B, H}, "(T+1, B, H)");
    const py::object lengths = c.lengths("cache lengths", lengths_obj, B, T_, "(B,)", "T");
    Footprint(c, [&] { return "cache x " + shape_str(dims_of(x)) + " with H = " + std::to_string(H); })
        .add({T_, B, D}, sizeof(T))
        .add({G, H, D + H + 1}, sizeof(T))
        .add({T_, B, G, H}, sizeof(T))
        .add({4, B, H}, sizeof(T))
        .check();
    const py::object dy = optional_operand<T>(c, "dy", dy_obj, {T_, B, H}, "(T, B, H), like y");
    const py::object dh = optional_operand<T>(c, "dh_n", dh_obj, {B, H}, "(B, H), like h_n");
    py::array_t<T> dx = empty<T>({T_, B, D}), dwi = empty<T>({G * H, D}), dwh = empty<T>({G * H, H});
    py::array_t<T> db = empty<T>({G * H}), dh0 = empty<T>({B, H});
    const T* saved[1] = {ptr<T>(hs)};
    const T* d_last[1] = {opt_ptr<T>(dh)};
    T* d_init[1] = {dh0.mutable_data()};
    if (!mask_obj.is_none() && !Fam::kMasks) {
      c.value_error("recurrent_mask is not available with linear_before_reset=False (the reset-before GRU)");
    }
    auto p = Fam::template params<T>(w.template base<T>(), variant);
    p.h_mask = recurrent_mask_ptr<T>(c, "cache recurrent_mask", mask_obj, B, H);
    call_kernel(Fam::template ops<T>().backward, RnnShape{T_, B, D, H}, ptr<T>(x), p, opt_ptr<int64_t>(lengths), ptr<T>(gates),
                saved, opt_ptr<T>(dy), d_last, dx.mutable_data(), dwi.mutable_data(), dwh.mutable_data(),
                db.mutable_data(), d_init, static_cast<T*>(nullptr));
    return py::make_tuple(dx, dwi, dwh, db, dh0);
  });
}

}  // namespace bind
}  // namespace seqkern
