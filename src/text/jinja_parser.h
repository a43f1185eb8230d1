#pragma once
// The syntax tree of a chat template and the parser that builds it from jinja_lexer's tokens. The
// grammar and precedence are @huggingface/jinja's (the reference renderer), loosest first:
//   x if c else y  |  or  |  and  |  not  |  == != < <= > >= in, not in  |  + - ~  |  * / // %
//   |  **  |  x is [not] test  |  x | filter  |  unary + -  |  calls, x.attr, x[i], x[a:b:c]
// Statements: if / elif / else, for (tuple unpacking, an inline "if", else), set (a name, a tuple
// of names, ns.attr, or a {% set x %}...{% endset %} block), macro, break, continue, comments.
// {% call %} and {% filter %} blocks are errors naming them.
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "text/jinja_lexer.h"

namespace moe::text::jinja {

enum class NodeKind {
  // statements
  Program,   // list: body
  Text,      // str: the text
  If,        // a: test; list: body; list2: else branch (an elif is an If inside it)
  For,       // a: loop variable (Identifier or Tuple); b: iterable; c: inline if (or null);
             // list: body; list2: else
  Set,       // a: target (Identifier, Tuple or Member); b: value, or null and list: the block
  Macro,     // str: name; list: parameters (Identifier or KeywordArgument); list2: body
  Comment,
  Break,
  Continue,
  // expressions
  Identifier,       // str
  IntegerLiteral,   // num
  FloatLiteral,     // num
  StringLiteral,    // str
  ArrayLiteral,     // list
  TupleLiteral,     // list
  ObjectLiteral,    // list: keys; list2: values
  Member,           // a: object; b: property (an expression, or a Slice); flag: computed ([])
  Slice,            // a, b, c: start, stop, step (each may be null)
  Call,             // a: callee; list: arguments (KeywordArgument for name=value)
  KeywordArgument,  // str: name; a: value
  Binary,           // str: operator; a, b
  Unary,            // str: operator (not, -, +); a
  Filter,           // a: operand; b: filter (Identifier, or Call whose callee is the name)
  Test,             // a: operand; str: test name; flag: negated
  Select,           // a: value; b: condition (x if c, without else: undefined when c is false)
  Ternary,          // a: condition; b: if true; c: if false
};

struct Node;
using NodePtr = std::unique_ptr<Node>;

struct Node {
  NodeKind kind;
  size_t pos = 0;  // byte offset in the template
  std::string str;
  double num = 0;
  bool flag = false;
  NodePtr a, b, c;
  std::vector<NodePtr> list, list2;

  Node(NodeKind k, size_t p) : kind(k), pos(p) {}
};

// Throws moe::Error naming the position of a syntax error or of an unsupported construct.
NodePtr parse(const TemplateSource& src, const std::vector<Token>& tokens);

}  // namespace moe::text::jinja
