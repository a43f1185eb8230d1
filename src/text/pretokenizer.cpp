#include "text/pretokenizer.h"

#include "text/byte_level.h"
#include "text/regex.h"

namespace moe::text {

namespace {

class SplitPreTokenizer : public PreTokenizer {
 public:
  explicit SplitPreTokenizer(const JsonNode& j) {
    j.only_keys({"type", "pattern", "behavior", "invert"});
    pattern_ = pattern_from_json(j.at("pattern"));
    literal_ = j.at("pattern").json().contains("String");
    const JsonNode behavior = j.at("behavior");
    const std::string b = behavior.str();
    if (b == "Removed") removed_ = true;
    else if (b != "Isolated")
      behavior.fail("Split behavior '" + b + "' is not supported (supported: Isolated, Removed)");
    if (j.get_bool("invert", false)) j.at("invert").fail("Split with invert true is not supported");
  }

  void apply(std::vector<std::string>& words) const override {
    std::vector<std::string> out;
    std::vector<Regex::Match> matches, groups;
    for (const std::string& w : words) {
      if (removed_) {
        split_removed(w, out, groups);
        continue;
      }
      // transformers.js's regexSplit(): the text before each match, then the match.
      pattern_->find_all(w, matches);
      size_t prev = 0;
      for (const auto& m : matches) {
        if (m.begin > prev) out.emplace_back(w, prev, m.begin - prev);
        if (m.end > m.begin) out.emplace_back(w, m.begin, m.end - m.begin);
        prev = m.end > prev ? m.end : prev;
      }
      if (prev < w.size()) out.emplace_back(w, prev);
    }
    words.swap(out);
  }

 private:
  // JavaScript's String.prototype.split(regex) then .filter(x => x), as the reference does:
  // at each position q a match ending where the last piece ended is skipped, else the text since
  // the last match and the capture groups are pieces. The reference wraps a String pattern in a
  // group, so there the delimiter itself is a piece.
  void split_removed(const std::string& s, std::vector<std::string>& out, std::vector<Regex::Match>& groups) const {
    size_t p = 0, q = 0;
    Regex::Match m;
    auto push = [&](size_t b, size_t e) {
      if (e > b) out.emplace_back(s, b, e - b);
    };
    while (q < s.size() && pattern_->find(s, q, m, &groups)) {
      if (m.begin >= s.size()) break;
      const size_t e = std::min(m.end, s.size());
      if (e == p) {
        q = next_char(s, m.begin);
        continue;
      }
      push(p, m.begin);
      if (literal_) push(m.begin, e);
      for (const auto& g : groups)
        if (g.begin != std::string::npos) push(g.begin, g.end);
      p = e;
      q = p;
    }
    push(p, s.size());
  }

  std::unique_ptr<Regex> pattern_;
  bool literal_ = false, removed_ = false;
};

class ByteLevelPreTokenizer : public PreTokenizer {
 public:
  explicit ByteLevelPreTokenizer(const JsonNode& j) {
    j.only_keys({"type", "add_prefix_space", "trim_offsets", "use_regex"});
    add_prefix_space_ = j.get_bool("add_prefix_space", false);
    j.get_bool("trim_offsets", false);  // offsets only: no effect on ids
    if (j.get_bool("use_regex", true))
      // GPT-2's pattern, as the reference writes it (a JavaScript literal: \s is JavaScript's).
      regex_ = std::make_unique<Regex>("'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+",
                                       false, j.where());
  }

  void apply(std::vector<std::string>& words) const override {
    std::vector<std::string> out;
    std::vector<Regex::Match> matches;
    for (std::string& w : words) {
      if (add_prefix_space_ && (w.empty() || w[0] != ' ')) w.insert(w.begin(), ' ');
      if (!regex_) {
        if (!w.empty()) out.push_back(bytes_to_chars(w));
        continue;
      }
      regex_->find_all(w, matches);  // text between matches is dropped, as String.match does
      for (const auto& m : matches)
        if (m.end > m.begin) out.push_back(bytes_to_chars(std::string_view(w).substr(m.begin, m.end - m.begin)));
    }
    words.swap(out);
  }

 private:
  bool add_prefix_space_ = false;
  std::unique_ptr<Regex> regex_;
};

class SequencePreTokenizer : public PreTokenizer {
 public:
  explicit SequencePreTokenizer(const JsonNode& j) {
    j.only_keys({"type", "pretokenizers"});
    const JsonNode list = j.at("pretokenizers");
    for (size_t i = 0; i < list.size(); ++i) {
      auto p = PreTokenizer::from_json(list[i]);
      if (!p) list[i].fail("expected a pre-tokenizer, found null");
      steps_.push_back(std::move(p));
    }
  }
  void apply(std::vector<std::string>& words) const override {
    for (const auto& p : steps_) p->apply(words);
  }

 private:
  std::vector<std::unique_ptr<PreTokenizer>> steps_;
};

}  // namespace

std::unique_ptr<PreTokenizer> PreTokenizer::from_json(const JsonNode& j) {
  if (j.is_null()) return nullptr;
  const JsonNode type = j.at("type");
  const std::string t = type.str();
  if (t == "Split") return std::make_unique<SplitPreTokenizer>(j);
  if (t == "ByteLevel") return std::make_unique<ByteLevelPreTokenizer>(j);
  if (t == "Sequence") return std::make_unique<SequencePreTokenizer>(j);
  type.fail("pre_tokenizer type '" + t + "' is not supported (supported: Split, ByteLevel, Sequence)");
}

}  // namespace moe::text
