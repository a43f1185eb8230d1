#pragma once
// tokenizer.json's "normalizer": applied to each piece of text between added tokens, before
// pre-tokenization. Supported: NFC, NFD, NFKC, NFKD (ICU, as JavaScript's String.normalize, which
// the reference calls, is), Replace, Prepend and Sequence of them. Any other type is an error.
#include <memory>
#include <string>

#include "text/json_node.h"

namespace moe::text {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual std::string normalize(std::string s) const = 0;
  // j is the "normalizer" value: null gives nullptr (no normalization).
  static std::unique_ptr<Normalizer> from_json(const JsonNode& j);
};

}  // namespace moe::text
