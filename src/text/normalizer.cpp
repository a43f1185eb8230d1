#include "text/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>

#include <vector>

#include "core/error.h"
#include "text/regex.h"

namespace moe::text {

namespace {

class UnicodeForm : public Normalizer {
 public:
  UnicodeForm(const std::string& form, const JsonNode& j) : form_(form), where_(j.where()) {
    UErrorCode status = U_ZERO_ERROR;
    if (form == "NFC") n_ = icu::Normalizer2::getNFCInstance(status);
    else if (form == "NFD") n_ = icu::Normalizer2::getNFDInstance(status);
    else if (form == "NFKC") n_ = icu::Normalizer2::getNFKCInstance(status);
    else n_ = icu::Normalizer2::getNFKDInstance(status);
    if (U_FAILURE(status) || !n_) throw Error(where_ + ": ICU has no " + form + " normalizer (" + u_errorName(status) + ")");
  }
  std::string normalize(std::string s) const override {
    bool ascii = true;
    for (unsigned char c : s) ascii = ascii && c < 0x80;
    if (ascii) return s;  // ASCII is in every normalization form
    std::string out;
    out.reserve(s.size());
    icu::StringByteSink<std::string> sink(&out);
    UErrorCode status = U_ZERO_ERROR;
    n_->normalizeUTF8(0, icu::StringPiece(s.data(), int32_t(s.size())), sink, nullptr, status);
    if (U_FAILURE(status)) throw Error(where_ + ": " + form_ + " normalization failed (" + u_errorName(status) + ")");
    return out;
  }

 private:
  std::string form_, where_;
  const icu::Normalizer2* n_ = nullptr;
};

class ReplaceNormalizer : public Normalizer {
 public:
  explicit ReplaceNormalizer(const JsonNode& j) {
    j.only_keys({"type", "pattern", "content"});
    pattern_ = pattern_from_json(j.at("pattern"));
    content_ = j.at("content").str();
    if (pattern_->has_named_groups() && content_.find("$<") != std::string::npos)
      j.at("content").fail("named group substitutions ($<name>) are not supported");
  }
  std::string normalize(std::string s) const override { return js_replace_all(*pattern_, s, content_); }

 private:
  std::unique_ptr<Regex> pattern_;
  std::string content_;
};

// The reference prepends to every non-empty piece (empty pieces never reach the normalizer).
class PrependNormalizer : public Normalizer {
 public:
  explicit PrependNormalizer(const JsonNode& j) {
    j.only_keys({"type", "prepend"});
    prepend_ = j.at("prepend").str();
  }
  std::string normalize(std::string s) const override { return prepend_ + s; }

 private:
  std::string prepend_;
};

class SequenceNormalizer : public Normalizer {
 public:
  explicit SequenceNormalizer(const JsonNode& j) : where_(j.where()) {
    j.only_keys({"type", "normalizers"});
    const JsonNode list = j.at("normalizers");
    for (size_t i = 0; i < list.size(); ++i) {
      auto n = Normalizer::from_json(list[i]);
      if (!n) list[i].fail("expected a normalizer, found null");
      steps_.push_back(std::move(n));
    }
  }
  std::string normalize(std::string s) const override {
    // Replace steps can grow the text geometrically (an empty pattern inserts its content between
    // every two characters): a file that does so is refused rather than allowed to exhaust memory.
    const size_t limit = 64 * s.size() + 4096;
    for (const auto& n : steps_) {
      s = n->normalize(std::move(s));
      if (s.size() > limit) throw Error(where_ + ": the normalizers make the text more than 64 times longer (not supported)");
    }
    return s;
  }

 private:
  std::string where_;
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

}  // namespace

std::unique_ptr<Normalizer> Normalizer::from_json(const JsonNode& j) {
  if (j.is_null()) return nullptr;
  const JsonNode type = j.at("type");
  const std::string t = type.str();
  if (t == "NFC" || t == "NFD" || t == "NFKC" || t == "NFKD") {
    j.only_keys({"type"});
    return std::make_unique<UnicodeForm>(t, j);
  }
  if (t == "Replace") return std::make_unique<ReplaceNormalizer>(j);
  if (t == "Prepend") return std::make_unique<PrependNormalizer>(j);
  if (t == "Sequence") return std::make_unique<SequenceNormalizer>(j);
  type.fail("normalizer type '" + t + "' is not supported (supported: NFC, NFD, NFKC, NFKD, Replace, Prepend, Sequence)");
}

}  // namespace moe::text
