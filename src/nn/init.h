#pragma once
#include "core/rng.h"
#include "nn/param.h"

namespace moe {

// w ~ N(0, std^2)
inline void init_normal(Param& p, Rng& rng, float std) {
  for (int64_t i = 0; i < p.w.numel(); ++i) p.w[i] = static_cast<float>(rng.normal() * std);
}
// w ~ U(-bound, bound)
inline void init_uniform(Param& p, Rng& rng, float bound) {
  for (int64_t i = 0; i < p.w.numel(); ++i) p.w[i] = static_cast<float>((2.0 * rng.uniform() - 1.0) * bound);
}
inline void init_constant(Param& p, float v) {
  for (int64_t i = 0; i < p.w.numel(); ++i) p.w[i] = v;
}

}  // namespace moe
