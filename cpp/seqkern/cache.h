// cache.h: the data-cache sizes the kernels block for, read once per process.
//
// Detected at first use from Linux's sysfs (the cache of CPU 0: index*/level, type, size), else
// from CPUID (AMD's leaf 0x8000001D, Intel's leaf 4), else the defaults below. SEQKERN_CACHE
// overrides any of them, e.g. SEQKERN_CACHE=l2=512K,l3=32M (sizes in bytes, or with K, M or G;
// a bad value makes the first use throw std::invalid_argument, which fails the import).
// The sizes choose blocking and code paths only; every path gives bitwise the same results.
#pragma once

#include <cstdint>
#include <string>

namespace seqkern {

struct CacheSizes {
  int64_t l1d = 32 << 10;  // per core
  int64_t l2 = 512 << 10;  // per core
  int64_t l3 = 8 << 20;    // shared by the cores of a socket (or a core complex)
  std::string source;      // "sysfs", "cpuid" or "default", then "+SEQKERN_CACHE" when overridden
};

// The sizes in force (detected, then overridden by SEQKERN_CACHE); a copy, taken under a lock.
CacheSizes cache_sizes();
// One size in force, in bytes: level 1 (L1d), 2 or 3. Cheap (no lock): for the kernels.
int64_t cache_bytes(int level);
// Replaces the sizes in force (a value <= 0 keeps the current one); for tests and tuning. A
// kernel already running keeps the sizes it read when it started.
void set_cache_sizes(int64_t l1d, int64_t l2, int64_t l3);
// Parses a SEQKERN_CACHE text into `out` (fields not named keep their values); throws
// std::invalid_argument naming the bad part.
void parse_cache_spec(const std::string& spec, CacheSizes* out);

}  // namespace seqkern
