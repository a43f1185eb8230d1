#pragma once
// The tokens of a model directory: DIR/tokenizer.json when the directory has one (a published
// model), else bytes (token id = byte value), which needs vocab_size 256. The ids that end a
// generation come from the same directory: tokenizer_config.json's eos_token and config.json's
// eos_token_id (a number or a list).
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace moe::text {

struct ModelTokenizer {
  std::optional<Tokenizer> tokenizer;  // empty: byte-level
  std::vector<int32_t> stop_ids;       // empty for byte-level models
};

// Throws moe::Error naming the file when tokenizer.json cannot be loaded, when its ids go beyond
// vocab_size (config.json), or when a model whose vocab_size is not 256 has no tokenizer.json.
ModelTokenizer load_model_tokenizer(const std::string& dir, int64_t vocab_size);

}  // namespace moe::text
