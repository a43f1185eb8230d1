#pragma once
// Hugging Face tokenizers from their tokenizer.json, encoding and decoding exactly as the
// reference, transformers.js (the @lenml/tokenizers port, tests/oracle/), does:
//
//   text -> split at added tokens (longest match, in the raw text; lstrip / rstrip trim the text
//           next to them, single_word and normalized are ignored, as the reference ignores them)
//        -> each other piece: normalizer -> pre_tokenizer -> BPE model
//        -> post_processor (TemplateProcessing adds its special tokens when add_special_tokens)
//   ids  -> tokens -> decoder -> text
//
// What each part supports is in text/normalizer.h, pretokenizer.h, bpe.h and decoder.h; anything
// else that would change the result (another type, an unknown key, truncation or padding) is a
// moe::Error naming the file and the key, e.g.
//   "[tokenizer] dir/tokenizer.json: pre_tokenizer.type: pre_tokenizer type 'Whitespace' is not supported (...)".
// Settings of tokenizer_config.json (clean_up_tokenization_spaces, remove_space, legacy, ...) are
// not read: decode() never cleans up spaces, as the reference does not when that flag is false.
//
// A Tokenizer is immutable once loaded and cheap to copy (shared state); encode and decode are
// safe to call from several threads.
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moe::text {

class Tokenizer {
 public:
  // Reads a tokenizer.json. Throws moe::Error("[tokenizer] PATH...") when the file cannot be read,
  // is not JSON, misses a key or uses what is not supported.
  static Tokenizer load(const std::string& path);
  // The same from the file's content; `name` stands for the file in messages.
  static Tokenizer from_json(std::string_view json, const std::string& name);

  // UTF-8 text to ids. add_special_tokens: the post-processor's tokens (e.g. a BOS), as the
  // reference's encode() adds them by default. Ill-formed UTF-8 is an error.
  std::vector<int32_t> encode(std::string_view text, bool add_special_tokens = true) const;
  // Ids to text; skip_special_tokens leaves out the added tokens marked special. An id no token
  // has is an error. Bytes that are not UTF-8 become U+FFFD.
  std::string decode(std::span<const int32_t> ids, bool skip_special_tokens = false) const;

  // The id of a token (vocabulary or added), -1 when there is none.
  int32_t token_to_id(std::string_view token) const;
  // The token of an id; throws moe::Error when no token has it.
  const std::string& id_to_token(int32_t id) const;
  // 1 + the largest id (vocabulary and added tokens).
  int32_t vocab_size() const;
  bool is_special(int32_t id) const;
  // The path (or name) it was loaded from.
  const std::string& name() const;

  struct Impl;

 private:
  explicit Tokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
  friend class StreamingDecoder;
};

// Decodes ids as they come, one at a time (generation): push() returns the text that id
// completes, only whole UTF-8 characters; a character whose bytes are spread over several tokens
// (byte-level BPE, byte fallback) comes out with its last byte. The concatenation of every push()
// and finish() is decode() of all the ids. Keeps the tokenizer's state alive (shared).
class StreamingDecoder {
 public:
  explicit StreamingDecoder(const Tokenizer& tokenizer, bool skip_special_tokens = false);
  std::string push(int32_t id);
  // What is still held back (an incomplete character becomes U+FFFD); then starts a new text.
  std::string finish();

 private:
  std::shared_ptr<const Tokenizer::Impl> impl_;
  bool skip_special_;
  // The tokens since the last cut, and the text of them already returned.
  std::vector<std::string> window_;
  std::string emitted_;
  bool at_start_ = true;
};

}  // namespace moe::text
