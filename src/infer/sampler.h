#pragma once
// Next-token sampling from logits: greedy (temperature 0), temperature, top-k and top-p (nucleus).
#include <cstdint>

#include "core/rng.h"

namespace moe {

struct SamplerConfig {
  float temperature = 0.8f;  // 0: greedy (argmax)
  int top_k = 0;             // 0: all tokens
  float top_p = 1.0f;        // 1: all; else the fewest most likely tokens (after top-k) whose
                             // probability reaches top_p
};

// logits: [V]. Deterministic given the rng state.
int32_t sample_token(const float* logits, int64_t V, const SamplerConfig& cfg, Rng& rng);

}  // namespace moe
