#pragma once
// The Jinja lexer of the chat-template interpreter. Chat templates are rendered as transformers.js
// renders them, with @huggingface/jinja (the reference: tests/oracle/render.mjs), so this follows
// that package's lexer: the template's last "\n" is dropped, lstrip_blocks and trim_blocks apply
// (Hugging Face always renders with both), {% generation %} tags are removed, then the text is
// cut into text, tag and expression tokens; "-" next to a delimiter strips whitespace as in Jinja.
// (Written by hand: Debian packages no C++ Jinja library.)
#include <cstddef>
#include <string>
#include <vector>

#include "text/jinja_source.h"

namespace moe::text::jinja {

enum class Tok {
  Text,
  NumericLiteral,
  StringLiteral,
  Identifier,
  Equals,
  OpenParen,
  CloseParen,
  OpenStatement,   // {%
  CloseStatement,  // %}
  OpenExpression,  // {{
  CloseExpression, // }}
  OpenSquareBracket,
  CloseSquareBracket,
  OpenCurlyBracket,
  CloseCurlyBracket,
  Comma,
  Dot,
  Colon,
  Pipe,
  AdditiveBinaryOperator,        // + - ~
  MultiplicativeBinaryOperator,  // * / // %
  ExponentiationBinaryOperator,  // **
  ComparisonBinaryOperator,      // == != < <= > >=
  UnaryOperator,                 // a sign that is not a binary operator
  Comment,
};

const char* tok_name(Tok t);

struct Token {
  Tok type;
  std::string value;  // text, identifier, operator, or a string literal's decoded value
  size_t pos;         // byte offset of the token in the original template
};

// Throws moe::Error (via src.fail) naming the position of anything the lexer cannot read: an
// unterminated string or comment, an unknown escape, a stray character, text that is not UTF-8.
std::vector<Token> tokenize(const TemplateSource& src);

}  // namespace moe::text::jinja
