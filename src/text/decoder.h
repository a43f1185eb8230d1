#pragma once
// tokenizer.json's "decoder": token strings back to text, as the reference's decode_chain does.
// Supported: ByteLevel (GPT-2 alphabet to bytes; added tokens pass through as text when it is the
// top-level decoder, as in the reference), Replace, ByteFallback ("<0xHH>" runs to bytes), Fuse,
// Strip, and Sequence of them. Bytes become text as JavaScript's TextDecoder makes them (one
// U+FFFD per ill-formed sequence; ByteFallback's decoder also drops a leading byte-order mark).
// Other types are an error.
//
// Streaming (text/tokenizer.h's StreamingDecoder) decodes a window of the ids at a time; a
// DecodeSpan says where the window sits, and the decoders hold back what the next ids could still
// change: an incomplete UTF-8 sequence at the end, and characters Strip would remove at the end.
#include <memory>
#include <string>
#include <unordered_set>
#include <vector>

#include "text/json_node.h"

namespace moe::text {

struct DecodeSpan {
  bool at_start = true;  // the window starts the text (Strip's start applies to the fused text)
  bool at_end = true;    // the window ends the text (nothing is held back)
  bool held = false;     // out: something at the end was held back
};

// What streaming needs to know about a decoder chain.
struct DecoderTraits {
  bool fused = false;          // a Fuse has run (so far, while describing the chain)
  bool cut_safe = true;        // windows may be cut where nothing is held back
  bool byte_fallback = false;  // never cut inside a run of "<0xHH>" tokens
};

using TokenSet = std::unordered_set<std::string>;

class Decoder {
 public:
  virtual ~Decoder() = default;
  // tokens -> tokens; fused tells whether a Fuse has run before this step.
  virtual void apply(std::vector<std::string>& tokens, DecodeSpan& span, bool& fused) const = 0;
  virtual void describe(DecoderTraits& t) const = 0;
  // j is the "decoder" value (null gives nullptr). added: the added tokens' contents, which the
  // top-level ByteLevel decoder passes through (it must outlive the decoder).
  static std::unique_ptr<Decoder> from_json(const JsonNode& j, const TokenSet* added);
};

// "<0xHH>" (two hex digits): the byte, else -1.
int byte_token_value(const std::string& token);

}  // namespace moe::text
