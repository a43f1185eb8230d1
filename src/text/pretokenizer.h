#pragma once
// tokenizer.json's "pre_tokenizer": cuts normalized text into the words the model encodes one by
// one. Supported, with the reference's semantics:
//   Split      pattern {String|Regex}, behavior Isolated (matches and the text between them are
//              words) or Removed (the text between matches; JavaScript's String.split, so capture
//              groups, and a String pattern as a whole, stay as words), invert false;
//   ByteLevel  add_prefix_space, use_regex (GPT-2's split), each word's bytes as GPT-2's alphabet;
//   Sequence   of these, each applied to every word of the previous one.
// Other types, behaviors (MergedWithPrevious, MergedWithNext, Contiguous: the reference treats
// them as Isolated, Hugging Face does not) and invert true are errors.
#include <memory>
#include <string>
#include <vector>

#include "text/json_node.h"

namespace moe::text {

class PreTokenizer {
 public:
  virtual ~PreTokenizer() = default;
  // Replaces each word with the words it splits into, in order; empty words are dropped.
  virtual void apply(std::vector<std::string>& words) const = 0;
  // j is the "pre_tokenizer" value: null gives nullptr (the whole text is one word).
  static std::unique_ptr<PreTokenizer> from_json(const JsonNode& j);
};

}  // namespace moe::text
