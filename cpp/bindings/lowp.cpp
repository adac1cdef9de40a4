// lowp.cpp: LowpForm (lowp.h) and lowp_form, which builds one from the float panels (bf16) or the
// quantized weights (int8).
#include "bindings/lowp.h"

#include <cmath>
#include <cstring>

#include "bindings/families.h"

namespace seqkern {
namespace bind {

py::ssize_t LowpForm::nbytes() const {
  py::ssize_t n = 0;
  for (const py::array* a : {&wih_b, &whh_b, &qih, &qhh, &s_ih, &s_hh, &cs_ih, &cs_hh}) {
    if (a->ptr()) n += a->nbytes();
  }
  return n;
}

void LowpForm::check_sizes(const Check& c, int64_t G_, int64_t D_, int64_t H_) const {
  if (G != G_ || D != D_ || H != H_) {
    c.value_error(std::string("the weights' ") + name() + " form was made for other sizes than the weights");
  }
}

void LowpForm::apply(RnnParams<float>& p) const {
  if (fmt == bf16) {
    p.wih_b = static_cast<const uint16_t*>(wih_b.data());
    p.whh_b = static_cast<const uint16_t*>(whh_b.data());
  } else {
    p.i8 = &i8;
  }
}

const LowpForm* lowp_form_of(const py::object& obj) {
  if (obj.is_none()) return nullptr;
  return &obj.cast<const LowpForm&>();
}

void finite_for_int8(const Check& c, const char* name, const py::object& obj) {
  if (obj.is_none()) return;
  const py::array a = py::reinterpret_borrow<py::array>(obj);
  const float* p = static_cast<const float*>(a.data());
  bool ok = true;
  const py::ssize_t n = a.size();
  for (py::ssize_t i = 0; i < n; ++i) ok &= std::isfinite(p[i]);
  if (!ok) {
    c.value_error(std::string(name) +
                  " must be finite with int8 weights (each row is scaled by its largest magnitude)");
  }
}

namespace {

// A frozen array of n values of T.
template <typename T>
py::array_t<T> frozen(int64_t n) {
  return capsule_owned<T>({n});
}

// The bf16 panel (ops/lowp.h) from a float panel of C gate columns (in a buffer of G*H*K values)
// whose values are bf16 numbers (low 16 bits zero).
py::array narrow_panel(const Check& c, const char* name, const py::object& obj, int64_t G, int64_t C, int64_t H,
                       int64_t K) {
  py::array a = c.array(name, obj);
  c.dtype_like<float>(name, a, "float32 weights");
  c.shape(name, a, {G * H * K}, "(G*H*K,)");
  c.contiguous(name, a);
  const float* src = ptr<float>(a);
  for (int64_t i = 0; i < G * H * K; ++i) {
    uint32_t b;
    std::memcpy(&b, src + i, 4);
    if (b & 0xFFFFu) c.value_error(std::string(name) + " holds a value that is not a bfloat16 number");
  }
  py::array_t<uint16_t> out = frozen<uint16_t>(bf16_panel_size(C, H, K));
  pack_bf16_pairs(C, H, K, src, out.mutable_data());
  freeze(out);
  return std::move(out);
}

// One product's int8 panel, scales and column sums from q (G*H, K) int8 and scale (G*H,) float32.
void int8_product(const Check& c, const char* qn, const char* sn, const py::object& q_obj, const py::object& s_obj,
                  int64_t G, int64_t H, int64_t K, py::array* panel, py::array* scale, py::array* colsum) {
  py::array q = c.array(qn, q_obj), s = c.array(sn, s_obj);
  if (q.dtype().kind() != 'i' || q.itemsize() != 1) {
    c.type_error(std::string(qn) + " must be int8, got " + dtype_str(q));
  }
  c.dtype_like<float>(sn, s, "float32 weights");
  c.shape(qn, q, {G * H, K}, "(G*H, K)");
  c.shape(sn, s, {G * H}, "(G*H,)");
  q = c_order(q);
  const py::array s_c = c_order(s);
  const float* sp = ptr<float>(s_c);
  for (int64_t n = 0; n < G * H; ++n) {
    if (!std::isfinite(sp[n]) || sp[n] < 0) c.value_error(std::string(sn) + " must be finite and >= 0");
  }
  const int8_t* qp = static_cast<const int8_t*>(q.data());
  for (int64_t i = 0; i < G * H * K; ++i) {
    if (qp[i] == -128) c.value_error(std::string(qn) + " must lie in [-127, 127]");
  }
  py::array_t<int8_t> pn = frozen<int8_t>(int8_panel_bytes(G, H, K));
  py::array_t<float> sc = frozen<float>(int8_columns(G, H));
  py::array_t<int32_t> cs = frozen<int32_t>(int8_columns(G, H));
  pack_int8(G, H, K, qp, sp, pn.mutable_data(), sc.mutable_data(), cs.mutable_data());
  for (py::array* a : {static_cast<py::array*>(&pn), static_cast<py::array*>(&cs), static_cast<py::array*>(&sc)}) {
    freeze(*a);
  }
  *panel = pn;
  *scale = sc;
  *colsum = cs;
}

std::shared_ptr<LowpForm> lowp_form(const std::string& fmt, int64_t G, int64_t D, int64_t H,
                                    const py::object& wih_p, const py::object& whh_p, const py::object& q_ih,
                                    const py::object& s_ih, const py::object& q_hh, const py::object& s_hh,
                                    int64_t panel_columns) {
  const Check c{"lowp_form"};
  if (G < 1 || D < 0 || H < 1) c.value_error("sizes must be G >= 1, D >= 0, H >= 1");
  const int64_t C = panel_columns < 0 ? G : panel_columns;
  if (C < 1 || C > G) c.value_error("panel_columns must be between 1 and gates");
  auto f = std::make_shared<LowpForm>();
  f->G = G;
  f->D = D;
  f->H = H;
  if (fmt == "bf16") {
    f->fmt = LowpForm::bf16;
    f->wih_b = narrow_panel(c, "wih_p", wih_p, G, C, H, D);
    f->whh_b = narrow_panel(c, "whh_p", whh_p, G, C, H, H);
  } else if (fmt == "int8") {
    f->fmt = LowpForm::int8;
    if (D > kInt8MaxK || H > kInt8MaxK) {
      c.value_error("int8 weights need D and H at most " + std::to_string(kInt8MaxK));
    }
    int8_product(c, "q_ih", "s_ih", q_ih, s_ih, G, H, D, &f->qih, &f->s_ih, &f->cs_ih);
    int8_product(c, "q_hh", "s_hh", q_hh, s_hh, G, H, H, &f->qhh, &f->s_hh, &f->cs_hh);
    f->i8.ih = {static_cast<const int8_t*>(f->qih.data()), ptr<float>(f->s_ih), ptr<int32_t>(f->cs_ih)};
    f->i8.hh = {static_cast<const int8_t*>(f->qhh.data()), ptr<float>(f->s_hh), ptr<int32_t>(f->cs_hh)};
  } else {
    c.value_error("format must be 'bf16' or 'int8', got '" + fmt + "'");
  }
  return f;
}

}  // namespace

void bind_lowp(py::module_& m) {
  py::class_<LowpForm, std::shared_ptr<LowpForm>>(m, "LowpForm")
      .def_property_readonly("format", [](const LowpForm& f) { return std::string(f.name()); })
      .def_property_readonly("nbytes", &LowpForm::nbytes)
      .def_property_readonly("sizes", [](const LowpForm& f) { return py::make_tuple(f.G, f.D, f.H); });
  m.def("lowp_form", &lowp_form, py::arg("format"), py::arg("gates"), py::arg("D"), py::arg("H"),
        py::arg("wih_p") = py::none(), py::arg("whh_p") = py::none(), py::arg("q_ih") = py::none(),
        py::arg("s_ih") = py::none(), py::arg("q_hh") = py::none(), py::arg("s_hh") = py::none(),
        py::arg("panel_columns") = -1);
}

}  // namespace bind
}  // namespace seqkern
