// dispatch.cpp: CPU detection, the table of each compiled level, and the process-wide choice.
//
// A level is available when it was compiled in and both the CPU (CPUID) and the OS (XGETBV:
// the OS saves the wider registers on context switch) support it. The highest available level
// is chosen at first use, capped by SEQKERN_ISA; set_isa() changes it later.
#include "seqkern/dispatch.h"
#include "seqkern/features.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SEQKERN_DISPATCH_X86 1
#endif
#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#define SEQKERN_HAVE_ATFORK 1
#endif

namespace seqkern {

namespace scalar { const KernelTable& kernel_table(); }
#ifdef SEQKERN_HAVE_AVX2
namespace avx2 { const KernelTable& kernel_table(); }
#endif
#ifdef SEQKERN_HAVE_AVX512
namespace avx512 { const KernelTable& kernel_table(); }
#endif

namespace {

struct CpuFeatures {
  bool avx2 = false;    // AVX2 + FMA with OS-saved YMM state
  bool avx512 = false;  // AVX-512 F/BW/DQ/VL with OS-saved ZMM and opmask state
};

CpuFeatures detect() {
  CpuFeatures f;
#ifdef SEQKERN_DISPATCH_X86
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), avx = c & (1u << 28), fma = c & (1u << 12);
  if (!osxsave || !avx) return f;
  unsigned xlo = 0, xhi = 0;
  __asm__ volatile("xgetbv" : "=a"(xlo), "=d"(xhi) : "c"(0));
  const bool ymm_state = (xlo & 0x6u) == 0x6u;
  const bool zmm_state = (xlo & 0xE6u) == 0xE6u;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const bool avx2 = b & (1u << 5);
  const bool f512 = b & (1u << 16), dq = b & (1u << 17), bw = b & (1u << 30), vl = b & (1u << 31);
  f.avx2 = ymm_state && avx2 && fma;
  f.avx512 = f.avx2 && zmm_state && f512 && dq && bw && vl;
#endif
  return f;
}

const KernelTable* table_of(Isa isa) {
  switch (isa) {
#ifdef SEQKERN_HAVE_AVX512
    case Isa::avx512: return &avx512::kernel_table();
#endif
#ifdef SEQKERN_HAVE_AVX2
    case Isa::avx2: return &avx2::kernel_table();
#endif
    case Isa::scalar: return &scalar::kernel_table();
    default: return nullptr;
  }
}

bool parse(const std::string& name, Isa* out) {
  for (Isa isa : {Isa::scalar, Isa::avx2, Isa::avx512}) {
    if (name == isa_name(isa)) {
      *out = isa;
      return true;
    }
  }
  return false;
}

std::string level_list(const std::vector<Isa>& levels) {
  std::string s;
  for (Isa isa : levels) {
    if (!s.empty()) s += ", ";
    s += isa_name(isa);
  }
  return s;
}

Isa initial_isa() {
  const std::vector<Isa> avail = available_isas();
  Isa best = avail.back();
  const char* env = std::getenv("SEQKERN_ISA");
  if (env && *env) {
    Isa cap;
    if (!parse(env, &cap)) {
      throw std::invalid_argument(std::string("SEQKERN_ISA=") + env +
                                  " is not a level; expected one of scalar, avx2, avx512");
    }
    for (Isa isa : avail) {
      if (static_cast<int>(isa) <= static_cast<int>(cap)) best = isa;
    }
    if (static_cast<int>(best) > static_cast<int>(cap)) best = avail.front();
  }
  return best;
}

std::atomic<bool> g_forked_child{false};

#ifdef SEQKERN_HAVE_ATFORK
void on_fork_child() { g_forked_child.store(true); }
const int g_atfork_registered = pthread_atfork(nullptr, nullptr, &on_fork_child);
#endif

std::atomic<int>& current() {
  static std::atomic<int> isa{static_cast<int>(initial_isa())};
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
  }
  return "unknown";
}

std::vector<Isa> compiled_isas() {
  std::vector<Isa> v{Isa::scalar};
#ifdef SEQKERN_HAVE_AVX2
  v.push_back(Isa::avx2);
#endif
#ifdef SEQKERN_HAVE_AVX512
  v.push_back(Isa::avx512);
#endif
  return v;
}

namespace {

CpuSubFeatures detect_sub_features() {
  CpuSubFeatures f;
#ifdef SEQKERN_DISPATCH_X86
  // Each needs the level it extends (AVX-512 with its OS-saved state, or AVX2).
  const CpuFeatures base = detect();
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return f;
  const unsigned max_sub = a;
  f.avx512_vnni = base.avx512 && (c & (1u << 11));
  if (max_sub >= 1 && __get_cpuid_count(7, 1, &a, &b, &c, &d)) {
    f.avx512_bf16 = base.avx512 && (a & (1u << 5));
    f.avx_vnni = base.avx2 && (a & (1u << 4));
  }
#endif
  return f;
}

std::atomic<bool>& vnni_setting() {
  static std::atomic<bool> on{[] {
    const char* env = std::getenv("SEQKERN_VNNI");
    return !(env && std::string(env) == "0");
  }()};
  return on;
}

}  // namespace

const CpuSubFeatures& cpu_sub_features() {
  static const CpuSubFeatures f = detect_sub_features();
  return f;
}

bool int8_vnni() { return cpu_sub_features().avx512_vnni && vnni_setting().load(std::memory_order_relaxed); }

bool set_int8_vnni(bool on) { return vnni_setting().exchange(on); }

std::vector<Isa> available_isas() {
  static const CpuFeatures f = detect();
  std::vector<Isa> v;
  for (Isa isa : compiled_isas()) {
    if (isa == Isa::avx2 && !f.avx2) continue;
    if (isa == Isa::avx512 && !f.avx512) continue;
    v.push_back(isa);
  }
  return v;
}

// This thread's own level (use_isa), or -1: the process-wide one.
static thread_local int t_isa = -1;

Isa current_isa() { return static_cast<Isa>(t_isa >= 0 ? t_isa : current().load()); }

static Isa checked_isa(const std::string& name) {
  const std::vector<Isa> avail = available_isas();
  Isa isa;
  bool ok = parse(name, &isa);
  if (ok) {
    ok = false;
    for (Isa a : avail) ok = ok || a == isa;
  }
  if (!ok) {
    throw std::invalid_argument("set_isa: '" + name + "' is not an available level; available: " +
                                level_list(avail));
  }
  return isa;
}

void set_isa(const std::string& name) { current().store(static_cast<int>(checked_isa(name))); }

void set_thread_isa(const std::string& name) {
  if (name.empty()) {
    t_isa = -1;
    return;
  }
  current().load();  // the process-wide level exists (SEQKERN_ISA read) before a thread overrides it
  t_isa = static_cast<int>(checked_isa(name));
}

const KernelTable& table() { return *table_of(current_isa()); }

int max_threads() {
#ifdef _OPENMP
  return g_forked_child.load() ? 1 : omp_get_max_threads();
#else
  return 1;
#endif
}

int get_num_threads() { return max_threads(); }

void set_num_threads(int n) {
#ifdef _OPENMP
  omp_set_num_threads(n);
#else
  (void)n;
#endif
}

bool have_openmp() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

}  // namespace seqkern
