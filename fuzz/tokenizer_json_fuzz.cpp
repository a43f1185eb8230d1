// tokenizer.json: parsing and every check of the tokenizer reader (text/tokenizer.h: regexes,
// normalizers, pre-tokenizers, BPE, added tokens, post-processor, decoders); a file that loads
// then encodes a few texts, decodes the ids (and ids made of the input bytes) and streams them:
// nothing may crash, and the streamed text must be decode()'s, whole UTF-8 characters.
#include <string>
#include <vector>

#include "core/error.h"
#include "fuzz_util.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace {

void check_decode(const moe::text::Tokenizer& t, const std::vector<int32_t>& ids) {
  for (bool skip : {false, true}) {
    const std::string text = t.decode(ids, skip);
    if (moe::text::utf8_invalid_at(text) != std::string::npos) __builtin_trap();
    moe::text::StreamingDecoder s(t, skip);
    std::string streamed;
    for (int32_t id : ids) {
      const std::string piece = s.push(id);
      if (moe::text::utf8_invalid_at(piece) != std::string::npos) __builtin_trap();
      streamed += piece;
    }
    streamed += s.finish();
    if (streamed != text) __builtin_trap();
  }
}

bool internal(const moe::Error& e) { return std::string(e.what()).rfind("[internal]", 0) == 0; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string path = moe::fuzz::write_input("tokenizer.json", data, size);
  try {
    const moe::text::Tokenizer t = moe::text::Tokenizer::load(path);
    for (const char* text : {"Hello, world! I'll say 12345.", "\xE4\xB8\xAD\xE6\x96\x87 \xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD e\xCC\x81",
                             "  two  spaces\t\r\n\n", "<|im_start|>x</s><s>a", ""}) {
      for (bool special : {true, false}) {
        try {
          const std::vector<int32_t> ids = t.encode(text, special);
          for (int32_t id : ids) {
            if (id < 0 || id >= t.vocab_size()) __builtin_trap();
            (void)t.id_to_token(id);  // every id encode gives has a token
          }
          check_decode(t, ids);
        } catch (const moe::Error& e) {
          if (internal(e)) __builtin_trap();
        }
      }
    }
    // Ids from the input's bytes, some of them not in the vocabulary.
    if (t.vocab_size() > 0) {
      std::vector<int32_t> ids;
      for (size_t i = 0; i < size && ids.size() < 64; i += 7) ids.push_back(int32_t(data[i] % uint32_t(t.vocab_size())));
      try {
        check_decode(t, ids);
      } catch (const moe::Error& e) {
        if (internal(e)) __builtin_trap();
      }
    }
  } catch (const moe::Error& e) {
    if (internal(e)) __builtin_trap();
  }
  return 0;
}
