// stream_probe.cpp: how fast can one or two cores stream LSTM weights from their L2?
//
// The small-batch LSTM step and LSTMWeights.step are matrix-vector products: every step reads the
// whole packed weight panel once (4 bytes per multiply-add) and does little else. This probe runs
// the same access pattern with nothing around it: `threads` OpenMP threads, each with its own
// panel of `blocks` gate-interleaved blocks (64 floats wide, `rows` deep), one parallel region per
// call, as LSTMWeights.step does. The median over 31 batches of 1000 calls is the floor the
// kernels can reach at that size.
//
//   g++ -O2 -march=x86-64-v4 -fopenmp -std=c++17 tools/stream_probe.cpp -o /tmp/stream_probe
//   /tmp/stream_probe 1 384 8   # one core, 768 KiB (the step at D = 128, H = 256, half of it)
//   /tmp/stream_probe 2 384 8   # two cores, 768 KiB each (the whole step)
//   /tmp/stream_probe 1 128 8   # one core, 256 KiB (w_hh at H = 128)
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

namespace {

// out[64j .. 64j+63] = sum_k h[k] * panel_j[k][0 .. 63] for each block j: four accumulators, one
// broadcast per row, rows read in order (as the LSTM cell tile reads them at B = 1).
__attribute__((noinline)) void stream(const float* w, const float* h, float* out, int blocks, int rows) {
  for (int j = 0; j < blocks; ++j) {
    const float* p = w + static_cast<size_t>(j) * rows * 64;
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    for (int k = 0; k < rows; ++k) {
      const __m512 b = _mm512_set1_ps(h[k]);
      a0 = _mm512_fmadd_ps(b, _mm512_loadu_ps(p + k * 64), a0);
      a1 = _mm512_fmadd_ps(b, _mm512_loadu_ps(p + k * 64 + 16), a1);
      a2 = _mm512_fmadd_ps(b, _mm512_loadu_ps(p + k * 64 + 32), a2);
      a3 = _mm512_fmadd_ps(b, _mm512_loadu_ps(p + k * 64 + 48), a3);
    }
    _mm512_storeu_ps(out + j * 64, a0);
    _mm512_storeu_ps(out + j * 64 + 16, a1);
    _mm512_storeu_ps(out + j * 64 + 32, a2);
    _mm512_storeu_ps(out + j * 64 + 48, a3);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s threads rows blocks\n", argv[0]);
    return 2;
  }
  const int threads = std::atoi(argv[1]), rows = std::atoi(argv[2]), blocks = std::atoi(argv[3]);
  if (threads < 1 || rows < 1 || blocks < 1) {
    std::fprintf(stderr, "threads, rows and blocks must be positive\n");
    return 2;
  }
  const size_t per_thread = static_cast<size_t>(blocks) * rows * 64;
  std::vector<std::vector<float>> w(threads, std::vector<float>(per_thread, 0.001f));
  std::vector<float> h(rows, 0.5f), out(static_cast<size_t>(threads) * blocks * 64);
  std::vector<double> us;
  for (int batch = 0; batch < 31; ++batch) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int call = 0; call < 1000; ++call) {
#pragma omp parallel num_threads(threads)
      {
        const int t = omp_get_thread_num();
        stream(w[t].data(), h.data(), out.data() + static_cast<size_t>(t) * blocks * 64, blocks, rows);
      }
    }
    const std::chrono::duration<double> dt = std::chrono::steady_clock::now() - t0;
    us.push_back(dt.count() / 1000 * 1e6);
  }
  std::sort(us.begin(), us.end());
  std::printf("%d thread(s), %zu KiB each: %.2f us per call (median of 31 x 1000)\n", threads,
              per_thread * sizeof(float) / 1024, us[us.size() / 2]);
  return 0;
}
