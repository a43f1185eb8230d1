#include "text/jinja_parser.h"

#include <cstdlib>
#include <initializer_list>
#include <set>

namespace moe::text::jinja {

namespace {

constexpr int kMaxDepth = 200;  // nesting of statements and expressions (a deeper one is an error)

class Parser {
 public:
  Parser(const TemplateSource& src, const std::vector<Token>& tokens) : src_(src), t_(tokens) {}

  NodePtr program() {
    auto p = std::make_unique<Node>(NodeKind::Program, 0);
    while (cur_ < t_.size()) p->list.push_back(any());
    return p;
  }

 private:
  struct DepthGuard {
    Parser& p;
    explicit DepthGuard(Parser& parser, size_t pos) : p(parser) {
      if (++p.depth_ > kMaxDepth) p.fail_at(pos, "the template nests deeper than " + std::to_string(kMaxDepth) + " levels");
    }
    ~DepthGuard() { --p.depth_; }
    DepthGuard(const DepthGuard&) = delete;
    DepthGuard& operator=(const DepthGuard&) = delete;
  };

  [[noreturn]] void fail_at(size_t pos, const std::string& what) const { src_.fail(pos, what); }
  size_t here() const { return cur_ < t_.size() ? t_[cur_].pos : src_.text().size(); }
  [[noreturn]] void fail(const std::string& what) const { fail_at(here(), what); }
  std::string describe() const {
    if (cur_ >= t_.size()) return "the end of the template";
    const Token& t = t_[cur_];
    if (t.type == Tok::Identifier || t.type == Tok::NumericLiteral) return std::string(tok_name(t.type)) + " '" + t.value + "'";
    if (t.type == Tok::StringLiteral) return "a string";
    if (t.type == Tok::Text) return "text";
    return tok_name(t.type);
  }

  bool is(Tok type, size_t ahead = 0) const { return cur_ + ahead < t_.size() && t_[cur_ + ahead].type == type; }
  bool is_identifier(const char* name, size_t ahead = 0) const {
    return is(Tok::Identifier, ahead) && t_[cur_ + ahead].value == name;
  }
  bool is_statement(std::initializer_list<const char*> names) const {
    if (!is(Tok::OpenStatement) || !is(Tok::Identifier, 1)) return false;
    for (const char* n : names)
      if (t_[cur_ + 1].value == n) return true;
    return false;
  }
  const Token& expect(Tok type, const char* what) {
    if (!is(type)) fail(std::string("expected ") + what + ", found " + describe());
    return t_[cur_++];
  }
  void expect_identifier(const char* name) {
    if (!is_identifier(name)) fail(std::string("expected '") + name + "', found " + describe());
    ++cur_;
  }
  // The body of a block up to one of the statements in names; the end of the template first is an
  // error naming the block.
  void body_until(std::vector<NodePtr>& out, std::initializer_list<const char*> names, const char* block, size_t open) {
    while (!is_statement(names)) {
      if (cur_ >= t_.size()) fail_at(open, std::string("'{% ") + block + " %}' is not closed (the template ends first)");
      out.push_back(any());
    }
  }
  void end_block(const char* name) {
    expect(Tok::OpenStatement, "'{%'");
    expect_identifier(name);
    expect(Tok::CloseStatement, "'%}'");
  }

  NodePtr any() {
    DepthGuard guard(*this, here());
    const Token& t = t_[cur_];
    switch (t.type) {
      case Tok::Comment:
        ++cur_;
        return std::make_unique<Node>(NodeKind::Comment, t.pos);
      case Tok::Text: {
        ++cur_;
        auto n = std::make_unique<Node>(NodeKind::Text, t.pos);
        n->str = t.value;
        return n;
      }
      case Tok::OpenStatement:
        return statement();
      case Tok::OpenExpression: {
        ++cur_;
        NodePtr e = expression();
        expect(Tok::CloseExpression, "'}}'");
        return e;
      }
      default:
        fail("unexpected " + describe());
    }
  }

  NodePtr statement() {
    const size_t open = here();
    expect(Tok::OpenStatement, "'{%'");
    if (!is(Tok::Identifier)) fail("expected a statement name after '{%', found " + describe());
    const std::string name = t_[cur_].value;
    ++cur_;
    if (name == "set") return set_statement(open);
    if (name == "if") {
      NodePtr n = if_statement(open);
      end_block("endif");
      return n;
    }
    if (name == "for") {
      NodePtr n = for_statement(open);
      end_block("endfor");
      return n;
    }
    if (name == "macro") {
      NodePtr n = macro_statement(open);
      end_block("endmacro");
      return n;
    }
    if (name == "break" || name == "continue") {
      expect(Tok::CloseStatement, "'%}'");
      return std::make_unique<Node>(name == "break" ? NodeKind::Break : NodeKind::Continue, open);
    }
    if (name == "call" || name == "filter" || name == "include" || name == "import" || name == "extends" ||
        name == "block" || name == "raw" || name == "with" || name == "from")
      fail_at(open, "'{% " + name + " %}' is not supported");
    fail_at(open, "unknown or unexpected statement '{% " + name + " %}'");
  }

  NodePtr set_statement(size_t open) {
    auto n = std::make_unique<Node>(NodeKind::Set, open);
    n->a = expression_sequence(false);
    if (is(Tok::Equals)) {
      ++cur_;
      n->b = expression_sequence(false);
    } else {
      expect(Tok::CloseStatement, "'=' or '%}'");
      body_until(n->list, {"endset"}, "set", open);
      expect(Tok::OpenStatement, "'{%'");
      expect_identifier("endset");
    }
    expect(Tok::CloseStatement, "'%}'");
    return n;
  }

  NodePtr if_statement(size_t open) {
    DepthGuard guard(*this, open);
    auto n = std::make_unique<Node>(NodeKind::If, open);
    n->a = expression();
    expect(Tok::CloseStatement, "'%}'");
    body_until(n->list, {"elif", "else", "endif"}, "if", open);
    if (is_statement({"elif"})) {
      const size_t elif = here();
      cur_ += 2;
      n->list2.push_back(if_statement(elif));
    } else if (is_statement({"else"})) {
      cur_ += 2;
      expect(Tok::CloseStatement, "'%}'");
      body_until(n->list2, {"endif"}, "if", open);
    }
    return n;
  }

  NodePtr macro_statement(size_t open) {
    auto n = std::make_unique<Node>(NodeKind::Macro, open);
    if (!is(Tok::Identifier)) fail("expected the macro's name, found " + describe());
    n->str = t_[cur_++].value;
    n->list = arguments(true);
    expect(Tok::CloseStatement, "'%}'");
    body_until(n->list2, {"endmacro"}, "macro", open);
    return n;
  }

  NodePtr for_statement(size_t open) {
    auto n = std::make_unique<Node>(NodeKind::For, open);
    n->a = expression_sequence(true);
    if (n->a->kind != NodeKind::Identifier && n->a->kind != NodeKind::TupleLiteral)
      fail_at(n->a->pos, "expected a name or names for the loop variable");
    if (!is_identifier("in")) fail("expected 'in' after the loop variable, found " + describe());
    ++cur_;
    NodePtr it = expression();
    if (it->kind == NodeKind::Select) {  // {% for x in xs if cond %}
      n->b = std::move(it->a);
      n->c = std::move(it->b);
    } else {
      n->b = std::move(it);
    }
    expect(Tok::CloseStatement, "'%}'");
    body_until(n->list, {"endfor", "else"}, "for", open);
    if (is_statement({"else"})) {
      cur_ += 2;
      expect(Tok::CloseStatement, "'%}'");
      body_until(n->list2, {"endfor"}, "for", open);
    }
    return n;
  }

  // a, b, c (a tuple) or a single expression; primary: names only (a loop variable).
  NodePtr expression_sequence(bool primary) {
    const size_t pos = here();
    NodePtr first = primary ? primary_expression() : expression();
    if (!is(Tok::Comma)) return first;
    auto tuple = std::make_unique<Node>(NodeKind::TupleLiteral, pos);
    tuple->list.push_back(std::move(first));
    while (is(Tok::Comma)) {
      ++cur_;
      tuple->list.push_back(primary ? primary_expression() : expression());
    }
    return tuple;
  }

  NodePtr expression() {
    DepthGuard guard(*this, here());
    return if_expression();
  }

  NodePtr if_expression() {
    NodePtr a = or_expression();
    if (!is_identifier("if")) return a;
    const size_t pos = here();
    ++cur_;
    NodePtr test = or_expression();
    if (is_identifier("else")) {
      ++cur_;
      auto n = std::make_unique<Node>(NodeKind::Ternary, pos);
      n->a = std::move(test);
      n->b = std::move(a);
      {
        DepthGuard guard(*this, pos);
        n->c = if_expression();
      }
      return n;
    }
    auto n = std::make_unique<Node>(NodeKind::Select, pos);
    n->a = std::move(a);
    n->b = std::move(test);
    return n;
  }

  NodePtr binary(std::string op, size_t pos, NodePtr l, NodePtr r) {
    auto n = std::make_unique<Node>(NodeKind::Binary, pos);
    n->str = std::move(op);
    n->a = std::move(l);
    n->b = std::move(r);
    return n;
  }

  NodePtr or_expression() {
    NodePtr left = and_expression();
    while (is_identifier("or")) {
      const size_t pos = here();
      ++cur_;
      left = binary("or", pos, std::move(left), and_expression());
    }
    return left;
  }

  NodePtr and_expression() {
    NodePtr left = not_expression();
    while (is_identifier("and")) {
      const size_t pos = here();
      ++cur_;
      left = binary("and", pos, std::move(left), not_expression());
    }
    return left;
  }

  NodePtr not_expression() {
    if (!is_identifier("not")) return comparison();
    DepthGuard guard(*this, here());
    auto n = std::make_unique<Node>(NodeKind::Unary, here());
    n->str = "not";
    ++cur_;
    n->a = not_expression();
    return n;
  }

  NodePtr comparison() {
    NodePtr left = additive();
    while (true) {
      const size_t pos = here();
      std::string op;
      if (is_identifier("not") && is_identifier("in", 1)) {
        op = "not in";
        cur_ += 2;
      } else if (is_identifier("in")) {
        op = "in";
        ++cur_;
      } else if (is(Tok::ComparisonBinaryOperator)) {
        op = t_[cur_++].value;
      } else {
        break;
      }
      left = binary(std::move(op), pos, std::move(left), additive());
    }
    return left;
  }

  NodePtr additive() {
    NodePtr left = multiplicative();
    while (is(Tok::AdditiveBinaryOperator)) {
      const Token& op = t_[cur_++];
      left = binary(op.value, op.pos, std::move(left), multiplicative());
    }
    return left;
  }

  NodePtr multiplicative() {
    NodePtr left = power();
    while (is(Tok::MultiplicativeBinaryOperator)) {
      const Token& op = t_[cur_++];
      left = binary(op.value, op.pos, std::move(left), power());
    }
    return left;
  }

  NodePtr power() {
    NodePtr left = test_expression();
    while (is(Tok::ExponentiationBinaryOperator)) {
      const Token& op = t_[cur_++];
      left = binary(op.value, op.pos, std::move(left), test_expression());
    }
    return left;
  }

  NodePtr test_expression() {
    NodePtr operand = filter_expression();
    while (is_identifier("is")) {
      const size_t pos = here();
      ++cur_;
      const bool negate = is_identifier("not");
      if (negate) ++cur_;
      if (!is(Tok::Identifier)) fail("expected the name of a test after 'is', found " + describe());
      auto n = std::make_unique<Node>(NodeKind::Test, pos);
      n->str = t_[cur_++].value;
      n->flag = negate;
      n->a = std::move(operand);
      operand = std::move(n);
    }
    return operand;
  }

  NodePtr filter_expression() {
    NodePtr operand = unary_sign();
    while (is(Tok::Pipe)) {
      const size_t pos = here();
      ++cur_;
      if (!is(Tok::Identifier)) fail("expected the name of a filter after '|', found " + describe());
      auto name = std::make_unique<Node>(NodeKind::Identifier, here());
      name->str = t_[cur_++].value;
      NodePtr filter = is(Tok::OpenParen) ? call(std::move(name)) : std::move(name);
      auto n = std::make_unique<Node>(NodeKind::Filter, pos);
      n->a = std::move(operand);
      n->b = std::move(filter);
      operand = std::move(n);
    }
    return operand;
  }

  NodePtr unary_sign() {
    if (cur_ < t_.size() && (is(Tok::UnaryOperator) || is(Tok::AdditiveBinaryOperator)) &&
        (t_[cur_].value == "-" || t_[cur_].value == "+")) {
      DepthGuard guard(*this, here());
      auto n = std::make_unique<Node>(NodeKind::Unary, here());
      n->str = t_[cur_++].value;
      n->a = unary_sign();
      return n;
    }
    NodePtr member = member_expression(primary_expression());
    return is(Tok::OpenParen) ? call(std::move(member)) : std::move(member);
  }

  NodePtr call(NodePtr callee) {
    DepthGuard guard(*this, here());
    auto n = std::make_unique<Node>(NodeKind::Call, callee->pos);
    n->a = std::move(callee);
    n->list = arguments(false);
    NodePtr e = member_expression(std::move(n));
    return is(Tok::OpenParen) ? call(std::move(e)) : std::move(e);
  }

  // ( ... ): call arguments (positional, then name=value), or a macro's parameters (names, then
  // name=default).
  std::vector<NodePtr> arguments(bool parameters) {
    expect(Tok::OpenParen, "'('");
    std::vector<NodePtr> args;
    std::set<std::string> names;
    bool saw_keyword = false;
    while (!is(Tok::CloseParen)) {
      if (cur_ >= t_.size()) fail("expected ')', found the end of the template");
      if (is(Tok::ExponentiationBinaryOperator) || (is(Tok::MultiplicativeBinaryOperator) && t_[cur_].value == "*"))
        fail("argument unpacking ('*' or '**') is not supported");
      NodePtr arg = expression();
      if (is(Tok::Equals)) {
        ++cur_;
        if (arg->kind != NodeKind::Identifier)
          fail_at(arg->pos, parameters ? "expected a name for a parameter" : "expected a name for a keyword argument");
        auto kw = std::make_unique<Node>(NodeKind::KeywordArgument, arg->pos);
        kw->str = arg->str;
        kw->a = expression();
        arg = std::move(kw);
      }
      if (parameters) {
        if (arg->kind != NodeKind::Identifier && arg->kind != NodeKind::KeywordArgument)
          fail_at(arg->pos, "expected a name for a parameter");
        if (!names.insert(arg->str).second) fail_at(arg->pos, "duplicate parameter '" + arg->str + "'");
      }
      if (arg->kind == NodeKind::KeywordArgument) {
        saw_keyword = true;
      } else if (saw_keyword) {
        fail_at(arg->pos, parameters ? "a parameter without a default follows one with a default"
                                     : "a positional argument follows a keyword argument");
      }
      args.push_back(std::move(arg));
      if (is(Tok::Comma)) ++cur_;
    }
    ++cur_;
    return args;
  }

  NodePtr member_expression(NodePtr object) {
    while (is(Tok::Dot) || is(Tok::OpenSquareBracket)) {
      const Token& op = t_[cur_++];
      const bool computed = op.type == Tok::OpenSquareBracket;
      auto n = std::make_unique<Node>(NodeKind::Member, op.pos);
      n->flag = computed;
      n->a = std::move(object);
      if (computed) {
        n->b = subscript();
        expect(Tok::CloseSquareBracket, "']'");
      } else {
        NodePtr prop = primary_expression();
        if (prop->kind != NodeKind::Identifier && prop->kind != NodeKind::IntegerLiteral)
          fail_at(prop->pos, "expected a name or an integer after '.'");
        n->b = std::move(prop);
      }
      object = std::move(n);
    }
    return object;
  }

  // What is between [ and ]: an expression, or a slice a:b:c with any part left out.
  NodePtr subscript() {
    const size_t pos = here();
    std::vector<NodePtr> parts;
    bool slice = false;
    while (!is(Tok::CloseSquareBracket)) {
      if (cur_ >= t_.size()) fail("expected ']', found the end of the template");
      if (is(Tok::Colon)) {
        parts.push_back(nullptr);
        ++cur_;
        slice = true;
      } else {
        parts.push_back(expression());
        if (is(Tok::Colon)) {
          ++cur_;
          slice = true;
        }
      }
    }
    if (parts.empty()) fail_at(pos, "expected an index or a slice between '[' and ']'");
    if (!slice) {
      if (parts.size() > 1) fail_at(pos, "expected one index between '[' and ']'");
      return std::move(parts[0]);
    }
    if (parts.size() > 3) fail_at(pos, "a slice has at most 3 parts (start:stop:step)");
    auto n = std::make_unique<Node>(NodeKind::Slice, pos);
    parts.resize(3);
    n->a = std::move(parts[0]);
    n->b = std::move(parts[1]);
    n->c = std::move(parts[2]);
    return n;
  }

  NodePtr primary_expression() {
    DepthGuard guard(*this, here());
    if (cur_ >= t_.size()) fail("unexpected end of the template in an expression");
    const Token& t = t_[cur_++];
    switch (t.type) {
      case Tok::NumericLiteral: {
        const bool is_float = t.value.find('.') != std::string::npos;
        auto n = std::make_unique<Node>(is_float ? NodeKind::FloatLiteral : NodeKind::IntegerLiteral, t.pos);
        n->num = std::strtod(t.value.c_str(), nullptr);
        return n;
      }
      case Tok::StringLiteral: {
        auto n = std::make_unique<Node>(NodeKind::StringLiteral, t.pos);
        n->str = t.value;
        while (is(Tok::StringLiteral)) n->str += t_[cur_++].value;  // adjacent literals join
        return n;
      }
      case Tok::Identifier: {
        auto n = std::make_unique<Node>(NodeKind::Identifier, t.pos);
        n->str = t.value;
        return n;
      }
      case Tok::OpenParen: {
        NodePtr e = expression_sequence(false);
        expect(Tok::CloseParen, "')'");
        return e;
      }
      case Tok::OpenSquareBracket: {
        auto n = std::make_unique<Node>(NodeKind::ArrayLiteral, t.pos);
        while (!is(Tok::CloseSquareBracket)) {
          if (cur_ >= t_.size()) fail_at(t.pos, "'[' is not closed");
          n->list.push_back(expression());
          if (is(Tok::Comma)) ++cur_;
        }
        ++cur_;
        return n;
      }
      case Tok::OpenCurlyBracket: {
        auto n = std::make_unique<Node>(NodeKind::ObjectLiteral, t.pos);
        while (!is(Tok::CloseCurlyBracket)) {
          if (cur_ >= t_.size()) fail_at(t.pos, "'{' is not closed");
          n->list.push_back(expression());
          expect(Tok::Colon, "':' between a key and its value");
          n->list2.push_back(expression());
          if (is(Tok::Comma)) ++cur_;
        }
        ++cur_;
        return n;
      }
      default:
        --cur_;
        fail("unexpected " + describe() + " in an expression");
    }
  }

  const TemplateSource& src_;
  const std::vector<Token>& t_;
  size_t cur_ = 0;
  int depth_ = 0;
};

}  // namespace

NodePtr parse(const TemplateSource& src, const std::vector<Token>& tokens) { return Parser(src, tokens).program(); }

}  // namespace moe::text::jinja
