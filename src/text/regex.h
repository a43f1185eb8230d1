#pragma once
// The patterns of tokenizer.json ("Split", "Replace") run on PCRE2 (8-bit, UTF + UCP, JIT when the
// library has it) with the semantics of the reference, transformers.js, which compiles them as
// JavaScript RegExps with the "gu" flags:
//   - transformers.js's own rewrites come first: "\#", "\&", "\~" lose the backslash, and the GPT-2
//     contraction group "(?i:'s|'t|'re|'ve|'m|'ll|'d)" becomes an ASCII-only case class (so "'ſ"
//     is not "'s", as a case-folding engine would have it);
//   - JavaScript's shorthand classes are spelled out: \s and \S as JavaScript's white space (it
//     includes U+FEFF, Unicode's does not), \d \w \b ASCII, "." anything but \n \r U+2028 U+2029,
//     "$" only at the end, [] nothing and [^] anything;
//   - a global match that is empty moves on by one code point.
// Everything else is PCRE2 syntax, which agrees with JavaScript's for the patterns these files use
// (\p{L}, \p{N}, lookahead, classes, ranges of CJK characters). Compile errors and matches that hit
// PCRE2's limits throw moe::Error naming `where` (file and key).
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "text/json_node.h"

namespace moe::text {

class Regex {
 public:
  struct Match {
    size_t begin = 0, end = 0;
  };
  // literal: a plain string to find (tokenizer.json's {"String": ...}); else a pattern as above.
  Regex(const std::string& pattern, bool literal, std::string where);
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;

  // Every match in s, as String.prototype.matchAll finds them (empty ones included).
  void find_all(std::string_view s, std::vector<Match>& out) const;
  // The leftmost match starting at or after `from`; groups (when not null) receives the capture
  // groups 1..n, {npos, npos} for one that did not take part. False when there is none.
  bool find(std::string_view s, size_t from, Match& m, std::vector<Match>* groups = nullptr) const;
  int capture_count() const { return captures_; }
  bool has_named_groups() const { return named_; }
  const std::string& where() const { return where_; }

 private:
  struct Code;
  std::unique_ptr<Code> code_;
  std::string where_;
  int captures_ = 0;
  bool named_ = false;
};

// The pattern after transformers.js's rewrites and the JavaScript-to-PCRE2 translation above
// (exposed for the tests). Throws moe::Error(where + ...) for syntax it cannot translate.
std::string js_regex_to_pcre2(const std::string& pattern, const std::string& where);

// String.prototype.replaceAll(regex, content) of the reference: content's "$$", "$&", "$`", "$'"
// and "$n" / "$nn" are substitutions as in JavaScript. last_end (when not null) receives where the
// last match ended in s (0 without a match).
std::string js_replace_all(const Regex& re, std::string_view s, std::string_view content, size_t* last_end = nullptr);

// tokenizer.json's {"String": s} (a literal) or {"Regex": r}, compiled; `where` is the node's.
std::unique_ptr<Regex> pattern_from_json(const JsonNode& j);

// Next code point boundary after i (i + 1 at the end of s).
size_t next_char(std::string_view s, size_t i);

}  // namespace moe::text
