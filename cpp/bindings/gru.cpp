// gru.cpp: the GRU's bindings: gru_weights (the column forms and packed panels, seqkern._gru's
// GRUWeights keeps them), and gru_forward, gru_step and gru_backward on h_state.h, for either
// family: reset after the product (PyTorch's) or before it (`reset_before`, ops/gru.h).
#include <cstring>

#include "bindings/check.h"
#include "bindings/families.h"
#include "bindings/h_state.h"
#include "bindings/recurrent.h"

namespace seqkern {
namespace bind {

namespace {

struct GruFamily {
  static constexpr int kGates = 4;
  static constexpr bool kZeroBlocks = true;
  static constexpr bool kMasks = true;
  template <typename T>
  static const GruOps<T>& ops() {
    return seqkern::bind::ops<T>().gru;
  }
  template <typename T>
  static GruParams<T> params(const RnnParams<T>& base, int) {
    return base;
  }
};

// The same arrays; its kernels multiply only the real weights (no zero blocks).
struct GruResetBeforeFamily : GruFamily {
  static constexpr bool kZeroBlocks = false;
  static constexpr bool kMasks = false;
  template <typename T>
  static const GruOps<T>& ops() {
    return seqkern::bind::ops<T>().gru_rb;
  }
};

// (w_ih_c, w_hh_c, bias_c, wih_p, whh_p), frozen, from PyTorch's w_ih (3H, D), w_hh (3H, H),
// b_ih, b_hh (3H,) or None.
py::tuple gru_weights(const py::object& wi_obj, const py::object& wh_obj, const py::object& bi_obj,
                      const py::object& bh_obj, bool reset_before) {
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
    call_kernel(reset_before ? ops<T>().gru_rb.pack : ops<T>().gru.pack, RnnShape{0, 0, D, H},
                static_cast<const T*>(a), static_cast<const T*>(b), wip.mutable_data(), whp.mutable_data());
    for (const py::array* arr : {static_cast<py::array*>(&wic), static_cast<py::array*>(&whc),
                                 static_cast<py::array*>(&bc), static_cast<py::array*>(&wip),
                                 static_cast<py::array*>(&whp)}) {
      freeze(*arr);
    }
    return py::make_tuple(wic, whc, bc, wip, whp);
  });
}

py::tuple gru_forward(const py::object& x, const py::tuple& weights, const py::object& h0, const py::object& lengths,
                      bool need_cache, bool reset_before, const py::object& mask) {
  return reset_before ? h_state_forward<GruResetBeforeFamily>("gru_forward", "GRUWeights", x, weights, h0, lengths,
                                                              need_cache, 0, mask)
                      : h_state_forward<GruFamily>("gru_forward", "GRUWeights", x, weights, h0, lengths, need_cache, 0,
                                                   mask);
}

py::array gru_step(const py::tuple& weights, const py::object& x, const py::object& h, const py::object& out,
                   bool reset_before) {
  return reset_before ? h_state_step<GruResetBeforeFamily>("GRUWeights.step", "GRUWeights", weights, x, h, out, 0)
                      : h_state_step<GruFamily>("GRUWeights.step", "GRUWeights", weights, x, h, out, 0);
}

py::tuple gru_backward(const py::object& x, const py::tuple& weights, const py::object& lengths,
                       const py::object& gates, const py::object& hs, const py::object& dy, const py::object& dh,
                       bool reset_before, const py::object& mask) {
  return reset_before ? h_state_backward<GruResetBeforeFamily>("gru_backward", "GRUWeights", x, weights, lengths,
                                                               gates, hs, dy, dh, 0, mask)
                      : h_state_backward<GruFamily>("gru_backward", "GRUWeights", x, weights, lengths, gates, hs, dy,
                                                    dh, 0, mask);
}

}  // namespace

void bind_gru(py::module_& m) {
  m.def("gru_weights", &gru_weights, py::arg("w_ih"), py::arg("w_hh"), py::arg("b_ih"), py::arg("b_hh"),
        py::arg("reset_before") = false);
  m.def("gru_forward", &gru_forward, py::arg("x"), py::arg("weights"), py::arg("h0"), py::arg("lengths"),
        py::arg("need_cache"), py::arg("reset_before") = false, py::arg("recurrent_mask") = py::none());
  m.def("gru_step", &gru_step, py::arg("weights"), py::arg("x"), py::arg("h"), py::arg("out_h"),
        py::arg("reset_before") = false);
  m.def("gru_backward", &gru_backward, py::arg("x"), py::arg("weights"), py::arg("lengths"), py::arg("gates"),
        py::arg("hs"), py::arg("dy"), py::arg("dh_n"), py::arg("reset_before") = false,
        py::arg("recurrent_mask") = py::none());
}

}  // namespace bind
}  // namespace seqkern
