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
// GEMM started to beat two 1-thread GEMMs side by side on the AVX-512 machine (`moe bench
// moe-layer` E=16, K=1, T=2048: 0.68 of dense with 2-thread GEMMs, 0.87 one expert per thread); on
// the AVX2 machine both gave 0.72 there, before kernels/gemm.cpp padded its thin backward operands.
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
  // Reused, so a step does not allocate. thread_local keeps two callers on different threads apart;
  // the parallel loop reads it through a plain reference, as its workers have their own copies.
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
