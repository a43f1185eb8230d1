#pragma once
// Held-out evaluation under the `moe eval` contract: the text's tokens (its bytes, or the ids of
// the model's tokenizer) are cut into consecutive, non-overlapping windows of `context` tokens (the
// last possibly shorter), each evaluated on its own; every position but a window's last predicts
// the next token of that window.
#include <cstdint>
#include <functional>
#include <span>
#include <string>

#include "model/decoder_lm.h"

namespace moe {

struct EvalConfig {
  int64_t context = 0;    // 0: the model's max_position_embeddings
  int64_t batch = 16;     // windows per forward
  int64_t max_tokens = 0; // 0: all of the text; else only its first max_tokens tokens
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
// A byte-level model on a text: token t is byte t.
EvalResult evaluate_text(DecoderLM& model, const std::string& text, const EvalConfig& cfg,
                         const std::function<void(int64_t, int64_t)>& progress = {});
// Any model on token ids (a tokenizer's); every id must be below the model's vocab_size.
EvalResult evaluate_tokens(DecoderLM& model, std::span<const int32_t> ids, const EvalConfig& cfg,
                           const std::function<void(int64_t, int64_t)>& progress = {});

}  // namespace moe
