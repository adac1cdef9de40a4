// masks.cpp: attention masks read in place with zero strides along broadcast dims (masks.h).
#include "bindings/masks.h"

namespace seqkern {
namespace bind {

namespace {

// An array broadcastable to lead + (lq, lk), in its own shape: per-problem offsets and the row
// and column strides, 0 along broadcast dims, so it is read in place and never expanded.
struct Broadcast {
  py::array array;
  std::vector<int64_t> offset;
  int64_t row_stride = 0, col_stride = 0;
};

Broadcast broadcast(const Check& c, const char* name, py::array m, const std::vector<int64_t>& lead, int64_t lq,
                    int64_t lk) {
  int64_t batch = 1;
  for (int64_t d : lead) batch *= d;
  std::vector<int64_t> target = lead;
  target.push_back(lq);
  target.push_back(lk);
  std::vector<int64_t> md = dims_of(m);
  c.broadcastable(name, md, target);
  if (!(m.flags() & py::array::c_style)) {
    // A broadcast view (zero strides) keeps one entry along those dims: only its distinct
    // values are copied, never the expanded array.
    py::tuple idx(m.ndim());
    for (py::ssize_t i = 0; i < m.ndim(); ++i) {
      const bool bcast = m.strides(i) == 0 && m.shape(i) > 1;
      idx[static_cast<size_t>(i)] = py::slice(0, bcast ? 1 : m.shape(i), 1);
    }
    m = py::array(numpy().attr("ascontiguousarray")(m[idx]));
    md = dims_of(m);
  }
  // Strides in the array's own shape, padded on the left to target's rank.
  const size_t nd = target.size();
  std::vector<int64_t> stride(nd, 0);
  int64_t st = 1;
  for (size_t i = md.size(); i-- > 0;) {
    const size_t d = nd - md.size() + i;
    stride[d] = md[i] == 1 ? 0 : st;
    st *= md[i];
  }
  Broadcast out;
  out.array = m;
  out.offset.assign(static_cast<size_t>(batch), 0);
  for (int64_t b = 0; b < batch; ++b) {
    int64_t rem = b;
    int64_t off = 0;
    for (size_t d = lead.size(); d-- > 0;) {
      off += (rem % lead[d]) * stride[d];
      rem /= lead[d];
    }
    out.offset[static_cast<size_t>(b)] = off;
  }
  out.row_stride = stride[nd - 2];
  out.col_stride = stride[nd - 1];
  return out;
}

}  // namespace

void attention_bias(const Check& c, MaskArgs& out, const py::object& bias_obj, const py::array& like,
                    const std::vector<int64_t>& lead, int64_t lq, int64_t lk) {
  if (bias_obj.is_none()) return;
  py::array a = c.array("bias", bias_obj);
  if (!a.dtype().is(like.dtype())) {
    c.type_error("bias must be " + dtype_str(like) + ", like q, got " + dtype_str(a));
  }
  const Broadcast b = broadcast(c, "bias", a, lead, lq, lk);
  out.bias = b.array;
  out.bias_offset = b.offset;
  out.m.bias = out.bias.data();
  out.m.bias_offset = out.bias_offset.data();
  out.m.bias_row_stride = b.row_stride;
  out.m.bias_col_stride = b.col_stride;
}

void attention_masks(const Check& c, MaskArgs& out, const py::object& mask_obj, const py::object& len_obj,
                     const std::vector<int64_t>& lead, int64_t lq, int64_t lk) {
  int64_t batch = 1;
  for (int64_t d : lead) batch *= d;
  if (!mask_obj.is_none()) {
    py::array m = c.array("mask", mask_obj);
    c.boolean("mask", m);
    const Broadcast b = broadcast(c, "mask", m, lead, lq, lk);
    out.keep = b.array;
    out.keep_offset = b.offset;
    out.m.keep = static_cast<const uint8_t*>(out.keep.data());
    out.m.keep_offset = out.keep_offset.data();
    out.m.row_stride = b.row_stride;
    out.m.col_stride = b.col_stride;
  }
  if (!len_obj.is_none()) {
    if (lead.empty()) c.value_error("kv_lengths needs a leading (batch) dimension; q has none");
    const py::object l = c.lengths("kv_lengths", len_obj, lead[0], lk, "(B,)");
    const int64_t* lp = opt_ptr<int64_t>(l);
    const int64_t per = lead[0] ? batch / lead[0] : 0;
    out.kv_len.assign(static_cast<size_t>(batch), 0);
    for (int64_t b = 0; b < batch; ++b) out.kv_len[static_cast<size_t>(b)] = lp[b / per];
    out.m.kv_len = out.kv_len.data();
  }
}

}  // namespace bind
}  // namespace seqkern
