#pragma once
// Growing the expert pool of a trained model's PEER layers (lifelong learning: more experts without
// retraining what was learned).
#include <memory>

#include "model/decoder_lm.h"

namespace moe {

struct PEERGrowConfig {
  int64_t n_experts = 0;       // the new N: a perfect square larger than the current one
  // New sub-keys ~ N(0, (scale * RMS of the layer's sub-keys)^2). At 1 they are drawn like the old
  // keys were, yet score below the trained keys, which have aligned with the queries: measured on a
  // trained model, the loss moved by 0.001% while ~2,000 of the new experts were retrieved (at 0.3:
  // none were, and experts never retrieved never learn).
  float new_key_scale = 1.0f;
  uint64_t seed = 0;
};

// A copy of `model` whose PEER layers hold cfg.n_experts experts. Expert (i, j) keeps its sub-keys
// and its neuron, moving from id i*s + j to i*s2 + j (s = sqrt(N), s2 = sqrt(N2)). New neurons get
// v = 0, so they add nothing to the output until trained, and u with the RMS of the old ones; new
// sub-keys score low against queries the old keys were trained on, so they rarely displace the old
// experts from a query's top-k. The grown
// model therefore computes nearly the function of the old one. Throws moe::Error if the model has
// no PEER layer or N2 is not a larger perfect square.
std::unique_ptr<DecoderLM> grow_peer(DecoderLM& model, const PEERGrowConfig& cfg);

}  // namespace moe
