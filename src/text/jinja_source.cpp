#include "text/jinja_source.h"

#include "core/error.h"

namespace moe::text::jinja {

std::string TemplateSource::position(size_t offset) const {
  if (offset > text_.size()) offset = text_.size();
  size_t line = 1, column = 1;
  for (size_t i = 0; i < offset; ++i) {
    const unsigned char c = static_cast<unsigned char>(text_[i]);
    if (c == '\n') {
      ++line;
      column = 1;
    } else if ((c & 0xC0) != 0x80) {  // a character starts here (not a UTF-8 continuation byte)
      ++column;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

void TemplateSource::fail(size_t offset, const std::string& what) const {
  throw Error(where_ + ": " + position(offset) + ": " + what);
}

void TemplateSource::fail(const std::string& what) const { throw Error(where_ + ": " + what); }

}  // namespace moe::text::jinja
