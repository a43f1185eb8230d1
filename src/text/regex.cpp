#include "text/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "text/utf8.h"

namespace moe::text {

namespace {

// JavaScript's \s (WhiteSpace + LineTerminator), as class items.
constexpr const char* kJsSpace =
    "\\t\\n\\x{0B}\\f\\r\\x{20}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}\\x{202F}\\x{205F}\\x{3000}\\x{FEFF}";
constexpr const char* kJsWord = "A-Za-z0-9_";
constexpr int kMaxCaptures = 255;

std::string pcre2_message(int code) {
  PCRE2_UCHAR buf[256];
  if (pcre2_get_error_message(code, buf, sizeof buf) < 0) return "error " + std::to_string(code);
  return reinterpret_cast<const char*>(buf);
}

// Replaces every occurrence of `from` (String.prototype.replaceAll with a string).
std::string replace_all_literal(std::string s, const std::string& from, const std::string& to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

// transformers.js's createPattern(): its fixes for Python-only syntax, applied as it applies them.
std::string transformers_js_rewrites(const std::string& p) {
  std::string s;
  for (size_t i = 0; i < p.size(); ++i) {
    if (p[i] == '\\' && i + 1 < p.size() && (p[i + 1] == '#' || p[i + 1] == '&' || p[i + 1] == '~')) {
      s += p[++i];
    } else {
      s += p[i];
    }
  }
  // PROBLEMATIC_REGEX_MAP: JavaScript has no (?i:...); the reference spells the group out ASCII-only.
  s = replace_all_literal(s, "(?i:'s|'t|'re|'ve|'m|'ll|'d)", "(?:'([sS]|[tT]|[rR][eE]|[vV][eE]|[mM]|[lL][lL]|[dD]))");
  const std::string bloom = ".,!?\u2026\u3002\uff0c\u3001\u0964\u06d4\u060c";
  s = replace_all_literal(s, " ?[^(\\s|[" + bloom + "])]+", " ?[^\\s" + bloom + "]+");
  return s;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

struct Scratch {
  pcre2_match_data* md = nullptr;
  pcre2_match_context* mc = nullptr;
  pcre2_jit_stack* stack = nullptr;
  Scratch() {
    md = pcre2_match_data_create(kMaxCaptures + 1, nullptr);
    mc = pcre2_match_context_create(nullptr);
    // The default JIT stack (32 KiB on the machine stack) is small for \s+ runs over long inputs.
    stack = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, nullptr);
    if (mc && stack) pcre2_jit_stack_assign(mc, nullptr, stack);
    if (!md || !mc) throw std::bad_alloc();
  }
  ~Scratch() {
    pcre2_match_data_free(md);
    pcre2_match_context_free(mc);
    if (stack) pcre2_jit_stack_free(stack);
  }
};

Scratch& scratch() {
  thread_local Scratch s;  // match data and JIT stack are per thread: encode() is const and shareable
  return s;
}

}  // namespace

std::unique_ptr<Regex> pattern_from_json(const JsonNode& j) {
  j.expect_object();
  if (j.json().size() != 1 || !(j.json().contains("String") || j.json().contains("Regex")))
    j.fail("expected {\"String\": ...} or {\"Regex\": ...}");
  const bool literal = j.json().contains("String");
  const JsonNode p = j.at(literal ? "String" : "Regex");
  return std::make_unique<Regex>(p.str(), literal, p.where());
}

size_t next_char(std::string_view s, size_t i) {
  return i >= s.size() ? i + 1 : i + utf8_length(static_cast<unsigned char>(s[i]));
}

std::string js_regex_to_pcre2(const std::string& pattern, const std::string& where) {
  const std::string p = transformers_js_rewrites(pattern);
  auto unsupported = [&](const std::string& what) {
    throw Error(where + ": " + what + " in pattern '" + pattern + "' is not supported");
  };
  std::string out;
  bool in_class = false;
  const size_t n = p.size();
  for (size_t i = 0; i < n; ++i) {
    const char c = p[i];
    if (c == '\\') {
      if (i + 1 >= n) unsupported("a trailing backslash");
      const char d = p[++i];
      switch (d) {
        case 's':
        case 'd':
        case 'w':
        case 'S':
        case 'D':
        case 'W': {
          const char lower = char(d | 0x20);
          const char* items = lower == 's' ? kJsSpace : lower == 'd' ? "0-9" : kJsWord;
          const bool negated = d != lower;
          if (in_class && negated) unsupported(std::string("\\") + d + " inside a character class");
          if (!in_class) out += negated ? "[^" : "[";
          out += items;
          if (!in_class) out += ']';
          break;
        }
        case 'b':
          if (in_class) {
            out += "\\x{08}";  // [\b] is a backspace in JavaScript
          } else {
            out += "(?:(?<=[A-Za-z0-9_])(?![A-Za-z0-9_])|(?<![A-Za-z0-9_])(?=[A-Za-z0-9_]))";
          }
          break;
        case 'B':
          if (in_class) unsupported("\\B inside a character class");
          out += "(?:(?<=[A-Za-z0-9_])(?=[A-Za-z0-9_])|(?<![A-Za-z0-9_])(?![A-Za-z0-9_]))";
          break;
        case 'u': {
          // \uXXXX (a surrogate pair \uD83D\uDE00 is one code point under the u flag) or \u{X...}.
          auto hex4 = [&](size_t at, uint32_t& v) {
            if (at + 4 > n) return false;
            v = 0;
            for (size_t k = 0; k < 4; ++k) {
              const int h = hex_value(p[at + k]);
              if (h < 0) return false;
              v = v * 16 + uint32_t(h);
            }
            return true;
          };
          uint32_t cp = 0;
          if (i + 1 < n && p[i + 1] == '{') {
            size_t k = i + 2;
            while (k < n && hex_value(p[k]) >= 0 && cp <= 0x10FFFF) cp = cp * 16 + uint32_t(hex_value(p[k++]));
            if (k == i + 2 || k >= n || p[k] != '}' || cp > 0x10FFFF) unsupported("a malformed \\u{...} escape");
            i = k;
          } else {
            if (!hex4(i + 1, cp)) unsupported("a malformed \\u escape");
            i += 4;
            uint32_t lo = 0;
            if (cp >= 0xD800 && cp <= 0xDBFF && i + 2 < n && p[i + 1] == '\\' && p[i + 2] == 'u' && hex4(i + 3, lo) &&
                lo >= 0xDC00 && lo <= 0xDFFF) {
              cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
              i += 6;
            }
            if (cp >= 0xD800 && cp <= 0xDFFF) unsupported("a lone surrogate escape");
          }
          char buf[16];
          std::snprintf(buf, sizeof buf, "\\x{%X}", cp);
          out += buf;
          break;
        }
        case 'p':
        case 'P': {
          out += '\\';
          out += d;
          if (i + 1 < n && p[i + 1] == '{') {
            const size_t close = p.find('}', i + 1);
            if (close == std::string::npos) unsupported("an unterminated \\p{");
            out.append(p, i + 1, close - i);
            i = close;
          }
          break;
        }
        default:
          out += '\\';
          out += d;
      }
      continue;
    }
    if (in_class) {
      if (c == ']') in_class = false;
      if (c == '[') {
        out += "\\[";  // literal in JavaScript; PCRE2 would read "[:" as a POSIX class
      } else {
        out += c;
      }
      continue;
    }
    if (c == '[') {
      if (i + 1 < n && p[i + 1] == ']') {
        out += "(?!)";  // JavaScript's [] matches nothing
        ++i;
        continue;
      }
      if (i + 2 < n && p[i + 1] == '^' && p[i + 2] == ']') {
        out += "(?s:.)";  // and [^] anything
        i += 2;
        continue;
      }
      in_class = true;
      out += c;
      if (i + 1 < n && p[i + 1] == '^') out += p[++i];
      continue;
    }
    if (c == '.') {
      out += "[^\\n\\r\\x{2028}\\x{2029}]";
      continue;
    }
    out += c;
  }
  return out;
}

struct Regex::Code {
  pcre2_code* re = nullptr;
  ~Code() { pcre2_code_free(re); }
};

Regex::Regex(const std::string& pattern, bool literal, std::string where) : code_(std::make_unique<Code>()), where_(std::move(where)) {
  const std::string src = literal ? pattern : js_regex_to_pcre2(pattern, where_);
  const uint32_t options = literal ? (PCRE2_UTF | PCRE2_LITERAL) : (PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY);
  int err = 0;
  PCRE2_SIZE err_at = 0;
  code_->re = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(src.data()), src.size(), options, &err, &err_at, nullptr);
  if (!code_->re)
    throw Error(where_ + ": pattern '" + pattern + "' does not compile (PCRE2: " + pcre2_message(err) + " at offset " +
                std::to_string(err_at) + " of '" + src + "')");
  uint32_t count = 0, names = 0;
  pcre2_pattern_info(code_->re, PCRE2_INFO_CAPTURECOUNT, &count);
  pcre2_pattern_info(code_->re, PCRE2_INFO_NAMECOUNT, &names);
  if (count > uint32_t(kMaxCaptures)) throw Error(where_ + ": pattern has more than 255 capture groups (not supported)");
  captures_ = int(count);
  named_ = names > 0;
  pcre2_jit_compile(code_->re, PCRE2_JIT_COMPLETE);  // without JIT support the interpreter runs it
}

Regex::~Regex() = default;

bool Regex::find(std::string_view s, size_t from, Match& m, std::vector<Match>* groups) const {
  if (from > s.size()) return false;
  Scratch& sc = scratch();
  // Bounds a pathological pattern (exponential backtracking) to an error instead of a hang; the
  // patterns of real tokenizers need a few steps per byte.
  pcre2_set_match_limit(sc.mc, uint32_t(std::min<uint64_t>(UINT32_MAX, 10'000'000 + 1000 * uint64_t(s.size()))));
  const int rc = pcre2_match(code_->re, reinterpret_cast<PCRE2_SPTR>(s.data()), s.size(), from, PCRE2_NO_UTF_CHECK, sc.md, sc.mc);
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  if (rc < 0) throw Error(where_ + ": regex match failed (PCRE2: " + pcre2_message(rc) + ")");
  const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(sc.md);
  m.begin = ov[0];
  m.end = ov[1];
  if (m.end < m.begin) m.end = m.begin;  // \K in a lookahead can report end < begin
  if (groups) {
    groups->assign(size_t(captures_), Match{std::string_view::npos, std::string_view::npos});
    for (int g = 1; g <= captures_ && g < rc; ++g)
      if (ov[2 * g] != PCRE2_UNSET) (*groups)[size_t(g - 1)] = Match{ov[2 * g], ov[2 * g + 1]};
  }
  return true;
}

void Regex::find_all(std::string_view s, std::vector<Match>& out) const {
  out.clear();
  Match m;
  for (size_t pos = 0; pos <= s.size() && find(s, pos, m);) {
    out.push_back(m);
    pos = m.end > m.begin ? m.end : next_char(s, m.end);
  }
}

std::string js_replace_all(const Regex& re, std::string_view s, std::string_view content, size_t* last_end) {
  std::string out;
  std::vector<Regex::Match> groups;
  Regex::Match m;
  size_t last = 0;
  const bool plain = content.find('$') == std::string_view::npos;
  for (size_t pos = 0; pos <= s.size() && re.find(s, pos, m, plain ? nullptr : &groups);) {
    out.append(s.substr(last, m.begin - last));
    if (plain) {
      out.append(content);
    } else {
      // GetSubstitution (ECMA-262): the $ forms.
      const int ncap = re.capture_count();
      for (size_t k = 0; k < content.size(); ++k) {
        const char c = content[k];
        if (c != '$' || k + 1 >= content.size()) {
          out += c;
          continue;
        }
        const char d = content[k + 1];
        if (d == '$') {
          out += '$', ++k;
        } else if (d == '&') {
          out.append(s.substr(m.begin, m.end - m.begin)), ++k;
        } else if (d == '`') {
          out.append(s.substr(0, m.begin)), ++k;
        } else if (d == '\'') {
          out.append(s.substr(m.end)), ++k;
        } else if (d >= '0' && d <= '9') {
          int g = d - '0';
          size_t used = 1;
          if (k + 2 < content.size() && content[k + 2] >= '0' && content[k + 2] <= '9') {
            const int g2 = g * 10 + (content[k + 2] - '0');
            if (g2 >= 1 && g2 <= ncap) g = g2, used = 2;
          }
          if (g >= 1 && g <= ncap) {
            const Regex::Match& gm = groups[size_t(g - 1)];
            if (gm.begin != std::string_view::npos) out.append(s.substr(gm.begin, gm.end - gm.begin));
            k += used;
          } else {
            out += c;
          }
        } else {
          out += c;
        }
      }
    }
    last = m.end;
    pos = m.end > m.begin ? m.end : next_char(s, m.end);
  }
  if (last < s.size()) out.append(s.substr(last));
  if (last_end) *last_end = last;
  return out;
}

}  // namespace moe::text
