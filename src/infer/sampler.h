#pragma once
// Next-token sampling from logits: greedy (temperature 0), temperature, and top-k.
#include <cstdint>

#include "core/rng.h"

namespace moe {

struct SamplerConfig {
  float temperature = 0.8f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: all tokens
};

// logits: [V]. Deterministic given the rng state.
int32_t sample_token(const float* logits, int64_t V, const SamplerConfig& cfg, Rng& rng);

}  // namespace moe
