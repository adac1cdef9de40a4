// masks.h: the mask arguments shared by the attention bindings (bool mask, kv_lengths).
#pragma once

#include <vector>

#include "bindings/check.h"

namespace seqkern {
namespace bind {

// The mask arguments of an attention call, validated, with the arrays the kernel's AttnMask
// points into kept alive here.
struct MaskArgs {
  py::array keep, bias;
  std::vector<int64_t> keep_offset, bias_offset;
  std::vector<int64_t> kv_len;
  AttnMask m;
};

// lead: the leading (problem) dims; the mask broadcasts to lead + (lq, lk); kv_lengths has shape
// (lead[0],) and applies to every problem under that index.
void attention_masks(const Check& c, MaskArgs& out, const py::object& mask, const py::object& kv_lengths,
                     const std::vector<int64_t>& lead, int64_t lq, int64_t lk);

// An additive float bias of q's dtype (`like`), broadcastable to lead + (lq, lk), read in place
// the same way as the mask (None: no bias).
void attention_bias(const Check& c, MaskArgs& out, const py::object& bias, const py::array& like,
                    const std::vector<int64_t>& lead, int64_t lq, int64_t lk);

}  // namespace bind
}  // namespace seqkern
