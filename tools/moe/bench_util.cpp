#include "bench_util.h"

#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>

#include "core/threading.h"

namespace moe::cli {

void fill_normal(Tensor& t, Rng& rng, float std) {
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = float(rng.normal() * std);
}

double measure_fma_peak() {
#if defined(__AVX512F__)
  constexpr int W = 16;
#elif defined(__AVX__)
  constexpr int W = 8;
#else
  constexpr int W = 4;
#endif
  typedef float vec __attribute__((vector_size(W * sizeof(float))));
  constexpr int C = 12;  // chains: more than FMA latency x ports, so the units never wait
  const int64_t iters = int64_t(1) << 24;
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = bench_clock::now();
    float sink = 0;
#pragma omp parallel reduction(+ : sink)
    {
      vec acc[C], m, a;
      for (int i = 0; i < W; ++i) m[i] = 0.999999f, a[i] = 1e-7f;
      for (int c = 0; c < C; ++c)
        for (int i = 0; i < W; ++i) acc[c][i] = float(c);
      for (int64_t it = 0; it < iters / C; ++it)
        for (int c = 0; c < C; ++c) acc[c] = acc[c] * m + a;  // one FMA per lane under -mfma
      for (int c = 0; c < C; ++c)
        for (int i = 0; i < W; ++i) sink += acc[c][i];
    }
    const double dt = seconds_since(t0);
    if (sink == -1.0f) std::printf("%f", sink);  // keeps the loop; never true
    best = std::max(best, 2.0 * W * double(iters / C) * C * num_threads() / dt / 1e9);
  }
  return best;
}

double measure_bandwidth() {
  const int64_t n = int64_t(1) << 27;  // 512 MiB: far beyond the 260 MiB L3
  Tensor t({n});
  float* a = t.data();  // raw pointer: the loop must vectorise to reach the bandwidth
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) a[i] = 1.0f;
  double best = 0;
  for (int r = 0; r < 3; ++r) {
    const auto t0 = bench_clock::now();
    float s = 0;  // float partial sums vectorise; the value only has to exist
#pragma omp parallel for simd reduction(+ : s) schedule(static)
    for (int64_t i = 0; i < n; ++i) s += a[i];
    const double dt = seconds_since(t0);
    if (s < 0) std::printf("%f", s);  // keeps the loop; never true
    best = std::max(best, double(n) * 4.0 / dt / 1e9);
  }
  return best;
}

double current_rss_bytes() {
  std::FILE* f = std::fopen("/proc/self/statm", "r");
  if (!f) return 0;
  long long size = 0, resident = 0;
  const int got = std::fscanf(f, "%lld %lld", &size, &resident);
  std::fclose(f);
  return got == 2 ? double(resident) * double(sysconf(_SC_PAGESIZE)) : 0;
}

double peak_rss_bytes() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) * 1024.0;
}

}  // namespace moe::cli
