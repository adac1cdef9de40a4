// lstm_weights.cpp: LSTMWeights (lstm_weights.h) and its streaming step.
#include "bindings/lstm_weights.h"
#include "bindings/lowp.h"
#include "bindings/recurrent.h"

#include <cstring>
#include <new>
#include <tuple>

namespace seqkern {
namespace bind {

namespace {

// What the object keeps of one argument: a frozen copy, or a view of the caller's array (a copy
// when it is not C-contiguous). A view, so reshaping the caller's array object never reaches it.
template <typename T>
py::array keep_array(const py::array& a, bool copy) {
  return copy ? frozen_copy<T>(a) : py::array(c_order(a).attr("view")());
}

template <typename T>
py::array_t<T> packed(const LstmWeightsCore& w, bool wih) {
  py::array_t<T> out(std::vector<py::ssize_t>{(wih ? w.D : w.H) * 4 * w.H});
  const RnnShape s{0, 0, w.D, w.H};
  T* p = out.mutable_data();
  call_kernel(ops<T>().lstm.pack, s, ptr<T>(w.w_ih), ptr<T>(w.w_hh), wih ? p : nullptr, wih ? nullptr : p);
  return out;
}

template <typename T>
py::tuple step_impl(const LstmWeightsCore& w, const py::object& x_obj, const py::object& h_obj,
                    const py::object& c_obj, const py::object& out_h_obj, const py::object& out_c_obj) {
  const Check c{"LSTMWeights.step"};
  const int64_t D = w.D, H = w.H;
  py::array x = c.array("x", x_obj);
  c.dtype_like<T>("x", x, "the weights");
  c.ndim("x", x, 2, "(B, D)");
  const int64_t B = x.shape(0);
  c.shape("x", x, {B, D}, "(B, D)");
  // Copies of x, h and c when they are not C-contiguous, the outputs and their temporaries.
  Footprint(c, [&] { return of_shape("x", x); }).add({B, D}, sizeof(T)).add({6, B, H}, sizeof(T)).check();
  x = c_order(x);
  py::array h = operand<T>(c, "h", h_obj, {B, H}, "(B, H)");
  py::array cc = operand<T>(c, "c", c_obj, {B, H}, "(B, H)");
  auto output = [&](const char* name, const py::object& obj) -> py::array {
    if (obj.is_none()) return empty<T>({B, H});
    py::array o = c.array(name, obj);
    c.dtype_like<T>(name, o, "the weights");
    c.shape(name, o, {B, H}, "(B, H)");
    c.contiguous(name, o);
    if (!o.writeable()) c.value_error(std::string(name) + " must be writeable");
    return o;
  };
  py::array out_h = output("out_h", out_h_obj);
  py::array out_c = output("out_c", out_c_obj);
  if (overlaps(out_h, out_c)) c.value_error("out_h and out_c must not overlap");
  // The kernel reads all of h and x while writing out_h block by block; c is read and
  // written element by element, so out_c may be c itself but must not overlap it otherwise.
  const bool clash = overlaps(out_h, x) || overlaps(out_h, h) || overlaps(out_h, cc) || overlaps(out_c, x) ||
                     overlaps(out_c, h) || (overlaps(out_c, cc) && out_c.data() != cc.data());
  py::array hw = clash ? py::array(empty<T>({B, H})) : out_h;
  py::array cw = clash ? py::array(empty<T>({B, H})) : out_c;
  if (w.int8()) {
    finite_for_int8(c, "x", x);
    finite_for_int8(c, "h", h);
  }
  std::vector<py::object> keep;
  const LstmParams<T> p = w.params<T>(true, keep);
  const T* prev[2] = {ptr<T>(h), ptr<T>(cc)};
  T* out[2] = {static_cast<T*>(hw.mutable_data()), static_cast<T*>(cw.mutable_data())};
  call_kernel(ops<T>().lstm.step, RnnShape{1, B, D, H}, ptr<T>(x), p, prev, out);
  if (clash) {
    std::memcpy(out_h.mutable_data(), hw.data(), sizeof(T) * B * H);
    std::memcpy(out_c.mutable_data(), cw.data(), sizeof(T) * B * H);
  }
  return py::make_tuple(out_h, out_c);
}

const char* STEP_DOC = R"doc(One LSTM time step for B rows: ``(h_new, c_new) = step(x, h, c)``.

Parameters
----------
x : ndarray (B, D), the weights' dtype
    Input of this step.
h, c : ndarray (B, H), the weights' dtype
    Hidden and cell state before the step.
out_h, out_c : ndarray (B, H), C-contiguous, writeable, optional
    Where to write the new state (fresh arrays when omitted). They may be ``h`` and ``c``
    themselves (in-place update); other overlaps are handled with a temporary copy.

Returns
-------
tuple ``(h_new, c_new)`` of ndarrays (B, H): ``out_h`` and ``out_c`` when given.
No lengths here: every row takes the step.
)doc";

}  // namespace

void* LstmWeightsCore::operator new(std::size_t n) {
  void* p = ::operator new(n);
  std::memset(p, 0, n);
  return p;
}

void LstmWeightsCore::operator delete(void* p) { ::operator delete(p); }

LstmWeightsCore::LstmWeightsCore(const py::object& w_ih_obj, const py::object& w_hh_obj,
                                 const py::object& bias_obj, const py::object& peephole_obj, bool copy)
    : bias(py::none()), peephole(py::none()), whh_p(py::none()), wih_p(py::none()), lowp(py::none()) {
  const Check c{"LSTMWeights"};
  py::array wi = c.array("w_ih", w_ih_obj), wh = c.array("w_hh", w_hh_obj);
  c.floating("w_ih", wi);
  f64 = c.is_f64(wi);
  live = !copy;
  by_dtype(c, wi, [&](auto tag) {
    using T = decltype(tag);
    // The copies and the packed panels: w_ih and w_hh up to three times over.
    std::tie(D, H) = recurrent_weights<T>(c, wi, wh, 4, 3, 4);
    auto keep = [&](const py::object& a) { return a.is_none() ? a : py::object(keep_array<T>(a, copy)); };
    bias = keep(optional_operand<T>(c, "bias", bias_obj, {4 * H}, "(4*H,)", "w_ih"));
    peephole = keep(optional_operand<T>(c, "peephole", peephole_obj, {3, H}, "(3, H)", "w_ih"));
    w_ih = keep_array<T>(wi, copy);
    w_hh = keep_array<T>(wh, copy);
    if (!live) whh_p = packed<T>(*this, false);
  });
  ready = true;
}

void LstmWeightsCore::require(const char* fn) const {
  if (!ready) {
    throw py::type_error(std::string(fn) +
                         ": the LSTMWeights was never initialised; build one with LSTMWeights(w_ih, w_hh, ...)");
  }
}

template <typename T>
LstmParams<T> LstmWeightsCore::params(bool with_wih, std::vector<py::object>& keep) const {
  LstmParams<T> p;
  p.w_ih = ptr<T>(w_ih);
  p.w_hh = ptr<T>(w_hh);
  p.bias = opt_ptr<T>(bias);
  p.peephole = opt_ptr<T>(peephole);
  if (live) {
    keep.push_back(packed<T>(*this, false));
    p.whh_p = opt_ptr<T>(keep.back());
    if (with_wih) {
      keep.push_back(packed<T>(*this, true));
      p.wih_p = opt_ptr<T>(keep.back());
    }
    return p;
  }
  if (with_wih && wih_p.is_none()) wih_p = packed<T>(*this, true);  // under the GIL: one thread packs
  p.whh_p = opt_ptr<T>(whh_p);
  p.wih_p = opt_ptr<T>(wih_p);
  if constexpr (std::is_same<T, float>::value) {
    if (const LowpForm* f = lowp_form_of(lowp)) f->apply(p);
  }
  return p;
}

bool LstmWeightsCore::int8() const {
  const LowpForm* f = lowp_form_of(lowp);
  return f && f->fmt == LowpForm::int8;
}

template LstmParams<float> LstmWeightsCore::params<float>(bool, std::vector<py::object>&) const;
template LstmParams<double> LstmWeightsCore::params<double>(bool, std::vector<py::object>&) const;

const LstmWeightsCore& lstm_weights(const char* fn, const py::object& obj) {
  if (!py::isinstance<LstmWeightsCore>(obj)) {
    throw py::type_error(std::string(fn) + ": weights must be an LSTMWeights, got " +
                         py::str(py::type::of(obj).attr("__name__")).cast<std::string>());
  }
  const LstmWeightsCore& w = obj.cast<const LstmWeightsCore&>();
  w.require(fn);
  return w;
}

void bind_lstm_weights(py::module_& m) {
  // A fresh view per access: the object's own arrays are never handed out, so reshaping what a
  // caller got cannot change what the kernels read.
  auto view = [](const py::object& a) -> py::object { return a.is_none() ? a : a.attr("view")(); };
  auto get = [](const py::object& self) -> const LstmWeightsCore& { return lstm_weights("LSTMWeights", self); };
  py::class_<LstmWeightsCore>(m, "LstmWeightsCore")
      .def(py::init<const py::object&, const py::object&, const py::object&, const py::object&, bool>(),
           py::arg("w_ih"), py::arg("w_hh"), py::arg("bias") = py::none(), py::arg("peephole") = py::none(),
           py::arg("copy") = true)
      .def_property_readonly("w_ih", [=](const py::object& s) { return view(get(s).w_ih); })
      .def_property_readonly("w_hh", [=](const py::object& s) { return view(get(s).w_hh); })
      .def_property_readonly("bias", [=](const py::object& s) { return view(get(s).bias); })
      .def_property_readonly("peephole", [=](const py::object& s) { return view(get(s).peephole); })
      .def_property_readonly("input_size", [=](const py::object& s) { return get(s).D; })
      .def_property_readonly("hidden_size", [=](const py::object& s) { return get(s).H; })
      .def_property_readonly("copied", [=](const py::object& s) { return !get(s).live; })
      .def_property_readonly("dtype", [=](const py::object& s) { return py::dtype(get(s).dtype()); })
      .def_property_readonly("_lowp", [=](const py::object& s) { return get(s).lowp; })
      // Both float panels, packed now (what a bf16 form is made from).
      .def("_panels",
           [=](const py::object& s) {
             const LstmWeightsCore& w = get(s);
             if (w.f64 || w.live) throw py::type_error("LSTMWeights: low-precision forms need copied float32 weights");
             std::vector<py::object> keep;
             w.params<float>(true, keep);
             return py::make_tuple(w.wih_p, w.whh_p);
           })
      .def("_attach_lowp",
           [=](const py::object& s, const py::object& form) {
             LstmWeightsCore& w = s.cast<LstmWeightsCore&>();
             w.require("LSTMWeights");
             const Check c{"LSTMWeights"};
             if (w.f64 || w.live) c.type_error("low-precision forms need copied float32 weights");
             if (!w.lowp.is_none()) c.value_error("the weights already have a low-precision form");
             lowp_form_of(form)->check_sizes(c, 4, w.D, w.H);
             w.lowp = form;
           })
      .def(
          "step",
          [=](const py::object& s, const py::object& x, const py::object& h, const py::object& c,
              const py::object& out_h, const py::object& out_c) {
            const LstmWeightsCore& w = lstm_weights("LSTMWeights.step", s);
            return w.f64 ? step_impl<double>(w, x, h, c, out_h, out_c) : step_impl<float>(w, x, h, c, out_h, out_c);
          },
          py::arg("x"), py::arg("h"), py::arg("c"), py::arg("out_h") = py::none(), py::arg("out_c") = py::none(),
          STEP_DOC);
}

}  // namespace bind
}  // namespace seqkern
