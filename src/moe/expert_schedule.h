#pragma once
// How a bank runs its experts over the grouped rows: shared by the SwiGLU bank and the benchmark
// that times the same expert GEMMs on their own.
#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

#include "core/threading.h"

namespace moe {

// Many small experts: one expert per thread (single-threaded GEMMs, largest first, dynamic
// schedule), so no core idles inside a small GEMM. Few large experts: one after another, each GEMM
// using every thread. The threshold (512 rows per expert on average) is where oneDNN's 2-thread
// GEMM starts to beat two 1-thread GEMMs side by side, measured with `moe bench moe-layer`
// (E=16, K=1, T=2048: 128 rows per expert, 0.68 -> see docs/performance.md).
template <class F>
void for_each_expert(const std::vector<int64_t>& offsets, F&& fn) {
  const int E = int(offsets.size()) - 1;
  const int64_t M = offsets.back();
  const bool small = num_threads() > 1 && E >= num_threads() && M / std::max(E, 1) <= 512;
  if (!small) {
    for (int e = 0; e < E; ++e)
      if (offsets[e + 1] > offsets[e]) fn(e);
    return;
  }
  // Reused (no allocation per step); thread_local because banks of different threads may schedule at
  // once. The parallel loop below reads it through a plain reference: its workers have their own.
  static thread_local std::vector<int> order_buf;
  std::vector<int>& order = order_buf;
  order.resize(E);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int a, int b) {
    return offsets[a + 1] - offsets[a] > offsets[b + 1] - offsets[b];
  });
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < E; ++i) {
    const int e = order[i];
    if (offsets[e + 1] > offsets[e]) fn(e);
  }
}

}  // namespace moe
