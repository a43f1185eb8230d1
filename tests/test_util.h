#pragma once
// Shared helpers for the tests: random tensors and central finite differences.
#include <cmath>
#include <functional>
#include <string>

#include "core/rng.h"
#include "core/tensor.h"

namespace moe::test {

inline void fill_normal(float* p, int64_t n, Rng& rng, float std = 1.0f) {
  for (int64_t i = 0; i < n; ++i) p[i] = float(rng.normal() * std);
}
inline void fill_normal(Tensor& t, Rng& rng, float std = 1.0f) { fill_normal(t.data(), t.numel(), rng, std); }

// Central difference of loss() w.r.t. *x, in double around the current value.
inline double finite_diff(float* x, const std::function<double()>& loss, float eps) {
  const float x0 = *x;
  *x = x0 + eps;
  const double lp = loss();
  *x = x0 - eps;
  const double lm = loss();
  *x = x0;
  return (lp - lm) / (2.0 * double(eps));
}

// |a - b| <= atol + rtol * max(|a|, |b|)
inline bool close(double a, double b, double rtol, double atol) {
  return std::abs(a - b) <= atol + rtol * std::max(std::abs(a), std::abs(b));
}

inline std::string source_dir() { return MOE_SOURCE_DIR; }

}  // namespace moe::test
