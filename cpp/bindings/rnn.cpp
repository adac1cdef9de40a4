// rnn.cpp: the plain RNN's bindings: rnn_weights (frozen copies and packed panels, seqkern._rnn's
// RNNWeights keeps them), and rnn_forward, rnn_step and rnn_backward on h_state.h.
#include <cstring>

#include "bindings/check.h"
#include "bindings/families.h"
#include "bindings/h_state.h"
#include "bindings/recurrent.h"

namespace seqkern {
namespace bind {

namespace {

struct RnnFamily {
  static constexpr int kGates = 1;
  static constexpr bool kZeroBlocks = false;
  static constexpr bool kMasks = true;
  template <typename T>
  static const RnnOps<T>& ops() {
    return seqkern::bind::ops<T>().rnn;
  }
  // variant: 0 tanh, 1 relu.
  template <typename T>
  static ElmanParams<T> params(const RnnParams<T>& base, int variant) {
    ElmanParams<T> p;
    static_cast<RnnParams<T>&>(p) = base;
    p.relu = variant == 1;
    return p;
  }
};

// (w_ih, w_hh, bias, wih_p, whh_p), frozen, from w_ih (H, D), w_hh (H, H) and bias (H,) or None.
py::tuple rnn_weights(const py::object& wi_obj, const py::object& wh_obj, const py::object& b_obj) {
  const Check c{"RNNWeights"};
  py::array wi = c.array("w_ih", wi_obj), wh = c.array("w_hh", wh_obj);
  c.floating("w_ih", wi);
  return by_dtype(c, wi, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const auto [D, H] = recurrent_weights<T>(c, wi, wh, 1, 2, 1);
    const py::object bias = optional_operand<T>(c, "bias", b_obj, {H}, "(H,)", "w_ih");
    const py::array w_ih = frozen_copy<T>(wi), w_hh = frozen_copy<T>(wh);
    py::array b;
    if (bias.is_none()) {
      py::array_t<T> zeros = capsule_owned<T>({H});
      std::memset(zeros.mutable_data(), 0, sizeof(T) * H);
      freeze(zeros);
      b = zeros;
    } else {
      b = frozen_copy<T>(bias);
    }
    py::array_t<T> wip = capsule_owned<T>({H * D}), whp = capsule_owned<T>({H * H});
    call_kernel(ops<T>().rnn.pack, RnnShape{0, 0, D, H}, ptr<T>(w_ih), ptr<T>(w_hh), wip.mutable_data(),
                whp.mutable_data());
    freeze(wip);
    freeze(whp);
    return py::make_tuple(w_ih, w_hh, b, wip, whp);
  });
}

py::tuple rnn_forward(const py::object& x, const py::tuple& weights, const py::object& h0, const py::object& lengths,
                      bool need_cache, bool relu, const py::object& mask) {
  return h_state_forward<RnnFamily>("rnn_forward", "RNNWeights", x, weights, h0, lengths, need_cache, relu ? 1 : 0,
                                    mask);
}

py::array rnn_step(const py::tuple& weights, const py::object& x, const py::object& h, const py::object& out,
                   bool relu) {
  return h_state_step<RnnFamily>("RNNWeights.step", "RNNWeights", weights, x, h, out, relu ? 1 : 0);
}

py::tuple rnn_backward(const py::object& x, const py::tuple& weights, const py::object& lengths,
                       const py::object& gates, const py::object& hs, const py::object& dy, const py::object& dh,
                       bool relu, const py::object& mask) {
  return h_state_backward<RnnFamily>("rnn_backward", "RNNWeights", x, weights, lengths, gates, hs, dy, dh,
                                     relu ? 1 : 0, mask);
}

}  // namespace

void bind_rnn(py::module_& m) {
  m.def("rnn_weights", &rnn_weights, py::arg("w_ih"), py::arg("w_hh"), py::arg("bias"));
  m.def("rnn_forward", &rnn_forward, py::arg("x"), py::arg("weights"), py::arg("h0"), py::arg("lengths"),
        py::arg("need_cache"), py::arg("relu"), py::arg("recurrent_mask") = py::none());
  m.def("rnn_step", &rnn_step, py::arg("weights"), py::arg("x"), py::arg("h"), py::arg("out_h"), py::arg("relu"));
  m.def("rnn_backward", &rnn_backward, py::arg("x"), py::arg("weights"), py::arg("lengths"), py::arg("gates"),
        py::arg("hs"), py::arg("dy"), py::arg("dh_n"), py::arg("relu"), py::arg("recurrent_mask") = py::none());
}

}  // namespace bind
}  // namespace seqkern
