#include "text/jinja_lexer.h"

#include <cstdint>
#include <string_view>

#include "text/utf8.h"

namespace moe::text::jinja {

const char* tok_name(Tok t) {
  switch (t) {
    case Tok::Text: return "text";
    case Tok::NumericLiteral: return "number";
    case Tok::StringLiteral: return "string";
    case Tok::Identifier: return "identifier";
    case Tok::Equals: return "'='";
    case Tok::OpenParen: return "'('";
    case Tok::CloseParen: return "')'";
    case Tok::OpenStatement: return "'{%'";
    case Tok::CloseStatement: return "'%}'";
    case Tok::OpenExpression: return "'{{'";
    case Tok::CloseExpression: return "'}}'";
    case Tok::OpenSquareBracket: return "'['";
    case Tok::CloseSquareBracket: return "']'";
    case Tok::OpenCurlyBracket: return "'{'";
    case Tok::CloseCurlyBracket: return "'}'";
    case Tok::Comma: return "','";
    case Tok::Dot: return "'.'";
    case Tok::Colon: return "':'";
    case Tok::Pipe: return "'|'";
    case Tok::AdditiveBinaryOperator: return "additive operator";
    case Tok::MultiplicativeBinaryOperator: return "multiplicative operator";
    case Tok::ExponentiationBinaryOperator: return "'**'";
    case Tok::ComparisonBinaryOperator: return "comparison operator";
    case Tok::UnaryOperator: return "unary operator";
    case Tok::Comment: return "comment";
  }
  return "token";
}

namespace {

// Text being rewritten, each byte with its offset in the original template.
struct Mapped {
  std::string s;
  std::vector<size_t> pos;  // pos.size() == s.size() + 1 (the last: the end)
  void push(char c, size_t p) {
    s.push_back(c);
    pos.back() = p;
    pos.push_back(p + 1);
  }
};

Mapped identity(const std::string& t) {
  Mapped m;
  m.s = t;
  m.pos.resize(t.size() + 1);
  for (size_t i = 0; i <= t.size(); ++i) m.pos[i] = i;
  return m;
}

Mapped start_like(const Mapped& in) {
  Mapped out;
  out.s.reserve(in.s.size());
  out.pos.reserve(in.pos.size());
  out.pos.push_back(in.pos.back());
  return out;
}

// JavaScript's multiline ^: the start, or after \n, \r, U+2028 or U+2029.
bool at_line_start(const std::string& s, size_t i) {
  if (i == 0) return true;
  const char c = s[i - 1];
  if (c == '\n' || c == '\r') return true;
  return i >= 3 && s.compare(i - 3, 2, "\xE2\x80") == 0 && (s[i - 1] == '\xA8' || s[i - 1] == '\xA9');
}

uint32_t cp_at(const std::string& s, size_t i, size_t* len = nullptr) {
  size_t j = i;
  const uint32_t cp = utf8_next(s, j);
  if (len) *len = j - i;
  return cp;
}

bool js_space_at(const std::string& s, size_t i, size_t* len) {
  if (i >= s.size()) return false;
  return is_js_whitespace(cp_at(s, i, len));
}

// /^[ \t]*({[#%-])/gm -> "$1"
Mapped lstrip_blocks(const Mapped& in) {
  Mapped out = start_like(in);
  const std::string& s = in.s;
  for (size_t i = 0; i < s.size();) {
    if (at_line_start(s, i)) {
      size_t j = i;
      while (j < s.size() && (s[j] == ' ' || s[j] == '\t')) ++j;
      if (j + 1 < s.size() && s[j] == '{' && (s[j + 1] == '#' || s[j + 1] == '%' || s[j + 1] == '-')) i = j;
    }
    out.push(s[i], in.pos[i]);
    ++i;
  }
  return out;
}

// /([#%-]})\n/g -> "$1"
Mapped trim_blocks(const Mapped& in) {
  Mapped out = start_like(in);
  const std::string& s = in.s;
  for (size_t i = 0; i < s.size();) {
    if (i + 2 < s.size() && (s[i] == '#' || s[i] == '%' || s[i] == '-') && s[i + 1] == '}' && s[i + 2] == '\n') {
      out.push(s[i], in.pos[i]);
      out.push(s[i + 1], in.pos[i + 1]);
      i += 3;
      continue;
    }
    out.push(s[i], in.pos[i]);
    ++i;
  }
  return out;
}

// /{%(-?)\s*(?:end)?generation\s*(-?)%}(\s*)/gs: the tag goes; "-" strips the whitespace before
// it (back to the previous tag) or after it.
Mapped remove_generation_tags(const Mapped& in) {
  Mapped out = start_like(in);
  const std::string& s = in.s;
  auto skip_space = [&](size_t j) {
    size_t len = 0;
    while (js_space_at(s, j, &len)) j += len;
    return j;
  };
  size_t copied = 0;      // input consumed so far
  size_t out_floor = 0;   // output bytes that whitespace stripping may not remove
  for (size_t i = 0; i + 1 < s.size(); ++i) {
    if (s[i] != '{' || s[i + 1] != '%') continue;
    size_t j = i + 2;
    const bool lstrip = j < s.size() && s[j] == '-';
    if (lstrip) ++j;
    j = skip_space(j);
    if (s.compare(j, 3, "end") == 0 && s.compare(j + 3, 10, "generation") == 0) j += 3;
    if (s.compare(j, 10, "generation") != 0) continue;
    j = skip_space(j + 10);
    const bool rstrip = j < s.size() && s[j] == '-';
    if (rstrip) ++j;
    if (s.compare(j, 2, "%}") != 0) continue;
    j += 2;
    const size_t after_end = skip_space(j);
    for (size_t k = copied; k < i; ++k) out.push(s[k], in.pos[k]);
    if (lstrip) {
      // Strip trailing whitespace of the output down to what was copied before this match.
      while (out.s.size() > out_floor) {
        size_t start = out.s.size() - 1;
        while (start > out_floor && (static_cast<unsigned char>(out.s[start]) & 0xC0) == 0x80) --start;
        size_t len = 0;
        if (!js_space_at(out.s, start, &len) || start + len != out.s.size()) break;
        out.s.resize(start);
        out.pos.resize(start + 1);
        out.pos.back() = in.pos[i];
      }
    }
    if (!rstrip)
      for (size_t k = j; k < after_end; ++k) out.push(s[k], in.pos[k]);
    copied = after_end;
    out_floor = out.s.size();
    i = after_end - 1;
  }
  for (size_t k = copied; k < s.size(); ++k) out.push(s[k], in.pos[k]);
  out.pos.back() = in.pos.back();
  return out;
}

bool is_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}
bool is_digit(char c) { return c >= '0' && c <= '9'; }

struct Rule {
  const char* seq;
  Tok type;
};
// In the reference's order: for one first character, the longer sequence comes first.
constexpr Rule kRules[] = {
    {"{%", Tok::OpenStatement}, {"%}", Tok::CloseStatement}, {"{{", Tok::OpenExpression},
    {"}}", Tok::CloseExpression}, {"(", Tok::OpenParen}, {")", Tok::CloseParen},
    {"{", Tok::OpenCurlyBracket}, {"}", Tok::CloseCurlyBracket}, {"[", Tok::OpenSquareBracket},
    {"]", Tok::CloseSquareBracket}, {",", Tok::Comma}, {".", Tok::Dot}, {":", Tok::Colon},
    {"|", Tok::Pipe}, {"<=", Tok::ComparisonBinaryOperator}, {">=", Tok::ComparisonBinaryOperator},
    {"==", Tok::ComparisonBinaryOperator}, {"!=", Tok::ComparisonBinaryOperator},
    {"<", Tok::ComparisonBinaryOperator}, {">", Tok::ComparisonBinaryOperator},
    {"+", Tok::AdditiveBinaryOperator}, {"-", Tok::AdditiveBinaryOperator},
    {"~", Tok::AdditiveBinaryOperator}, {"**", Tok::ExponentiationBinaryOperator},
    {"*", Tok::MultiplicativeBinaryOperator}, {"//", Tok::MultiplicativeBinaryOperator},
    {"/", Tok::MultiplicativeBinaryOperator}, {"%", Tok::MultiplicativeBinaryOperator},
    {"=", Tok::Equals},
};

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  Lexer(const TemplateSource& src, Mapped m) : src_(src), m_(std::move(m)), s_(m_.s) {}

  std::vector<Token> run() {
    const size_t n = s_.size();
    while (cur_ < n) {
      const bool have_last = !tokens_.empty();
      const Tok last = have_last ? tokens_.back().type : Tok::Text;
      if (!have_last || last == Tok::CloseStatement || last == Tok::CloseExpression || last == Tok::Comment) {
        size_t end = cur_;
        while (true) {
          end = s_.find('{', end);
          if (end == std::string::npos) {
            end = n;
            break;
          }
          const char next = end + 1 < n ? s_[end + 1] : '\0';
          if (next == '%' || next == '{' || next == '#') break;
          ++end;
        }
        if (end > cur_) {
          push(Tok::Text, s_.substr(cur_, end - cur_), cur_);
          cur_ = end;
          continue;
        }
      }
      if (s_[cur_] == '{') {
        const char next = at(cur_ + 1);
        if (next == '#') {
          comment();
          continue;
        }
        if (at(cur_ + 2) == '-' && (next == '%' || next == '{')) {
          strip_trailing_whitespace();
          push(next == '%' ? Tok::OpenStatement : Tok::OpenExpression, next == '%' ? "{%" : "{{", cur_);
          if (next == '{') curly_depth_ = 0;
          cur_ += 3;
          continue;
        }
      }
      skip_whitespace_in_tag();
      const char ch = s_[cur_];
      if (ch == '-' && at(cur_ + 2) == '}') {
        const char next = at(cur_ + 1);
        if (next == '%' || next == '}') {
          push(next == '%' ? Tok::CloseStatement : Tok::CloseExpression, next == '%' ? "%}" : "}}", cur_);
          cur_ += 3;
          skip_leading_whitespace();
          continue;
        }
      }
      if (ch == '-' || ch == '+') {
        if (!have_last || last == Tok::Text) fail(cur_, std::string("unexpected character '") + ch + "'");
        const bool binary = last == Tok::Identifier || last == Tok::NumericLiteral || last == Tok::StringLiteral ||
                            last == Tok::CloseParen || last == Tok::CloseSquareBracket;
        if (!binary) {
          const size_t start = cur_;
          ++cur_;
          std::string num = digits();
          if (!num.empty() && at(cur_) == '.' && is_digit(at(cur_ + 1))) {
            ++cur_;
            num += "." + digits();
          }
          push(num.empty() ? Tok::UnaryOperator : Tok::NumericLiteral, std::string(1, ch) + num, start);
          continue;
        }
      }
      bool matched = false;
      for (const Rule& r : kRules) {
        if (r.seq[0] != ch) continue;
        const std::string_view seq(r.seq);
        if (seq == "}}" && curly_depth_ > 0) continue;
        if (s_.compare(cur_, seq.size(), seq) != 0) continue;
        push(r.type, std::string(seq), cur_);
        if (r.type == Tok::OpenExpression) curly_depth_ = 0;
        else if (r.type == Tok::OpenCurlyBracket) ++curly_depth_;
        else if (r.type == Tok::CloseCurlyBracket) --curly_depth_;
        cur_ += seq.size();
        matched = true;
        break;
      }
      if (matched) continue;
      if (ch == '\'' || ch == '"') {
        const size_t start = cur_;
        ++cur_;
        std::string str = string_literal(ch, start);
        push(Tok::StringLiteral, std::move(str), start);
        ++cur_;
        continue;
      }
      if (is_digit(ch)) {
        const size_t start = cur_;
        std::string num = digits();
        if (last != Tok::Dot && at(cur_) == '.' && is_digit(at(cur_ + 1))) {
          ++cur_;
          num += "." + digits();
        }
        push(Tok::NumericLiteral, std::move(num), start);
        continue;
      }
      if (is_word(ch)) {
        const size_t start = cur_;
        push(Tok::Identifier, consume_while(is_word), start);
        continue;
      }
      size_t len = 1;
      cp_at(s_, cur_, &len);
      fail(cur_, "unexpected character '" + s_.substr(cur_, len) + "'");
    }
    return std::move(tokens_);
  }

 private:
  char at(size_t i) const { return i < s_.size() ? s_[i] : '\0'; }
  size_t orig(size_t i) const { return m_.pos[i < m_.pos.size() ? i : m_.pos.size() - 1]; }
  [[noreturn]] void fail(size_t i, const std::string& what) const { src_.fail(orig(i), what); }
  void push(Tok t, std::string v, size_t at_pos) { tokens_.push_back(Token{t, std::move(v), orig(at_pos)}); }

  // The reference's consumeWhile: reaching the end of the template while consuming is an error.
  template <class Pred>
  std::string consume_while(Pred pred) {
    const size_t start = cur_;
    while (cur_ < s_.size() && pred(s_[cur_])) {
      if (++cur_ >= s_.size()) fail(start, "unexpected end of template");
    }
    return s_.substr(start, cur_ - start);
  }
  std::string digits() { return consume_while(is_digit); }

  void skip_whitespace_in_tag() {
    const size_t start = cur_;
    size_t len = 0;
    while (js_space_at(s_, cur_, &len)) {
      cur_ += len;
      if (cur_ >= s_.size()) fail(start, "unexpected end of template (an unclosed tag?)");
    }
  }
  void skip_leading_whitespace() {
    size_t len = 0;
    while (js_space_at(s_, cur_, &len)) cur_ += len;
  }
  void strip_trailing_whitespace() {
    if (tokens_.empty() || tokens_.back().type != Tok::Text) return;
    std::string& v = tokens_.back().value;
    v.resize(js_trim_end(v).size());
    if (v.empty()) tokens_.pop_back();
  }

  void comment() {
    const size_t start = cur_;
    cur_ += 2;
    const bool strip_before = at(cur_) == '-';
    if (strip_before) ++cur_;
    const size_t end = s_.find("#}", cur_);
    if (end == std::string::npos) fail(start, "missing end of comment tag '#}'");
    std::string text = s_.substr(cur_, end - cur_);
    const bool strip_after = !text.empty() && text.back() == '-';
    if (strip_after) text.pop_back();
    if (strip_before) strip_trailing_whitespace();
    push(Tok::Comment, std::move(text), start);
    cur_ = end + 2;
    if (strip_after) skip_leading_whitespace();
  }

  std::string string_literal(char quote, size_t start) {
    std::string out;
    uint32_t high = 0;  // a \uD800-\uDBFF escape waiting for its low surrogate
    while (true) {
      if (cur_ >= s_.size()) fail(start, "unterminated string literal");
      const char c = s_[cur_];
      if (c == quote) break;
      ++cur_;
      if (c != '\\') {
        if (high) fail(cur_ - 1, "unpaired surrogate escape in string literal");
        out.push_back(c);
        continue;
      }
      if (cur_ >= s_.size()) fail(start, "unterminated string literal");
      const char e = s_[cur_++];
      if (e == 'x' || e == 'u') {
        const size_t len = e == 'x' ? 2 : 4;
        uint32_t v = 0;
        for (size_t k = 0; k < len; ++k) {
          const int h = hex_value(at(cur_ + k));
          if (h < 0 || cur_ + k >= s_.size()) fail(cur_ - 2, std::string("invalid hexadecimal escape sequence \\") + e);
          v = v * 16 + uint32_t(h);
        }
        cur_ += len;
        if (v >= 0xDC00 && v <= 0xDFFF) {
          if (!high) fail(cur_ - len - 2, "unpaired surrogate escape in string literal");
          utf8_append(out, 0x10000 + ((high - 0xD800) << 10) + (v - 0xDC00));
          high = 0;
        } else if (high) {
          fail(cur_ - len - 2, "unpaired surrogate escape in string literal");
        } else if (v >= 0xD800 && v <= 0xDBFF) {
          high = v;
        } else {
          utf8_append(out, v);
        }
        continue;
      }
      if (high) fail(cur_ - 2, "unpaired surrogate escape in string literal");
      switch (e) {
        case 'n': out.push_back('\n'); break;
        case 't': out.push_back('\t'); break;
        case 'r': out.push_back('\r'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'v': out.push_back('\v'); break;
        case '\'': out.push_back('\''); break;
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        default: {
          size_t len = 1;
          cp_at(s_, cur_ - 1, &len);
          fail(cur_ - 2, "unknown escape '\\" + s_.substr(cur_ - 1, len) + "' in string literal");
        }
      }
    }
    if (high) fail(cur_, "unpaired surrogate escape in string literal");
    return out;
  }

  const TemplateSource& src_;
  Mapped m_;
  const std::string& s_;
  size_t cur_ = 0;
  int curly_depth_ = 0;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(const TemplateSource& src) {
  const std::string& t = src.text();
  if (const size_t bad = utf8_invalid_at(t); bad != std::string::npos)
    src.fail(bad, "the template is not valid UTF-8");
  Mapped m = identity(t);
  if (!m.s.empty() && m.s.back() == '\n') {
    m.s.pop_back();
    m.pos.pop_back();
  }
  m = remove_generation_tags(trim_blocks(lstrip_blocks(m)));
  return Lexer(src, std::move(m)).run();
}

}  // namespace moe::text::jinja
