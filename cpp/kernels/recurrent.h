// recurrent.h: what every recurrent cell's kernels share: the packed weight layout, register-tile
// sizes, and the work sharing of the time loop (claims and barriers). The loops themselves are
// recurrent_forward.h and recurrent_backward.h, generic over a cell definition (lstm_cell.h).
//
// Hidden units are grouped in blocks of kUnits<T> = 64 bytes of T (16 floats, 8 doubles), the
// same for every ISA level so packed weights work at any level. Block j covers units
// [j*U, j*U + w) with w = min(U, H - j*U). Threads own whole blocks.
// A cell has G gate columns per unit (the LSTM's i, f, g, o: G = 4). Forward panels (wih_p with
// K = D, whh_p with K = H): block j's panel starts at j*C*U*K and holds K rows of C*w values,
// row k = [gate 0 | gate 1 | ...] weights of the block's units for input k, C <= G being the
// gate columns that read the panel's input (panel_columns below). One register tile
// streams one contiguous panel and produces every gate of the same units, so the cell update
// runs on the accumulators.
// Gate pre-activations, the saved gates and da use the natural (B, G*H) order, gate by gate.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>

#include "kernels/simd.h"

namespace seqkern {
namespace SEQKERN_ISA_NS {
namespace rnn {

// Per-step work of at least this many multiply-adds per thread before a second thread helps
// (the per-step barrier costs about a microsecond); the one-off GEMMs need more.
constexpr int64_t kStepGrain = 1 << 16;
constexpr int64_t kGemmGrain = 1 << 18;
// The same for the small-batch loops, whose steps are shared by claiming (RoundClaims below).
constexpr int64_t kClaimGrain = 1 << 14;
// Batches below this share steps by claiming; from it up, the forward's recurrent product runs as
// a packed GEMM (measured: at 8 rows it is as fast as the fused tile, above it faster, up to 10%
// at H = 512) and threads split the units once.
constexpr int64_t kClaimRowsMax = 8;
// Rows per thread from which the forward's GEMM path may split the batch between the threads
// instead of the units (recurrent_forward.h): a 16-row product still fills whole register tiles.
constexpr int64_t kOwnRowsMin = 16;

template <typename T>
constexpr int kUnits = 64 / static_cast<int>(sizeof(T));

// Vector registers of this level: the tiles below are sized to keep accumulators in them.
#if defined(__AVX512F__)
constexpr int kRegs = 32;
#else
constexpr int kRegs = 16;
#endif

// Vectors per gate in one block, and rows per forward cell tile of a G-gate cell: G*NV
// accumulators per row, plus G*NV weight vectors and a broadcast (AVX-512, G = 4: 6 rows x 4
// gates = 24 of 32 registers).
template <typename T>
constexpr int kVecs = kUnits<T> / simd::Vec<T>::W;
template <typename T, int G>
constexpr int kCellRows = (kRegs - G * kVecs<T> - 1) / (G * kVecs<T>) < 1 ? 1
                          : (kRegs - G * kVecs<T> - 1) / (G * kVecs<T>) > 6 ? 6
                          : (kRegs - G * kVecs<T> - 1) / (G * kVecs<T>);

// What a cell definition provides (lstm_cell.h and gru_cell.h are two; CellBase below holds the
// constants and a default param_size):
//   Params            the kernels' weights: w_ih (G*H, D), w_hh (G*H, H), bias (G*H) or nullptr,
//                     the packed panels wih_p and whh_p (RnnParams), and whatever else it reads
//   kGates, kStates   gate columns per unit (G); state arrays, state 0 being h
//   kDirectDh         whether the update reads h_{t-1} itself (the GRU's does), not only
//                     through w_hh: the backward hook then overwrites dh (dstate[0]) with that
//                     term of dh_{t-1}, and the core adds da·w_hh to it
//   param_size(H)     values of the cell's own parameter gradient (0: none)
//   kInputColumns, reads_h(q)  which gate columns read x and h (all, unless a cell says otherwise)
//   forward(...)      one vector of units of one row: states and saved gates from acc[G]
//   backward(...)     the same vector's da, the carried state gradients and the cell's own
//                     parameter gradients
// Every pointer a hook gets is already offset to the vector's first element (row m, unit u);
// `u` itself indexes per-unit parameters. `io` loads and stores the vector's valid lanes.
// The family's kernels: a line in cells.cpp.
template <typename T, typename P, int G, int S, bool kDirect>
struct CellBase {
  using Params = P;
  static constexpr int kGates = G;
  static constexpr int kStates = S;
  static constexpr bool kDirectDh = kDirect;
  static int64_t param_size(int64_t) { return 0; }
  // Gate columns [0, kInputColumns) read x (the rest have zero rows in w_ih), and the columns
  // for which reads_h is true read h (the rest have zero rows in w_hh). The fused per-step tiles
  // skip the zero blocks, so an infinite input never meets a zero weight there.
  static constexpr int kInputColumns = G;
  static constexpr bool reads_h(int) { return true; }
};

// The gate columns a panel stores: wih_p (x) only the columns that read x, whh_p (h) only those
// that read h, in gate order (the GRU's panels hold 3 of its 4 columns, the LSTM's all 4). Block
// j's panel then starts at j*C*U*K with rows of C*w values, C = panel_columns; gate q sits at
// panel_slot(q)*w within a row.
template <typename Cell>
constexpr bool panel_reads(bool x, int q) {
  return x ? q < Cell::kInputColumns : Cell::reads_h(q);
}
template <typename Cell>
constexpr int panel_slot(bool x, int q) {
  int n = 0;
  for (int i = 0; i < q; ++i) n += panel_reads<Cell>(x, i) ? 1 : 0;
  return n;
}
template <typename Cell>
constexpr int panel_columns(bool x) {
  return panel_slot<Cell>(x, Cell::kGates);
}

inline int64_t num_blocks(int64_t H, int64_t U) { return (H + U - 1) / U; }

inline int block_width(int64_t j, int64_t H, int64_t U) {
  return static_cast<int>(H - j * U < U ? H - j * U : U);
}

// Lane counts of the NV vectors covering a block of width w.
template <typename T>
struct BlockLanes {
  int cnt[kVecs<T>];
  explicit BlockLanes(int w) {
    constexpr int W = simd::Vec<T>::W;
    for (int v = 0; v < kVecs<T>; ++v) {
      const int n = w - v * W;
      cnt[v] = n < 0 ? 0 : n > W ? W : n;
    }
  }
};

// Splits `n` items into `parts` contiguous ranges that depend only on n and parts.
inline void split_range(int64_t n, int parts, int idx, int64_t* lo, int64_t* hi) {
  *lo = n * idx / parts;
  *hi = n * (idx + 1) / parts;
}

// Work sharing for the small-batch time loops, where one step is a few microseconds of work and
// a fixed split would make every step wait for the slowest thread: the step's units (unit blocks
// or granules), grouped into items, are claimed one item at a time. A thread first claims its
// own range in order (so in a quiet run each thread keeps its slice of the weights in its own
// cache, as with a fixed split), then what is left of the other ranges, from their ends. A
// descheduled thread then holds a step up by at most the one item it is computing, not by its
// whole share. Which thread computes an item never changes how it is computed, so results stay
// bitwise the same.
// Items are about two per thread: each claim is an atomic operation on a line the other thread
// may have read; measured at B = 1, H = 128 (8 blocks, 2 threads): 4% faster than one block per
// item, and one item per thread was slower whenever a thread stole a whole half.
// Item j's flag holds the number of rounds in which it was claimed; a round ends when `done`
// reaches (round+1)·(items), and nobody starts round r+1 before that.
class RoundClaims {
 public:
  // `units` units shared by a team of `team` threads.
  RoundClaims(int64_t units, int team)
      : units_(units), per_(units_per_item(units, team)), n_((units + per_ - 1) / per_),
        flags_(new Flag[n_ > 0 ? n_ : 1]) {
    for (int64_t j = 0; j < n_; ++j) flags_[j].v.store(0, std::memory_order_relaxed);
  }
  RoundClaims(const RoundClaims&) = delete;
  RoundClaims& operator=(const RoundClaims&) = delete;

  // Runs f(u0, u1) for the units [u0, u1) of every item this thread claims in `round`; returns
  // how many items it ran.
  template <typename F>
  int64_t run(int64_t round, int tid, int team, F&& f) {
    auto item = [&](int64_t j) {
      const int64_t u0 = j * per_;
      f(u0, u0 + per_ < units_ ? u0 + per_ : units_);
    };
    int64_t did = 0;
    int64_t lo, hi;
    split_range(n_, team, tid, &lo, &hi);
    for (int64_t j = lo; j < hi; ++j) {
      if (claim(j, round)) {
        item(j);
        ++did;
      }
    }
    for (int o = 1; o < team; ++o) {
      split_range(n_, team, (tid + o) % team, &lo, &hi);
      for (int64_t j = hi - 1; j >= lo && claim(j, round); --j) {
        item(j);
        ++did;
      }
    }
    return did;
  }

  // Publishes this thread's items of `round` and waits until every item of it is done.
  void finish(int64_t round, int64_t did) {
    const int64_t target = (round + 1) * n_;
    if (done_.fetch_add(did, std::memory_order_acq_rel) + did >= target) return;
    for (int spins = 0; done_.load(std::memory_order_acquire) < target;) {
      if (spins < 4096) {
        ++spins;
#if defined(SEQKERN_X86)
        _mm_pause();
#endif
      } else {
        std::this_thread::yield();
      }
    }
  }

 private:
  static int64_t units_per_item(int64_t units, int team) {
    const int64_t per = team > 0 ? units / (2 * static_cast<int64_t>(team)) : units;
    return per < 1 ? 1 : per;
  }

  bool claim(int64_t j, int64_t round) {
    int64_t expected = round;
    return flags_[j].v.load(std::memory_order_relaxed) == round &&
           flags_[j].v.compare_exchange_strong(expected, round + 1, std::memory_order_acq_rel);
  }

  // One cache line each: a thread claiming its own items then never waits for the other's line.
  struct alignas(64) Flag {
    std::atomic<int64_t> v;
  };
  int64_t units_, per_, n_;  // units, units per item, items
  std::unique_ptr<Flag[]> flags_;
  alignas(64) std::atomic<int64_t> done_{0};
};

}  // namespace rnn
}  // namespace SEQKERN_ISA_NS
}  // namespace seqkern
