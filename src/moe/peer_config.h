#pragma once
// Shape and options of a PEER layer (He 2024, "Mixture of A Million Experts"), shared by its router
// and its expert bank.
#include <cstdint>
#include <string>

namespace moe {

struct PEERConfig {
  int d_model = 0;
  int64_t n_experts = 0;  // N, a perfect square: expert id = i * sqrt(N) + j
  int heads = 8;          // h retrieval heads sharing the one pool of experts
  int top_k = 16;         // k experts per head
  int key_dim = 128;      // query width per head; each half scores sqrt(N) sub-keys of key_dim / 2
  // Batch normalisation of the query (the paper's choice). In training it normalises with the
  // statistics of the whole batch, so a token's routing then depends on the other tokens of the
  // batch, later ones included: a causal LM sees a little of its future during training, and
  // evaluation (running statistics) differs slightly from training; validation and generation use
  // the running statistics, so they do not leak. It matters for expert usage: on the fortune corpus
  // after 150 steps, 13% of 65,536 experts were retrieved with it and 2.6% without (and the
  // validation loss was 2.63 vs 2.67). The model config's peer_batch_norm defaults to true; this
  // layer-level default stays false so that a bare layer computes q = x W_q^T exactly.
  bool batch_norm = false;
  float bn_momentum = 0.1f;
  float bn_eps = 1e-5f;
  bool sigmoid_scores = false;  // false: softmax over each head's k scores; true: sigmoid of each
  bool relu = false;            // expert activation: false GELU (erf form), true ReLU
  // Learning-rate multiplier of the sub-keys. At the full rate the first keys Adam moves win almost
  // every query (1.1% of 1024^2 experts retrieved after 1500 steps); at 0.01, 16-29% in two runs,
  // and a lower loss (docs/results.md). The model config's peer_key_lr_scale defaults to 0.01; a bare layer
  // keeps 1, the optimizer's plain rate.
  float key_lr_scale = 1.0f;

  int64_t n_sub() const;        // sqrt(N)
  int slots() const { return heads * top_k; }
  // Throws moe::Error (message prefixed by `prefix`, e.g. "[peer] ") on an invalid combination.
  void validate(const std::string& prefix) const;
};

}  // namespace moe
