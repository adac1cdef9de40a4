// cache.cpp: detection and override of the data-cache sizes (see seqkern/cache.h).
#include "seqkern/cache.h"

#include <atomic>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <stdexcept>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define SEQKERN_CACHE_X86 1
#endif

namespace seqkern {

namespace {

// "32K", "1M", "524288" -> bytes; -1 when the text is not a size.
int64_t parse_size(const std::string& text) {
  if (text.empty()) return -1;
  size_t i = 0;
  int64_t v = 0;
  for (; i < text.size() && std::isdigit(static_cast<unsigned char>(text[i])); ++i) {
    if (v > (int64_t(1) << 40)) return -1;
    v = v * 10 + (text[i] - '0');
  }
  if (i == 0) return -1;
  int64_t unit = 1;
  if (i < text.size()) {
    const char c = static_cast<char>(std::toupper(static_cast<unsigned char>(text[i])));
    unit = c == 'K' ? int64_t(1) << 10 : c == 'M' ? int64_t(1) << 20 : c == 'G' ? int64_t(1) << 30 : 0;
    ++i;
    if (i < text.size() && (text[i] == 'B' || text[i] == 'b')) ++i;  // "512KB"
  }
  if (unit == 0 || i != text.size() || v <= 0) return -1;
  return v * unit;
}

bool read_line(const std::string& path, std::string* out) {
  std::ifstream f(path);
  return static_cast<bool>(std::getline(f, *out));
}

// sysfs: /sys/devices/system/cpu/cpu0/cache/index<i>/{level,type,size}.
bool from_sysfs(CacheSizes* c) {
  bool any = false;
  for (int i = 0; i < 16; ++i) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(i) + "/";
    std::string level, type, size;
    if (!read_line(dir + "level", &level)) break;
    if (!read_line(dir + "type", &type) || !read_line(dir + "size", &size)) continue;
    if (type != "Data" && type != "Unified") continue;
    const int64_t bytes = parse_size(size);
    if (bytes <= 0) continue;
    if (level == "1") c->l1d = bytes;
    else if (level == "2") c->l2 = bytes;
    else if (level == "3") c->l3 = bytes;
    else continue;
    any = true;
  }
  return any;
}

// CPUID's deterministic cache parameters: AMD's leaf 0x8000001D, Intel's leaf 4 (same layout).
bool from_cpuid(CacheSizes* c) {
#ifdef SEQKERN_CACHE_X86
  unsigned a = 0, b = 0, cx = 0, d = 0;
  unsigned leaf = 4;
  if (__get_cpuid(0x80000000u, &a, &b, &cx, &d) && a >= 0x8000001Du) {
    __get_cpuid(0x80000001u, &a, &b, &cx, &d);
    if (cx & (1u << 22)) leaf = 0x8000001Du;  // TOPOEXT: AMD's cache leaf is there
  }
  unsigned max_leaf = 0;
  __get_cpuid(0, &max_leaf, &b, &cx, &d);
  if (leaf == 4 && max_leaf < 4) return false;
  bool any = false;
  for (unsigned sub = 0; sub < 16; ++sub) {
    __cpuid_count(leaf, sub, a, b, cx, d);
    const unsigned type = a & 0x1Fu;  // 0: no more, 1: data, 2: instruction, 3: unified
    if (type == 0) break;
    if (type == 2) continue;
    const unsigned level = (a >> 5) & 0x7u;
    const int64_t ways = ((b >> 22) & 0x3FFu) + 1, parts = ((b >> 12) & 0x3FFu) + 1;
    const int64_t line = (b & 0xFFFu) + 1, sets = int64_t(cx) + 1;
    const int64_t bytes = ways * parts * line * sets;
    if (level == 1) c->l1d = bytes;
    else if (level == 2) c->l2 = bytes;
    else if (level == 3) c->l3 = bytes;
    else continue;
    any = true;
  }
  return any;
#else
  (void)c;
  return false;
#endif
}

CacheSizes detect() {
  CacheSizes c;
  c.source = from_sysfs(&c) ? "sysfs" : from_cpuid(&c) ? "cpuid" : "default";
  const char* env = std::getenv("SEQKERN_CACHE");
  if (env && *env) {
    parse_cache_spec(env, &c);
    c.source += "+SEQKERN_CACHE";
  }
  return c;
}

std::mutex g_mutex;
CacheSizes g_sizes;
bool g_ready = false;  // guarded by g_mutex
// Copies of g_sizes' sizes for the kernels' hot paths (cache_bytes): lock-free reads.
std::atomic<int64_t> g_bytes[3] = {{0}, {0}, {0}};

void publish(const CacheSizes& c) {
  g_bytes[0].store(c.l1d, std::memory_order_relaxed);
  g_bytes[1].store(c.l2, std::memory_order_relaxed);
  g_bytes[2].store(c.l3, std::memory_order_relaxed);
}

}  // namespace

void parse_cache_spec(const std::string& spec, CacheSizes* out) {
  CacheSizes c = *out;
  size_t pos = 0;
  while (pos <= spec.size()) {
    size_t end = spec.find(',', pos);
    if (end == std::string::npos) end = spec.size();
    const std::string part = spec.substr(pos, end - pos);
    const size_t eq = part.find('=');
    const std::string key = eq == std::string::npos ? part : part.substr(0, eq);
    const int64_t bytes = eq == std::string::npos ? -1 : parse_size(part.substr(eq + 1));
    int64_t* field = key == "l1" || key == "l1d" ? &c.l1d : key == "l2" ? &c.l2 : key == "l3" ? &c.l3 : nullptr;
    if (!field || bytes <= 0) {
      throw std::invalid_argument("SEQKERN_CACHE='" + spec + "': '" + part +
                                  "' is not a size; expected e.g. l1=32K,l2=512K,l3=32M");
    }
    *field = bytes;
    pos = end + 1;
  }
  *out = c;
}

CacheSizes cache_sizes() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_ready) {
    g_sizes = detect();
    publish(g_sizes);
    g_ready = true;
  }
  return g_sizes;
}

int64_t cache_bytes(int level) {
  const int i = level < 1 ? 0 : level > 3 ? 2 : level - 1;
  const int64_t v = g_bytes[i].load(std::memory_order_relaxed);
  if (v > 0) return v;
  const CacheSizes c = cache_sizes();
  return i == 0 ? c.l1d : i == 1 ? c.l2 : c.l3;
}

void set_cache_sizes(int64_t l1d, int64_t l2, int64_t l3) {
  cache_sizes();
  std::lock_guard<std::mutex> lock(g_mutex);
  if (l1d > 0) g_sizes.l1d = l1d;
  if (l2 > 0) g_sizes.l2 = l2;
  if (l3 > 0) g_sizes.l3 = l3;
  publish(g_sizes);
}

}  // namespace seqkern
