#include "infer/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "core/error.h"

namespace moe {

int32_t sample_token(const float* logits, int64_t V, const SamplerConfig& cfg, Rng& rng) {
  if (cfg.temperature < 0 || !std::isfinite(cfg.temperature)) throw Error("[sample] temperature must be >= 0");
  if (cfg.top_k < 0) throw Error("[sample] top-k must be >= 0");
  if (cfg.temperature == 0.0f || cfg.top_k == 1)
    return int32_t(std::max_element(logits, logits + V) - logits);
  std::vector<int32_t> idx(V);
  std::iota(idx.begin(), idx.end(), 0);
  int64_t keep = V;
  if (cfg.top_k > 0 && cfg.top_k < V) {
    keep = cfg.top_k;
    std::partial_sort(idx.begin(), idx.begin() + keep, idx.end(), [&](int32_t a, int32_t b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
  }
  float mx = -INFINITY;
  for (int64_t i = 0; i < keep; ++i) mx = std::max(mx, logits[idx[i]]);
  std::vector<double> p(keep);
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += p[i] = std::exp(double(logits[idx[i]] - mx) / cfg.temperature);
  double u = rng.uniform() * sum;
  for (int64_t i = 0; i < keep; ++i) {
    u -= p[i];
    if (u <= 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace moe
