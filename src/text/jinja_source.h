#pragma once
// The text of a Jinja template with the name it is reported under, so that every complaint about
// it names the file, the key and the place: "[chat_template] DIR/tokenizer_config.json:
// chat_template: line 3, column 12: unknown filter 'frobnicate'".
#include <cstddef>
#include <string>

namespace moe::text::jinja {

class TemplateSource {
 public:
  // where: the prefix of every message, e.g. "[chat_template] FILE: chat_template".
  TemplateSource(std::string text, std::string where) : text_(std::move(text)), where_(std::move(where)) {}

  const std::string& text() const { return text_; }
  const std::string& where() const { return where_; }
  // "line L, column C" of a byte offset into text() (both 1-based; columns count characters).
  std::string position(size_t offset) const;
  // Throws moe::Error "WHERE: line L, column C: WHAT".
  [[noreturn]] void fail(size_t offset, const std::string& what) const;
  // Throws moe::Error "WHERE: WHAT" (no position: e.g. a template that is not UTF-8).
  [[noreturn]] void fail(const std::string& what) const;

 private:
  std::string text_;
  std::string where_;
};

}  // namespace moe::text::jinja
