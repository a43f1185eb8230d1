#pragma once
// Growing the expert pool of a trained model's PEER layers (lifelong learning: more experts without
// retraining what was learned).
#include <memory>

#include "model/decoder_lm.h"

namespace moe {

struct PEERGrowConfig {
  int64_t n_experts = 0;       // the new N: a perfect square larger than the current one
  // New sub-keys ~ N(0, (scale * RMS of the layer's sub-keys)^2). Sub-keys learn slowly
  // (peer_key_lr_scale 0.01), so the old ones stay close to their spread at init and new keys of the
  // same scale compete with them as equals, taking retrievals (and softmax weight, their v being 0)
  // from trained experts: on tests/cli/peer.sh's model the held-out loss moved by 1.35% at scale 1,
  // 0.016% at 0.5 (new experts still retrieved, so they learn) and 0 at 0.25 (none retrieved).
  float new_key_scale = 0.5f;
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
