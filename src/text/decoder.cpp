#include "text/decoder.h"

#include <algorithm>
#include <optional>

#include "core/error.h"
#include "text/byte_level.h"
#include "text/regex.h"
#include "text/utf8.h"

namespace moe::text {

namespace {

// Appends bytes decoded as TextDecoder does; holds an incomplete tail when asked.
void flush_bytes(std::string& bytes, std::vector<std::string>& out, bool hold, DecodeSpan& span, bool drop_bom) {
  std::string s;
  if (utf8_decode_lossy(bytes, s, hold) > 0) span.held = true;
  if (drop_bom && s.compare(0, 3, "\xEF\xBB\xBF") == 0) s.erase(0, 3);
  out.push_back(std::move(s));
  bytes.clear();
}

class ByteLevelDecoder : public Decoder {
 public:
  ByteLevelDecoder(const JsonNode& j, const TokenSet* added) : added_(added) {
    j.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});  // none changes decoding
  }
  void apply(std::vector<std::string>& tokens, DecodeSpan& span, bool&) const override {
    std::vector<std::string> out;
    std::string bytes;
    bool open = false;  // a run of byte-level tokens has started
    for (const std::string& t : tokens) {
      if (added_ && added_->count(t)) {
        if (open) flush_bytes(bytes, out, false, span, false);
        open = false;
        out.push_back(t);
        continue;
      }
      open = true;
      for (size_t i = 0; i < t.size();) {
        const int b = char_to_byte(utf8_next(t, i));
        bytes += char(b < 0 ? 0 : b);  // the reference's lookup gives undefined, stored as byte 0
      }
    }
    if (open) flush_bytes(bytes, out, !span.at_end, span, false);  // ignoreBOM: true
    tokens.swap(out);
  }
  void describe(DecoderTraits&) const override {}

 private:
  const TokenSet* added_;
};

class ByteFallback : public Decoder {
 public:
  explicit ByteFallback(const JsonNode& j) { j.only_keys({"type"}); }
  void apply(std::vector<std::string>& tokens, DecodeSpan& span, bool&) const override {
    std::vector<std::string> out;
    std::string bytes;
    bool open = false;
    for (const std::string& t : tokens) {
      const int b = byte_token_value(t);
      if (b >= 0) {
        bytes += char(b);
        open = true;
        continue;
      }
      if (open) flush_bytes(bytes, out, false, span, true);
      open = false;
      out.push_back(t);
    }
    if (open) flush_bytes(bytes, out, !span.at_end, span, true);  // new TextDecoder(): drops a BOM
    tokens.swap(out);
  }
  void describe(DecoderTraits& t) const override { t.byte_fallback = true; }
};

class Fuse : public Decoder {
 public:
  explicit Fuse(const JsonNode& j) { j.only_keys({"type"}); }
  void apply(std::vector<std::string>& tokens, DecodeSpan&, bool& fused) const override {
    std::string all;
    for (const auto& t : tokens) all += t;
    tokens.assign(1, std::move(all));
    fused = true;
  }
  void describe(DecoderTraits& t) const override { t.fused = true; }
};

class ReplaceDecoder : public Decoder {
 public:
  explicit ReplaceDecoder(const JsonNode& j) {
    j.only_keys({"type", "pattern", "content"});
    pattern_ = pattern_from_json(j.at("pattern"));
    if (j.at("pattern").json().contains("String")) literal_size_ = j.at("pattern").at("String").str().size();
    content_ = j.at("content").str();
    if (pattern_->has_named_groups() && content_.find("$<") != std::string::npos)
      j.at("content").fail("named group substitutions ($<name>) are not supported");
  }
  void apply(std::vector<std::string>& tokens, DecodeSpan& span, bool& fused) const override {
    for (auto& t : tokens) {
      size_t last_end = 0;
      std::string out = js_replace_all(*pattern_, t, content_, &last_end);
      if (fused && !span.at_end) {
        // Streaming, on the fused text: the next tokens may change the matches at its end. A
        // regex may then match anything, so all is held back; a string pattern of n bytes can
        // only complete a match in the last n - 1 bytes after the last match, which were copied
        // as they are: those are held back.
        if (!literal_size_) {
          out.clear();
          span.held = true;
        } else {
          const size_t n = *literal_size_;
          size_t hold_from = std::max(last_end, t.size() + 1 >= n ? t.size() + 1 - n : 0);
          while (hold_from > last_end && hold_from < t.size() && (static_cast<unsigned char>(t[hold_from]) & 0xC0) == 0x80)
            --hold_from;
          if (hold_from < t.size()) {
            span.held = true;
            out.resize(out.size() - (t.size() - hold_from));
          }
        }
      }
      t = std::move(out);
    }
  }
  // After Fuse a match may span the tokens on both sides of a window cut.
  void describe(DecoderTraits& t) const override {
    if (t.fused) t.cut_safe = false;
  }

 private:
  std::unique_ptr<Regex> pattern_;
  std::optional<size_t> literal_size_;  // a String pattern's length
  std::string content_;
};

class StripDecoder : public Decoder {
 public:
  explicit StripDecoder(const JsonNode& j) {
    j.only_keys({"type", "content", "start", "stop"});
    const std::string c = j.at("content").str();
    // The reference compares UTF-16 code units with content: only a one-unit content can match.
    size_t i = 0;
    if (!c.empty()) cp_ = utf8_next(c, i);
    if (c.empty() || i != c.size() || cp_ > 0xFFFF) cp_ = kNone;
    start_ = size_t(j.at("start").integer(0, 1 << 20));
    stop_ = size_t(j.at("stop").integer(0, 1 << 20));
  }
  void apply(std::vector<std::string>& tokens, DecodeSpan& span, bool& fused) const override {
    for (auto& t : tokens) {
      size_t begin = 0;
      if (!(fused && !span.at_start)) {
        for (size_t k = 0; k < start_ && begin < t.size(); ++k) {
          size_t j = begin;
          if (utf8_next(t, j) != cp_) break;
          begin = j;
        }
      }
      size_t end = t.size();
      for (size_t k = 0; k < stop_ && end > begin; ++k) {
        size_t s = end - 1;
        while (s > 0 && (static_cast<unsigned char>(t[s]) & 0xC0) == 0x80) --s;
        size_t j = s;
        if (utf8_next(t, j) != cp_) break;
        end = s;
      }
      // At the end of a window that is not the end of the text, what is stripped there may be
      // followed by more text: it is held back rather than dropped.
      if (fused && !span.at_end && end < t.size()) span.held = true;
      t = t.substr(begin, end - begin);
    }
  }
  void describe(DecoderTraits&) const override {}

 private:
  static constexpr uint32_t kNone = 0xFFFFFFFF;
  uint32_t cp_ = kNone;
  size_t start_ = 0, stop_ = 0;
};

class SequenceDecoder : public Decoder {
 public:
  explicit SequenceDecoder(const JsonNode& j) : where_(j.where()) {
    j.only_keys({"type", "decoders"});
    const JsonNode list = j.at("decoders");
    for (size_t i = 0; i < list.size(); ++i) {
      // The reference gives the added tokens to the top-level decoder only.
      auto d = Decoder::from_json(list[i], nullptr);
      if (!d) list[i].fail("expected a decoder, found null");
      steps_.push_back(std::move(d));
    }
  }
  void apply(std::vector<std::string>& tokens, DecodeSpan& span, bool& fused) const override {
    auto total = [&] {
      size_t n = 0;
      for (const auto& t : tokens) n += t.size();
      return n;
    };
    // As for normalizers (text/normalizer.cpp): Replace steps must not grow the text without bound.
    const size_t limit = 64 * total() + 4096;
    for (const auto& d : steps_) {
      d->apply(tokens, span, fused);
      if (total() > limit) throw Error(where_ + ": the decoders make the text more than 64 times longer (not supported)");
    }
  }
  void describe(DecoderTraits& t) const override {
    for (const auto& d : steps_) d->describe(t);
  }

 private:
  std::string where_;
  std::vector<std::unique_ptr<Decoder>> steps_;
};

}  // namespace

int byte_token_value(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1; };
  const int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

std::unique_ptr<Decoder> Decoder::from_json(const JsonNode& j, const TokenSet* added) {
  if (j.is_null()) return nullptr;
  const JsonNode type = j.at("type");
  const std::string t = type.str();
  if (t == "ByteLevel") return std::make_unique<ByteLevelDecoder>(j, added);
  if (t == "ByteFallback") return std::make_unique<ByteFallback>(j);
  if (t == "Fuse") return std::make_unique<Fuse>(j);
  if (t == "Replace") return std::make_unique<ReplaceDecoder>(j);
  if (t == "Strip") return std::make_unique<StripDecoder>(j);
  if (t == "Sequence") return std::make_unique<SequenceDecoder>(j);
  type.fail("decoder type '" + t + "' is not supported (supported: ByteLevel, ByteFallback, Fuse, Replace, Strip, Sequence)");
}

}  // namespace moe::text
