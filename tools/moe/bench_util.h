#pragma once
// Timing and machine-limit helpers shared by the `moe bench` subcommands. Every figure a bench
// reports as a ratio is measured in the same run as what it is compared with.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <functional>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"

namespace moe::cli {

using bench_clock = std::chrono::steady_clock;
inline double seconds_since(bench_clock::time_point t0) {
  return std::chrono::duration<double>(bench_clock::now() - t0).count();
}

// Median seconds of `reps` runs of fn after one warm-up run.
template <class F>
double time_median(int reps, F&& fn) {
  fn();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = bench_clock::now();
    fn();
    t.push_back(seconds_since(t0));
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

// Several cases timed in rounds, A B C A B C ...: a slow phase of the shared machine then hits every
// case alike; best() and median() per case, ratio() the median of per-round ratios.
class Interleaved {
 public:
  // Adds a case; returns its index.
  template <class F>
  int add(F&& fn) {
    cases_.emplace_back(std::forward<F>(fn));
    times_.emplace_back();
    return int(cases_.size()) - 1;
  }
  // One warm-up call of every case, then `rounds` rounds.
  void run(int rounds) {
    for (auto& c : cases_) c();
    for (int r = 0; r < rounds; ++r)
      for (size_t i = 0; i < cases_.size(); ++i) {
        const auto t0 = bench_clock::now();
        cases_[i]();
        times_[i].push_back(seconds_since(t0));
      }
  }
  double median(int i) const { return median_of(times_[i]); }
  // The fastest round: noise only ever adds time, so over enough rounds each case's best is its
  // undisturbed speed, and quotients of bests are ratios a slow phase cannot skew.
  double best(int i) const { return *std::min_element(times_[i].begin(), times_[i].end()); }
  // Median over rounds of time(a) / time(b).
  double ratio(int a, int b) const {
    std::vector<double> r;
    for (size_t k = 0; k < times_[a].size(); ++k) r.push_back(times_[a][k] / times_[b][k]);
    return median_of(r);
  }

 private:
  static double median_of(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }
  std::vector<std::function<void()>> cases_;
  std::vector<std::vector<double>> times_;
};

// Fills t with normal noise of the given standard deviation.
void fill_normal(Tensor& t, Rng& rng, float std);

// FP32 FMA peak (GFLOP/s) on all threads: independent FMA chains in the widest vectors this build
// targets (AVX-512 or AVX2 under -march=native), so it tracks the machine the bench runs on.
double measure_fma_peak();

// Read bandwidth (GB/s) of summing a 512 MiB buffer on all threads (best of 3).
double measure_bandwidth();

// Peak resident set size of this process so far, in bytes.
double peak_rss_bytes();
// Resident set size now (anonymous memory and the mapped file pages touched), in bytes; 0 when
// /proc is not there.
double current_rss_bytes();

}  // namespace moe::cli
