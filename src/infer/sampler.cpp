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
  if (!(cfg.top_p > 0.0f && cfg.top_p <= 1.0f)) throw Error("[sample] top-p must be in (0, 1]");
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
  const bool nucleus = cfg.top_p < 1.0f;
  if (nucleus && keep == V)  // top-p needs the candidates by decreasing logit (top-k sorted them)
    std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return logits[a] > logits[b] || (logits[a] == logits[b] && a < b); });
  float mx = -INFINITY;
  for (int64_t i = 0; i < keep; ++i) mx = std::max(mx, logits[idx[i]]);
  std::vector<double> p(keep);
  double sum = 0;
  for (int64_t i = 0; i < keep; ++i) sum += p[i] = std::exp(double(logits[idx[i]] - mx) / cfg.temperature);
  if (nucleus) {
    double cum = 0;
    for (int64_t i = 0; i < keep; ++i) {
      cum += p[i];
      if (cum >= double(cfg.top_p) * sum) {
        keep = i + 1;
        break;
      }
    }
    sum = cum;
  }
  double u = rng.uniform() * sum;
  for (int64_t i = 0; i < keep; ++i) {
    u -= p[i];
    if (u <= 0) return idx[i];
  }
  return idx[keep - 1];
}

}  // namespace moe
