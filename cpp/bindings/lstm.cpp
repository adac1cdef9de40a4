// lstm.cpp: lstm_forward, lstm_backward and LSTMCache, what the backward takes from the forward.
#include <cstring>
#include <new>

#include "bindings/families.h"
#include "bindings/lowp.h"
#include "bindings/lstm_weights.h"
#include "bindings/recurrent.h"

namespace seqkern {
namespace bind {

namespace {

// What lstm_backward needs from one lstm_forward call. Nothing can be replaced from Python (the
// attributes are read-only and hand out read-only views), and lstm_backward checks every array
// against the weights and the sizes recorded here again, so no cache can make it read out of
// bounds.
struct LstmCache {
  // Zeroed storage, as LstmWeightsCore's: a cache made by __new__ is refused, not read.
  static void* operator new(std::size_t n) {
    void* p = ::operator new(n);
    std::memset(p, 0, n);
    return p;
  }
  static void operator delete(void* p) { ::operator delete(p); }

  py::object x, gates, hs, cs;   // arrays
  py::object weights, lengths;  // the LSTMWeights; int64 (B,) or None
  py::object mask;              // the recurrent dropout mask (B, H), the cache's own copy, or None

  static py::array arr(const py::object& a) { return py::reinterpret_borrow<py::array>(a); }
  int64_t T = 0, B = 0;
  bool ready = false;

  py::ssize_t nbytes() const {
    require();
    return arr(gates).nbytes() + arr(hs).nbytes() + arr(cs).nbytes();
  }

  const LstmCache& require() const {
    if (!ready) throw py::type_error("lstm_backward: this LSTMCache was not made by lstm_forward");
    return *this;
  }
};

// A read-only view of `a` (the cache's arrays are never handed out writeable).
py::object read_only(const py::object& a) {
  if (a.is_none()) return a;
  py::object v = a.attr("view")();
  v.attr("setflags")(py::arg("write") = false);
  return v;
}

// What the forward hands back besides y, h_n and c_n: nothing, an LSTMCache, or the cache's
// arrays themselves (gates, h, c), writeable and the caller's (lstm_forward_arrays).
enum class Keep { nothing, cache, arrays };

py::tuple forward(const char* fn, const py::object& x_obj, const py::object& w_obj, const py::object& h0_obj,
                  const py::object& c0_obj, const py::object& lengths_obj, Keep keep_what,
                  const py::object& mask_obj) {
  const Check c{fn};
  const bool need_cache = keep_what != Keep::nothing;
  const LstmWeightsCore& w = lstm_weights(fn, w_obj);
  py::array x = c.array("x", x_obj);
  c.floating("x", x);
  if (c.is_f64(x) != w.f64) c.type_error(std::string("x must be ") + w.dtype() + ", like the weights, got " + dtype_str(x));
  c.ndim("x", x, 3, "(T, B, D)");
  c.contiguous("x", x);
  return by_dtype(c, x, [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const int64_t T_ = x.shape(0), B = x.shape(1), D = w.D, H = w.H;
    c.shape("x", x, {T_, B, D}, "(T, B, D) with D = w_ih.shape[1]");
    // y, the gates (the cache's, or the kernel's scratch without a cache), h and c of every step.
    Footprint(c, [&] { return of_shape("x", x) + " with H = " + std::to_string(H); })
        .add({T_, B, H}, sizeof(T))
        .add({T_, B, 4, H}, sizeof(T))
        .add({2, T_, B, H}, need_cache ? sizeof(T) : 0)
        .add({8, B, H}, sizeof(T))
        .check();
    const py::object h0 = optional_operand<T>(c, "h0", h0_obj, {B, H}, "(B, H)");
    const py::object c0 = optional_operand<T>(c, "c0", c0_obj, {B, H}, "(B, H)");
    const py::object lengths = c.lengths("lengths", lengths_obj, B, T_, "(B,)", "T");
    const py::object mask = recurrent_mask<T>(c, mask_obj, B, H);
    if (!mask.is_none() && w.int8()) c.value_error("recurrent_mask needs float weights (int8 weights are for inference)");
    if (w.int8()) {
      // The int8 form is for inference: its steps have no gradient of their own.
      if (need_cache) c.value_error("int8 weights keep no cache (inference only): pass need_cache=False");
      finite_for_int8(c, "x", x);
      finite_for_int8(c, "h0", h0);
    }
    py::array_t<T> y = empty<T>({T_, B, H}), h_n = empty<T>({B, H}), c_n = empty<T>({B, H});
    // The cache's arrays (py::object: no empty placeholder arrays on the inference path).
    py::object saved[3] = {py::none(), py::none(), py::none()};
    T* sp[3] = {nullptr, nullptr, nullptr};
    if (need_cache) {
      const std::vector<int64_t> dims[3] = {{T_, B, 4 * H}, {T_ + 1, B, H}, {T_ + 1, B, H}};
      for (int i = 0; i < 3; ++i) {
        py::array_t<T> a = empty<T>(dims[i]);
        sp[i] = a.mutable_data();
        saved[i] = a;
      }
    }
    std::vector<py::object> keep;
    LstmParams<T> p = w.params<T>(false, keep);
    p.h_mask = opt_ptr<T>(mask);
    const T* init[2] = {opt_ptr<T>(h0), opt_ptr<T>(c0)};
    T* last[2] = {h_n.mutable_data(), c_n.mutable_data()};
    T* states[2] = {sp[1], sp[2]};
    call_kernel(ops<T>().lstm.forward, RnnShape{T_, B, D, H}, ptr<T>(x), p, init, opt_ptr<int64_t>(lengths),
                y.mutable_data(), last, sp[0], need_cache ? states : nullptr);
    if (keep_what == Keep::arrays) return py::make_tuple(y, h_n, c_n, saved[0], saved[1], saved[2]);
    py::object cache = py::none();
    if (need_cache) {
      auto* k = new LstmCache();
      k->x = x.attr("view")();
      k->gates = saved[0];
      k->hs = saved[1];
      k->cs = saved[2];
      for (const py::object& a : saved) a.attr("setflags")(py::arg("write") = false);
      k->weights = w_obj;
      k->lengths = lengths;
      k->mask = mask;
      k->T = T_;
      k->B = B;
      k->ready = true;
      cache = py::cast(k, py::return_value_policy::take_ownership);
    }
    return py::make_tuple(y, h_n, c_n, cache);
  });
}

py::tuple lstm_forward(const py::object& x, const py::object& w, const py::object& h0, const py::object& c0,
                       const py::object& lengths, bool need_cache, const py::object& mask) {
  return forward("lstm_forward", x, w, h0, c0, lengths, need_cache ? Keep::cache : Keep::nothing, mask);
}

// (y, h_n, c_n, gates, h, c): the forward with what the backward needs as plain writeable arrays,
// for callers that keep them themselves (and give them back to lstm_backward_arrays).
py::tuple lstm_forward_arrays(const py::object& x, const py::object& w, const py::object& h0, const py::object& c0,
                              const py::object& lengths, const py::object& mask) {
  return forward("lstm_forward_arrays", x, w, h0, c0, lengths, Keep::arrays, mask);
}

// The backward from the forward's arrays: `what` names them in errors ("cache " for an LSTMCache's,
// "" for lstm_backward_arrays' own arguments). Every array is checked against the weights and T, B.
py::tuple backward_from(const char* fn, const std::string& what, const py::object& x_obj, const py::object& w_obj,
                        const py::object& lengths_obj, const py::object& gates_obj, const py::object& hs_obj,
                        const py::object& cs_obj, const py::object& dy_obj, const py::object& dh_obj,
                        const py::object& dc_obj, const py::object& mask_obj) {
  const Check c{fn};
  const LstmWeightsCore& w = lstm_weights(fn, w_obj);
  if (w.int8()) c.value_error("weights: int8 weights have no backward (inference only)");
  const py::array x = c.array((what + "x").c_str(), x_obj);
  c.ndim((what + "x").c_str(), x, 3, "(T, B, D)");
  const int64_t T_ = x.shape(0), B = x.shape(1), D = w.D, H = w.H;
  auto run = [&](auto tag) -> py::tuple {
    using T = decltype(tag);
    const py::array gates = c.array((what + "gates").c_str(), gates_obj);
    const py::array hs = c.array((what + "h").c_str(), hs_obj), cs = c.array((what + "c").c_str(), cs_obj);
    c.same_as<T>((what + "x").c_str(), x, {T_, B, D}, "(T, B, D) with D = w_ih.shape[1], the forward's x");
    c.same_as<T>((what + "gates").c_str(), gates, {T_, B, 4 * H}, "(T, B, 4*H)");
    c.same_as<T>((what + "h").c_str(), hs, {T_ + 1, B, H}, "(T+1, B, H)");
    c.same_as<T>((what + "c").c_str(), cs, {T_ + 1, B, H}, "(T+1, B, H)");
    const py::object lengths = c.lengths((what + "lengths").c_str(), lengths_obj, B, T_, "(B,)", "T");
    // dx, the weight gradients, the kernel's (T*B, 4*H) scratch, copies of dy, dh_n and dc_n.
    Footprint(c, [&] { return what + "x " + shape_str(dims_of(x)) + " with H = " + std::to_string(H); })
        .add({T_, B, D}, sizeof(T))
        .add({4, H, D + H + 1}, sizeof(T))
        .add({T_, B, 4, H}, sizeof(T))
        .add({T_, B, H}, sizeof(T))
        .add({7, B, H}, sizeof(T))
        .check();
    const py::object dy = optional_operand<T>(c, "dy", dy_obj, {T_, B, H}, "(T, B, H), like y");
    const py::object dh = optional_operand<T>(c, "dh_n", dh_obj, {B, H}, "(B, H), like h_n");
    const py::object dc = optional_operand<T>(c, "dc_n", dc_obj, {B, H}, "(B, H), like c_n");
    py::array_t<T> dx = empty<T>({T_, B, D}), dw_ih = empty<T>({4 * H, D}), dw_hh = empty<T>({4 * H, H});
    py::array_t<T> dbias = empty<T>({4 * H}), dh0 = empty<T>({B, H}), dc0 = empty<T>({B, H});
    py::object dpeep = w.peephole.is_none() ? py::object(py::none()) : py::object(empty<T>({3, H}));
    T* dpp = dpeep.is_none() ? nullptr : static_cast<T*>(py::reinterpret_borrow<py::array>(dpeep).mutable_data());
    std::vector<py::object> keep;
    LstmParams<T> p = w.params<T>(false, keep);
    p.h_mask = recurrent_mask_ptr<T>(c, (what + "recurrent_mask").c_str(), mask_obj, B, H);
    const T* saved[2] = {ptr<T>(hs), ptr<T>(cs)};
    const T* d_last[2] = {opt_ptr<T>(dh), opt_ptr<T>(dc)};
    T* d_init[2] = {dh0.mutable_data(), dc0.mutable_data()};
    call_kernel(ops<T>().lstm.backward, RnnShape{T_, B, D, H}, ptr<T>(x), p, opt_ptr<int64_t>(lengths),
                ptr<T>(gates), saved, opt_ptr<T>(dy), d_last, dx.mutable_data(), dw_ih.mutable_data(),
                dw_hh.mutable_data(), dbias.mutable_data(), d_init, dpp);
    return py::make_tuple(dx, dw_ih, dw_hh, dbias, dh0, dc0, dpeep);
  };
  return w.f64 ? run(double{}) : run(float{});
}

py::tuple lstm_backward(const LstmCache& cache_in, const py::object& dy_obj, const py::object& dh_obj,
                        const py::object& dc_obj) {
  const LstmCache& k = cache_in.require();
  return backward_from("lstm_backward", "cache ", k.x, k.weights, k.lengths, k.gates, k.hs, k.cs, dy_obj, dh_obj,
                       dc_obj, k.mask);
}

// The same backward from arrays the caller keeps (seqkern.torch saves them as tensors, so that
// PyTorch's version counter sees an in-place change between forward and backward).
py::tuple lstm_backward_arrays(const py::object& x, const py::object& w, const py::object& lengths,
                               const py::object& gates, const py::object& hs, const py::object& cs,
                               const py::object& dy, const py::object& dh, const py::object& dc,
                               const py::object& mask) {
  return backward_from("lstm_backward_arrays", "", x, w, lengths, gates, hs, cs, dy, dh, dc, mask);
}

const char* CACHE_DOC = R"doc(What ``lstm_backward`` needs from one ``lstm_forward`` call; only ``lstm_forward`` makes one.

It holds, as its own read-only arrays, in the forward's dtype:

- ``gates`` (T, B, 4*H): the post-activation gates i, f, g, o of every step;
- ``h`` and ``c`` (T+1, B, H): the hidden and cell states, ``h[0] = h0``, ``h[t+1]`` the state
  after step t (rows past their length repeat their last state);

that is 6*T*B*H + 2*B*H values; tanh(c) is recomputed in backward. It also refers, without
copying, to ``x`` (the C-contiguous input, the caller's own memory when it already was), the
``LSTMWeights`` and the int64 ``lengths`` (or None), and keeps its own copy of the
``recurrent_mask`` (or None). Changing ``x`` or the weights in place
between forward and backward gives the gradients at the new values. The attributes cannot be
replaced, and ``lstm_backward`` checks the cache again on every call; it never modifies it, so
one cache can serve any number of backward calls (for example with different upstream
gradients).
)doc";

}  // namespace

void bind_lstm(py::module_& m) {
  bind_lstm_weights(m);
  py::class_<LstmCache>(m, "LSTMCache", CACHE_DOC)
      .def_property_readonly("x", [](const LstmCache& k) { return read_only(k.require().x); })
      .def_property_readonly("weights", [](const LstmCache& k) { return k.require().weights; })
      .def_property_readonly("lengths", [](const LstmCache& k) { return read_only(k.require().lengths); })
      .def_property_readonly("gates", [](const LstmCache& k) { return read_only(k.require().gates); })
      .def_property_readonly("h", [](const LstmCache& k) { return read_only(k.require().hs); })
      .def_property_readonly("c", [](const LstmCache& k) { return read_only(k.require().cs); })
      .def_property_readonly("recurrent_mask", [](const LstmCache& k) { return read_only(k.require().mask); })
      .def_property_readonly("nbytes", &LstmCache::nbytes, "Bytes held by the cache's own arrays (gates, h, c).")
      .def("__repr__", [](const LstmCache& k) {
        const py::array& hs = LstmCache::arr(k.require().hs);
        return "LSTMCache(T=" + std::to_string(k.T) + ", B=" + std::to_string(k.B) +
               ", H=" + std::to_string(hs.ndim() == 3 ? hs.shape(2) : 0) + ", dtype=" + dtype_str(LstmCache::arr(k.x)) +
               ", nbytes=" + std::to_string(k.nbytes()) + ")";
      });
  m.def("lstm_forward", &lstm_forward, py::arg("x"), py::arg("weights"), py::arg("h0"), py::arg("c0"),
        py::arg("lengths"), py::arg("need_cache"), py::arg("recurrent_mask") = py::none());
  m.def("lstm_forward_arrays", &lstm_forward_arrays, py::arg("x"), py::arg("weights"), py::arg("h0"),
        py::arg("c0"), py::arg("lengths"), py::arg("recurrent_mask") = py::none());
  m.def("lstm_backward", &lstm_backward, py::arg("cache"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"));
  m.def("lstm_backward_arrays", &lstm_backward_arrays, py::arg("x"), py::arg("weights"), py::arg("lengths"),
        py::arg("gates"), py::arg("h"), py::arg("c"), py::arg("dy"), py::arg("dh_n"), py::arg("dc_n"),
        py::arg("recurrent_mask") = py::none());
}

}  // namespace bind
}  // namespace seqkern
