#include "kernels/cross_entropy.h"

#include <algorithm>
#include <cmath>

namespace moe::kernels {

double cross_entropy_forward(float* nll, const float* logits, const int32_t* targets, int64_t n,
                             int64_t V) {
  double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static) if (n * V > 16384)
  for (int64_t i = 0; i < n; ++i) {
    if (targets[i] < 0) {
      nll[i] = 0;
      continue;
    }
    const float* a = logits + i * V;
    float mx = -INFINITY;
    for (int64_t c = 0; c < V; ++c) mx = std::max(mx, a[c]);
    double s = 0;
    for (int64_t c = 0; c < V; ++c) s += std::exp(double(a[c] - mx));
    nll[i] = float(double(mx) + std::log(s) - double(a[targets[i]]));
    total += nll[i];
  }
  return total;
}

void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, int64_t n,
                            int64_t V, float scale) {
#pragma omp parallel for schedule(static) if (n * V > 16384)
  for (int64_t i = 0; i < n; ++i) {
    const float* a = logits + i * V;
    float* o = dlogits + i * V;
    if (targets[i] < 0) {
      std::fill(o, o + V, 0.0f);
      continue;
    }
    float mx = -INFINITY;
    for (int64_t c = 0; c < V; ++c) mx = std::max(mx, a[c]);
    float s = 0;
    for (int64_t c = 0; c < V; ++c) s += std::exp(a[c] - mx);
    const float inv = scale / s;
    for (int64_t c = 0; c < V; ++c) o[c] = std::exp(a[c] - mx) * inv;  // a[c] read before o[c] written
    o[targets[i]] -= scale;
  }
}

}  // namespace moe::kernels
