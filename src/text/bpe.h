#pragma once
// tokenizer.json's "model" of type BPE, as the reference runs it: each word is split into code
// points and the adjacent pair with the lowest merge rank is merged, leftmost first, until no pair
// has a rank (a later duplicate of a merge overrides the earlier rank). A piece that is not in the
// vocabulary becomes its UTF-8 bytes as "<0xHH>" tokens (byte_fallback, when all of them exist),
// else unk_token; fuse_unk turns a run of unknowns into one. ignore_merges takes a word that is a
// token as it is. Not supported (an error): dropout > 0, a continuing_subword_prefix or
// end_of_word_suffix (the reference ignores the first and handles the second unlike Hugging Face).
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "text/json_node.h"

namespace moe::text {

// Transparent hashing: look up std::string keys with a string_view.
struct StringHash {
  using is_transparent = void;
  size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};
using TokenMap = std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>>;

class BpeModel {
 public:
  // j: the "model" value (type BPE).
  explicit BpeModel(const JsonNode& j);

  // The token -> id map. The caller adds the added tokens to it, as the reference does (BPE may
  // then produce them too), and calls finish() before encoding.
  TokenMap& vocab() { return vocab_; }
  const TokenMap& vocab() const { return vocab_; }
  void finish();

  // Appends the ids of words (one pre-tokenized piece of text); `where` prefixes errors.
  void encode(const std::vector<std::string>& words, std::vector<int32_t>& ids, const std::string& where) const;
  // unk_token's id, -1 when there is none (or it is not in the vocabulary).
  int32_t unk_id() const { return unk_id_; }

 private:
  struct Merge {
    int32_t rank, result;
  };
  int32_t symbol(std::string_view s) const;  // -1 when s is no symbol
  int32_t add_symbol(const std::string& s);
  void encode_word(std::string_view word, std::vector<int32_t>& ids, const std::string& where) const;
  void piece_ids(int32_t sym, std::string_view text, std::vector<int32_t>& ids, const std::string& where) const;

  TokenMap vocab_;
  // Every string BPE can hold: vocabulary tokens and the halves and results of merges.
  TokenMap symbols_;
  std::vector<std::string> symbol_text_;
  std::vector<int32_t> symbol_id_;  // token id of a symbol, -1 when it is not a token
  std::unordered_map<uint64_t, Merge> merges_;
  std::vector<std::pair<std::string, std::string>> merge_list_;
  std::string unk_token_;
  bool has_unk_ = false;
  int32_t unk_id_ = -1;
  bool byte_fallback_ = false, fuse_unk_ = false, ignore_merges_ = false;
  int32_t byte_ids_[256];  // "<0xHH>" tokens, -1 when absent
};

}  // namespace moe::text
