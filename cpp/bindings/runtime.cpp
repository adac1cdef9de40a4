// runtime.cpp: the instruction-set level, thread count and cache-size controls.
#include <pybind11/stl.h>

#include "bindings/check.h"
#include "bindings/families.h"
#include "seqkern/cache.h"
#include "seqkern/features.h"

namespace seqkern {
namespace bind {

namespace {

py::list isa_names(const std::vector<Isa>& v) {
  py::list l;
  for (Isa isa : v) l.append(isa_name(isa));
  return l;
}

}  // namespace

void bind_runtime(py::module_& m) {
  current_isa();  // reads SEQKERN_ISA now, so a bad value fails the import (ImportError)
  m.def("compiled_isas", [] { return isa_names(compiled_isas()); });
  m.def("available_isas", [] { return isa_names(available_isas()); });
  m.def("get_isa", [] { return std::string(isa_name(current_isa())); });
  m.def("set_isa", [](const std::string& name) { seqkern::set_isa(name); }, py::arg("name"));
  m.def("_set_thread_isa", &seqkern::set_thread_isa, py::arg("name"));
  m.def("get_num_threads", &seqkern::get_num_threads);
  m.def("set_num_threads", &seqkern::set_num_threads, py::arg("n"));
  m.def("have_openmp", &seqkern::have_openmp);
  cache_sizes();  // reads SEQKERN_CACHE now, so a bad value fails the import (ImportError)
  m.def("cache_sizes", [] {
    const CacheSizes c = cache_sizes();
    py::dict d;
    d["l1d"] = c.l1d;
    d["l2"] = c.l2;
    d["l3"] = c.l3;
    d["source"] = c.source;
    return d;
  });
  m.def("cpu_features", [] {
    const CpuSubFeatures& f = cpu_sub_features();
    py::dict d;
    d["avx512_vnni"] = f.avx512_vnni;
    d["avx512_bf16"] = f.avx512_bf16;
    d["avx_vnni"] = f.avx_vnni;
    return d;
  });
  // Whether the int8 kernels of the current level use AVX512-VNNI (only the AVX-512 level can).
  m.def("int8_vnni", [] { return seqkern::int8_vnni() && current_isa() == Isa::avx512; });
  m.def("_set_int8_vnni", &seqkern::set_int8_vnni, py::arg("on"));
  m.def("_set_cache_sizes", &seqkern::set_cache_sizes, py::arg("l1d"), py::arg("l2"), py::arg("l3"));
}

}  // namespace bind
}  // namespace seqkern
