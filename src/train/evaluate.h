#pragma once
// Held-out evaluation under the `moe eval` contract: the text's bytes are cut into consecutive,
// non-overlapping windows of `context` tokens (the last possibly shorter), each evaluated on its
// own; every position but a window's last predicts the next byte of that window.
#include <functional>
#include <string>

#include "model/decoder_lm.h"

namespace moe {

struct EvalConfig {
  int64_t context = 0;    // 0: the model's max_position_embeddings
  int64_t batch = 16;     // windows per forward
  int64_t max_tokens = 0; // 0: all of the text; else only its first max_tokens bytes
  bool peer_usage = false; // also count every PEER layer's retrievals (EvalResult::peer_usage)
};

struct EvalResult {
  int64_t tokens = 0;  // predicted positions
  double nll_sum = 0;  // nats
  std::vector<std::vector<int64_t>> expert_tokens;  // [MoE layer][expert]: routed slots, all windows
  std::vector<PEERUsage> peer_usage;  // [PEER layer, DecoderLM::peer_layers() order] with cfg.peer_usage
  double loss() const;
  double perplexity() const;
};

// progress(done_windows, total_windows) is called after each batch (may be empty).
EvalResult evaluate_text(DecoderLM& model, const std::string& text, const EvalConfig& cfg,
                         const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace moe
