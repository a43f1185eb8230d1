#include "text/jinja_eval.h"

#include <cmath>
#include <ctime>
#include <memory>
#include <unordered_map>

#include "text/jinja_builtins.h"
#include "text/utf8.h"

namespace moe::text::jinja {

namespace {

// ---- environments --------------------------------------------------------------------------

class Env;
using EnvPtr = std::shared_ptr<Env>;

class Env {
 public:
  explicit Env(EnvPtr parent) : parent_(std::move(parent)) {}
  const Value* lookup(const std::string& name) const {
    for (const Env* e = this; e; e = e->parent_.get()) {
      const auto it = e->vars_.find(name);
      if (it != e->vars_.end()) return &it->second;
    }
    return nullptr;
  }
  bool has_own(const std::string& name) const { return vars_.count(name) > 0; }
  void set(const std::string& name, Value v) { vars_[name] = std::move(v); }

 private:
  EnvPtr parent_;
  std::unordered_map<std::string, Value> vars_;
};

// ---- the interpreter -----------------------------------------------------------------------

class Interpreter {
 public:
  Interpreter(const TemplateSource& src, const RenderLimits& limits) : src_(src), lim_(limits) {}

  ~Interpreter() {
    // Namespaces are the only values a template can change, so the only way to a reference
    // cycle ({% set ns.self = ns %}) or to a long chain: empty them all, from outside in.
    std::vector<std::shared_ptr<Object>> alive;
    for (auto& w : namespaces_)
      if (auto p = w.lock()) alive.push_back(std::move(p));
    for (auto& p : alive) {
      std::vector<std::pair<std::string, Value>> items;
      items.swap(p->items);  // freed here: the namespaces inside are still held by alive
    }
  }

  std::string run(const Node& program, const std::vector<std::pair<std::string, Value>>& variables) {
    global_ = std::make_shared<Env>(nullptr);
    globals();
    for (const auto& [name, v] : variables) {
      if (global_->has_own(name)) src_.fail("the variable '" + name + "' is given twice or is a built-in's name");
      global_->set(name, v);
    }
    std::string out;
    if (block(program.list, global_, out) != Flow::Normal) src_.fail("'{% break %}' or '{% continue %}' outside a loop");
    return out;
  }

 private:
  enum class Flow { Normal, Break, Continue };

  [[noreturn]] void fail(const Node& n, const std::string& msg) const { src_.fail(n.pos, msg); }

  void step(const Node& n) {
    if (++steps_ > lim_.max_steps)
      fail(n, "the template takes more than " + std::to_string(lim_.max_steps) + " steps to render");
  }
  void check_string(const Node& n, const std::string& s) const {
    if (s.size() > lim_.max_string_bytes)
      fail(n, "the template makes a string longer than " + std::to_string(lim_.max_string_bytes) + " bytes");
  }
  void check_list(const Node& n, size_t size) const {
    if (size > lim_.max_list_items)
      fail(n, "the template makes a list longer than " + std::to_string(lim_.max_list_items) + " items");
  }

  void globals() {
    global_->set("false", Value::boolean(false));
    global_->set("true", Value::boolean(true));
    global_->set("none", Value::null());
    global_->set("False", Value::boolean(false));
    global_->set("True", Value::boolean(true));
    global_->set("None", Value::null());
    global_->set("raise_exception", Value::function([](const CallArgs& a) -> Value {
      std::string msg;
      for (size_t i = 0; i < a.positional.size(); ++i) {
        if (i) msg += ",";
        msg += a.positional[i].to_output();
      }
      raise("the template raised an error: " + msg);
    }));
    const size_t max_items = lim_.max_list_items;
    global_->set("range", Value::function([max_items](const CallArgs& a) {
      if (a.positional.empty() || a.positional.size() > 3 || !a.keyword.empty()) raise("range() takes 1 to 3 numbers");
      for (const Value& v : a.positional)
        if (!v.is_number()) raise(std::string("range() takes numbers, not ").append(v.type_name()));
      double start = 0, stop, step = 1;
      if (a.positional.size() == 1) {
        stop = a.positional[0].as_number();
      } else {
        start = a.positional[0].as_number();
        stop = a.positional[1].as_number();
        if (a.positional.size() == 3) step = a.positional[2].as_number();
      }
      if (step == 0) raise("range() step must not be zero");
      if (std::isnan(start) || std::isnan(stop) || std::isnan(step)) return Value::array({});
      const double count = step > 0 ? std::ceil((stop - start) / step) : std::ceil((start - stop) / -step);
      if (count > double(max_items)) raise("range() of more than " + std::to_string(max_items) + " numbers");
      std::vector<Value> out;
      if (step > 0)
        for (double i = start; i < stop; i += step) out.push_back(Value::number(i));
      else
        for (double i = start; i > stop; i += step) out.push_back(Value::number(i));
      return Value::array(std::move(out));
    }));
    global_->set("strftime_now", Value::function([](const CallArgs& a) {
      if (a.positional.empty() || !a.positional[0].is(Type::String)) raise("strftime_now() takes a format string");
      static const char* kMonths[] = {"January", "February", "March", "April", "May", "June", "July",
                                      "August", "September", "October", "November", "December"};
      const std::time_t t = std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      auto pad2 = [](int v) {
        std::string r = std::to_string(v);
        return v < 10 ? r.insert(0, 1, '0') : r;
      };
      const std::string& f = a.positional[0].as_string();
      std::string out;
      for (size_t i = 0; i < f.size(); ++i) {
        if (f[i] != '%' || i + 1 >= f.size()) {
          out.push_back(f[i]);
          continue;
        }
        const char c = f[i + 1];
        std::string r;
        switch (c) {
          case 'Y': r = std::to_string(tm.tm_year + 1900); break;
          case 'm': r = pad2(tm.tm_mon + 1); break;
          case 'd': r = pad2(tm.tm_mday); break;
          case 'b': r = std::string(kMonths[tm.tm_mon]).substr(0, 3); break;
          case 'B': r = kMonths[tm.tm_mon]; break;
          case 'H': r = pad2(tm.tm_hour); break;
          case 'M': r = pad2(tm.tm_min); break;
          case '%': r = "%"; break;
          default: out.push_back('%'); continue;
        }
        out += r;
        ++i;
      }
      return Value::string(out);
    }));
    global_->set("namespace", Value::function([this](const CallArgs& a) {
      if (a.positional.size() > 1) raise("namespace() takes at most 1 positional argument");
      Object o;
      if (a.positional.size() == 1) {
        const Value& src = a.positional[0];
        if (src.is_mapping()) {
          for (const auto& [k, v] : src.attributes().items) o.set(k, v);
        } else if (src.is_list()) {
          for (const Value& pair : src.items()) {
            std::vector<Value> kv;
            if (pair.is_list()) kv = pair.items();
            else if (pair.is(Type::String))
              for (auto& c : code_points(pair.as_string())) kv.push_back(Value::string(c));
            if (kv.size() != 2) raise("namespace() expected a mapping or a list of [key, value] pairs");
            if (!kv[0].is(Type::String)) raise("namespace() keys must be strings");
            o.set(kv[0].as_string(), kv[1]);
          }
        } else {
          raise(std::string("namespace(): ") + src.type_name() + " is not iterable");
        }
      }
      for (const auto& [k, v] : a.keyword) o.set(k, v);
      Value ns = Value::namespace_(std::move(o));
      namespaces_.push_back(ns.object_ptr());
      return ns;
    }));
  }

  // ---- statements ----

  Flow block(const std::vector<NodePtr>& body, const EnvPtr& env, std::string& out) {
    for (const NodePtr& n : body) {
      const Flow f = statement(*n, env, out);
      if (f != Flow::Normal) return f;
    }
    return Flow::Normal;
  }

  // Bounds the interpreter's recursion (macros calling macros around deep blocks) below the stack.
  struct Nesting {
    Interpreter& in;
    Nesting(Interpreter& i, const Node& n) : in(i) {
      if (++in.nesting_ > in.lim_.max_nesting) {
        --in.nesting_;
        in.fail(n, "the template nests more than " + std::to_string(in.lim_.max_nesting) + " levels deep while rendering");
      }
    }
    ~Nesting() { --in.nesting_; }
    Nesting(const Nesting&) = delete;
    Nesting& operator=(const Nesting&) = delete;
  };

  Flow statement(const Node& n, const EnvPtr& env, std::string& out) {
    step(n);
    const Nesting nest(*this, n);
    switch (n.kind) {
      case NodeKind::Text: out += n.str; break;
      case NodeKind::Comment: break;
      case NodeKind::If: return block(eval(*n.a, env).truthy() ? n.list : n.list2, env, out);
      case NodeKind::For: return render_for(n, env, out);
      case NodeKind::Set: return exec_set(n, env);
      case NodeKind::Macro: define_macro(n, env); break;
      case NodeKind::Break: return Flow::Break;
      case NodeKind::Continue: return Flow::Continue;
      default: {
        const Value v = eval(n, env);
        if (!v.is_none() && !v.is_undefined()) {
          try {
            out += v.to_output();
          } catch (const FunctionError& e) {
            fail(n, e.message);
          }
        }
      }
    }
    check_string(n, out);
    return Flow::Normal;
  }

  void bind(const Node& target, const Value& v, Env& scope) {
    if (target.kind == NodeKind::Identifier) {
      scope.set(target.str, v);
      return;
    }
    for (size_t j = 0; j < target.list.size(); ++j) {
      if (target.list[j]->kind != NodeKind::Identifier) fail(*target.list[j], "cannot unpack into this: expected a name");
      scope.set(target.list[j]->str, j < v.items().size() ? v.items()[j] : Value());
    }
  }

  // As the reference: an iteration that ends in {% break %} or {% continue %} adds none of its
  // output, and does not count as an iteration for {% else %}; a break in the else block (or in
  // a {% set %} block) ends the enclosing loop.
  Flow render_for(const Node& n, const EnvPtr& env, std::string& out) {
    auto scope = std::make_shared<Env>(env);
    Value iterable = eval(*n.b, scope);
    if (iterable.is_mapping()) iterable = object_keys(iterable.attributes());
    if (!iterable.is_list())
      fail(*n.b, std::string("{% for %} expects a list or a mapping, not ") + iterable.type_name());
    const Node& var = *n.a;
    std::vector<Value> items;
    for (const Value& cur : iterable.items()) {
      step(n);
      if (var.kind == NodeKind::TupleLiteral) {
        if (!cur.is(Type::Array)) fail(var, std::string("cannot unpack ") + cur.type_name() + " into " + std::to_string(var.list.size()) + " names");
        if (cur.items().size() != var.list.size())
          fail(var, std::string("too ") + (var.list.size() > cur.items().size() ? "few" : "many") + " items to unpack (" +
                        std::to_string(cur.items().size()) + " into " + std::to_string(var.list.size()) + ")");
      }
      if (n.c) {
        auto test_scope = std::make_shared<Env>(scope);
        bind(var, cur, *test_scope);
        if (!eval(*n.c, test_scope).truthy()) continue;
      }
      items.push_back(cur);
    }
    bool no_iteration = true;
    for (size_t i = 0; i < items.size(); ++i) {
      Object loop;
      const double len = double(items.size()), idx = double(i);
      loop.set("index", Value::integer(idx + 1));
      loop.set("index0", Value::integer(idx));
      loop.set("revindex", Value::integer(len - idx));
      loop.set("revindex0", Value::integer(len - idx - 1));
      loop.set("first", Value::boolean(i == 0));
      loop.set("last", Value::boolean(i + 1 == items.size()));
      loop.set("length", Value::integer(len));
      loop.set("previtem", i > 0 ? items[i - 1] : Value());
      loop.set("nextitem", i + 1 < items.size() ? items[i + 1] : Value());
      try {
        scope->set("loop", Value::object(std::move(loop)));
      } catch (const FunctionError& e) {
        fail(n, e.message);
      }
      bind(var, items[i], *scope);
      std::string body;
      const Flow f = block(n.list, scope, body);
      if (f == Flow::Continue) continue;
      if (f == Flow::Break) break;
      out += body;
      check_string(n, out);
      no_iteration = false;
    }
    return no_iteration ? block(n.list2, scope, out) : Flow::Normal;
  }

  Flow exec_set(const Node& n, const EnvPtr& env) {
    Value rhs;
    if (n.b) {
      rhs = eval(*n.b, env);
    } else {
      std::string body;
      if (const Flow f = block(n.list, env, body); f != Flow::Normal) return f;
      rhs = Value::string(std::move(body));
    }
    const Node& t = *n.a;
    if (t.kind == NodeKind::Identifier) {
      env->set(t.str, std::move(rhs));
    } else if (t.kind == NodeKind::TupleLiteral) {
      if (!rhs.is_list()) fail(n, std::string("cannot unpack ") + rhs.type_name() + " in {% set %}");
      if (rhs.items().size() != t.list.size())
        fail(n, std::string("too ") + (t.list.size() > rhs.items().size() ? "few" : "many") + " items to unpack in {% set %}");
      for (size_t i = 0; i < t.list.size(); ++i) {
        if (t.list[i]->kind != NodeKind::Identifier) fail(*t.list[i], "cannot unpack into this in {% set %}: expected a name");
        env->set(t.list[i]->str, rhs.items()[i]);
      }
    } else if (t.kind == NodeKind::Member) {
      const Value obj = eval(*t.a, env);
      if (!obj.is(Type::Namespace)) fail(t, std::string("{% set x.attr %} needs a namespace(), not ") + obj.type_name());
      if (t.b->kind != NodeKind::Identifier) fail(t, "{% set %} of a namespace attribute needs a name after '.'");
      obj.attributes().set(t.b->str, std::move(rhs));
    } else {
      fail(t, "{% set %} assigns to a name, names, or a namespace attribute");
    }
    return Flow::Normal;
  }

  void define_macro(const Node& n, const EnvPtr& env) {
    std::weak_ptr<Env> home = env;
    const Node* node = &n;
    env->set(n.str, Value::function([this, home, node](const CallArgs& a) -> Value {
      EnvPtr parent = home.lock();
      if (!parent) raise("macro '" + node->str + "' is called outside the scope it was defined in");
      if (call_depth_ >= lim_.max_call_depth) raise("macros call each other more than " + std::to_string(lim_.max_call_depth) + " deep");
      auto scope = std::make_shared<Env>(parent);
      std::vector<std::pair<std::string, const Node*>> defaults;
      std::vector<std::pair<std::string, Value>> kw = a.keyword;
      for (size_t i = 0; i < node->list.size(); ++i) {
        const Node& p = *node->list[i];
        const std::string& name = p.str;
        Value v;
        bool given = false;
        if (i < a.positional.size()) {
          v = a.positional[i];
          given = true;
        } else {
          for (auto it = kw.begin(); it != kw.end(); ++it)
            if (it->first == name) {
              v = it->second;
              given = true;
              kw.erase(it);
              break;
            }
        }
        if (!given && p.kind == NodeKind::KeywordArgument) defaults.emplace_back(name, p.a.get());
        scope->set(name, v);
      }
      if (!kw.empty()) raise("macro '" + node->str + "' takes no keyword argument '" + kw.front().first + "'");
      if (a.positional.size() > node->list.size())
        raise("macro '" + node->str + "' takes not more than " + std::to_string(node->list.size()) + " argument(s)");
      ++call_depth_;
      struct Depth {
        int& d;
        ~Depth() { --d; }
      } guard{call_depth_};
      for (const auto& [name, expr] : defaults) scope->set(name, eval(*expr, scope));
      std::string out;
      if (block(node->list2, scope, out) != Flow::Normal) fail(*node, "'{% break %}' or '{% continue %}' outside a loop in a macro");
      return Value::string(std::move(out));
    }));
  }

  // ---- expressions ----

  Value eval(const Node& n, const EnvPtr& env) {
    step(n);
    const Nesting nest(*this, n);
    try {
      return eval_inner(n, env);
    } catch (const FunctionError& e) {
      fail(n, e.message);
    }
  }

  Value eval_inner(const Node& n, const EnvPtr& env) {
    switch (n.kind) {
      case NodeKind::Identifier: {
        const Value* v = env->lookup(n.str);
        return v ? *v : Value();
      }
      case NodeKind::IntegerLiteral: return Value::integer(n.num);
      case NodeKind::FloatLiteral: return Value::floating(n.num);
      case NodeKind::StringLiteral: return Value::string(n.str);
      case NodeKind::ArrayLiteral:
      case NodeKind::TupleLiteral: {
        std::vector<Value> items;
        for (const NodePtr& e : n.list) items.push_back(eval(*e, env));
        return n.kind == NodeKind::ArrayLiteral ? Value::array(std::move(items)) : Value::tuple(std::move(items));
      }
      case NodeKind::ObjectLiteral: {
        Object o;
        for (size_t i = 0; i < n.list.size(); ++i) {
          const Value k = eval(*n.list[i], env);
          if (!k.is(Type::String)) fail(*n.list[i], std::string("mapping keys must be strings, not ") + k.type_name());
          o.set(k.as_string(), eval(*n.list2[i], env));
        }
        return Value::object(std::move(o));
      }
      case NodeKind::Member: return member(n, env);
      case NodeKind::Call: return call(n, env);
      case NodeKind::Binary: return binary(n, env);
      case NodeKind::Unary: {
        const Value v = eval(*n.a, env);
        if (n.str == "not") return Value::boolean(!v.truthy());
        const double sign = n.str == "-" ? -1 : 1;
        if (v.is_number()) return v.is(Type::Float) ? Value::floating(sign * v.as_number()) : Value::integer(sign * v.as_number());
        if (v.is(Type::Boolean)) return Value::integer(sign * (v.as_bool() ? 1 : 0));
        fail(n, "unary '" + n.str + "' needs a number, not " + v.type_name());
      }
      case NodeKind::Filter: return filter(eval(*n.a, env), *n.b, env);
      case NodeKind::Test: return Value::boolean(test(n, eval(*n.a, env)) != n.flag);
      case NodeKind::Select: return eval(*n.b, env).truthy() ? eval(*n.a, env) : Value();
      case NodeKind::Ternary: return eval(*n.a, env).truthy() ? eval(*n.b, env) : eval(*n.c, env);
      case NodeKind::KeywordArgument: fail(n, "a keyword argument (name=value) outside a call");
      case NodeKind::Slice: fail(n, "a slice outside '[...]'");
      default: fail(n, "a statement where an expression was expected");
    }
  }

  static std::string describe_callee(const Node& callee) {
    if (callee.kind == NodeKind::Identifier) return "'" + callee.str + "'";
    if (callee.kind == NodeKind::Member && !callee.flag && callee.b->kind == NodeKind::Identifier) return "'." + callee.b->str + "'";
    return "this";
  }

  CallArgs arguments(const std::vector<NodePtr>& args, const EnvPtr& env) {
    CallArgs a;
    for (const NodePtr& arg : args) {
      if (arg->kind == NodeKind::KeywordArgument) {
        if (a.kw(arg->str)) fail(*arg, "keyword argument '" + arg->str + "' is given twice");
        a.keyword.emplace_back(arg->str, eval(*arg->a, env));
      } else {
        a.positional.push_back(eval(*arg, env));
      }
    }
    return a;
  }

  Value call(const Node& n, const EnvPtr& env) {
    const CallArgs a = arguments(n.list, env);
    const Value fn = eval(*n.a, env);
    if (!fn.is(Type::Function)) fail(n, "cannot call " + describe_callee(*n.a) + ": it is " + fn.type_name());
    Value r = fn.call()(a);
    if (r.is(Type::String)) check_string(n, r.as_string());
    if (r.is_list()) check_list(n, r.items().size());
    return r;
  }

  Value member(const Node& n, const EnvPtr& env) {
    const Value obj = eval(*n.a, env);
    Value prop;
    if (n.flag) {
      if (n.b->kind == NodeKind::Slice) return slice(n, obj, env);
      prop = eval(*n.b, env);
    } else if (n.b->kind == NodeKind::IntegerLiteral) {
      prop = Value::integer(n.b->num);
    } else {
      prop = Value::string(n.b->str);
    }
    if (obj.has_attributes()) {
      if (!prop.is(Type::String)) fail(n, std::string("the attribute of ") + obj.type_name() + " must be a string, not " + prop.type_name());
      if (const Value* v = obj.attributes().find(prop.as_string())) return *v;
      return obj.is_mapping() ? mapping_method(obj, prop.as_string()) : Value();
    }
    if (obj.is_list() || obj.is(Type::String)) {
      if (prop.is(Type::Integer)) {
        if (obj.is_list()) {
          double i = std::trunc(prop.as_number());
          const double len = double(obj.items().size());
          if (i < 0) i += len;
          return i >= 0 && i < len ? obj.items()[size_t(i)] : Value();
        }
        return string_index(n, obj.as_string(), prop.as_number());
      }
      if (prop.is(Type::String)) {
        if (obj.is_list()) return prop.as_string() == "length" ? Value::integer(double(obj.items().size())) : Value();
        return string_method(obj.as_string(), prop.as_string());
      }
      fail(n, std::string("the index of ") + obj.type_name() + " must be an integer or a name, not " + prop.type_name());
    }
    if (!prop.is(Type::String)) fail(n, std::string("cannot index ") + obj.type_name() + " with " + prop.type_name());
    return Value();  // other types have no attributes: undefined
  }

  // JavaScript's str.at(i): UTF-16 code units.
  Value string_index(const Node& n, const std::string& s, double i) {
    const double len = double(utf16_length(s));
    i = std::trunc(i);
    if (i < 0) i += len;
    if (i < 0 || i >= len) return Value();
    double unit = 0;
    for (size_t p = 0; p < s.size();) {
      const size_t start = p;
      const uint32_t cp = utf8_next(s, p);
      const double units = cp > 0xFFFF ? 2 : 1;
      if (i < unit + units) {
        if (units == 2) fail(n, "indexing into half of a character beyond U+FFFF (a UTF-16 surrogate) is not supported");
        return Value::string(s.substr(start, p - start));
      }
      unit += units;
    }
    return Value();
  }

  Value slice(const Node& n, const Value& obj, const EnvPtr& env) {
    if (!obj.is_list() && !obj.is(Type::String)) fail(n, std::string("cannot slice ") + obj.type_name());
    const Node& s = *n.b;
    Value parts[3];
    const Node* nodes[3] = {s.a.get(), s.b.get(), s.c.get()};
    const char* names[3] = {"start", "stop", "step"};
    for (int k = 0; k < 3; ++k) {
      if (nodes[k]) parts[k] = eval(*nodes[k], env);
      if (!parts[k].is(Type::Integer) && !parts[k].is_undefined())
        fail(n, std::string("slice ") + names[k] + " must be an integer, not " + parts[k].type_name());
    }
    if (obj.is_list()) {
      std::vector<Value> out;
      for (size_t i : slice_indices(obj.items().size(), parts[0], parts[1], parts[2])) out.push_back(obj.items()[i]);
      return Value::array(std::move(out));
    }
    const std::vector<std::string> cps = code_points(obj.as_string());
    std::string out;
    for (size_t i : slice_indices(cps.size(), parts[0], parts[1], parts[2])) out += cps[i];
    return Value::string(std::move(out));
  }

  Value binary(const Node& n, const EnvPtr& env) {
    const std::string& op = n.str;
    const Value left = eval(*n.a, env);
    if (op == "and") return left.truthy() ? eval(*n.b, env) : left;
    if (op == "or") return left.truthy() ? left : eval(*n.b, env);
    const Value right = eval(*n.b, env);
    if (op == "==") return Value::boolean(loose_equals(left, right));
    if (op == "!=") return Value::boolean(!loose_equals(left, right));
    auto unknown = [&]() -> Value {
      fail(n, "operator '" + op + "' does not apply to " + left.type_name() + " and " + right.type_name());
    };
    if (left.is_number() && right.is_number() && op != "~" && op != "**") {
      const double a = left.as_number(), b = right.as_number();
      const bool is_float = left.is(Type::Float) || right.is(Type::Float);
      auto num = [&](double r) { return is_float ? Value::floating(r) : Value::integer(r); };
      if (op == "+") return num(a + b);
      if (op == "-") return num(a - b);
      if (op == "*") return num(a * b);
      if (op == "/") return Value::floating(a / b);
      if (op == "//") return num(std::floor(a / b));
      if (op == "%") return num(std::fmod(a, b));
      if (op == "<") return Value::boolean(a < b);
      if (op == ">") return Value::boolean(a > b);
      if (op == "<=") return Value::boolean(a <= b);
      if (op == ">=") return Value::boolean(a >= b);
    } else if (left.is_undefined() || right.is_undefined()) {
      if (right.is_undefined() && (op == "in" || op == "not in")) return Value::boolean(op == "not in");
      if (op == "~" && !left.is_none() && !right.is_none()) {
        std::string s = (left.is_undefined() ? "" : left.to_js_string()) + (right.is_undefined() ? "" : right.to_js_string());
        check_string(n, s);
        return Value::string(std::move(s));
      }
      fail(n, "operator '" + op + "' on an undefined value" + undefined_hint(left.is_undefined() ? *n.a : *n.b));
    } else if (left.is_none() || right.is_none()) {
      fail(n, "operator '" + op + "' on a none value");
    } else if (op == "~") {
      std::string s = left.to_js_string() + right.to_js_string();
      check_string(n, s);
      return Value::string(std::move(s));
    } else if (op == "**" && (left.is_number() || left.is(Type::Boolean)) && (right.is_number() || right.is(Type::Boolean))) {
      const double a = left.is(Type::Boolean) ? double(left.as_bool()) : left.as_number();
      const double b = right.is(Type::Boolean) ? double(right.as_bool()) : right.as_number();
      if (a == 0 && b < 0) fail(n, "0.0 cannot be raised to a negative power");
      const double r = std::pow(a, b);
      if (!std::isfinite(r)) fail(n, "exponentiation result is not a finite real number");
      return (left.is(Type::Float) || right.is(Type::Float) || b < 0) ? Value::floating(r) : Value::integer(r);
    } else if (left.is_list() && right.is_list()) {
      if (op == "+") {
        check_list(n, left.items().size() + right.items().size());
        std::vector<Value> items = left.items();
        items.insert(items.end(), right.items().begin(), right.items().end());
        return Value::array(std::move(items));
      }
    } else if (right.is_list()) {
      if (op == "in" || op == "not in") {
        bool found = false;
        for (const Value& x : right.items())
          if (strict_equals(x, left)) {
            found = true;
            break;
          }
        return Value::boolean(found == (op == "in"));
      }
    }
    if ((left.is(Type::String) || right.is(Type::String)) && op == "+") {
      std::string s = left.to_js_string() + right.to_js_string();
      check_string(n, s);
      return Value::string(std::move(s));
    }
    if (left.is(Type::String) && right.is(Type::String) && (op == "in" || op == "not in"))
      return Value::boolean((right.as_string().find(left.as_string()) != std::string::npos) == (op == "in"));
    if (left.is(Type::String) && right.is_mapping() && (op == "in" || op == "not in"))
      return Value::boolean((right.attributes().find(left.as_string()) != nullptr) == (op == "in"));
    return unknown();
  }

  static std::string undefined_hint(const Node& operand) {
    if (operand.kind == NodeKind::Identifier) return " ('" + operand.str + "' is not defined)";
    if (operand.kind == NodeKind::Member && !operand.flag && operand.b->kind == NodeKind::Identifier)
      return " (no attribute '" + operand.b->str + "')";
    return "";
  }

  bool test(const Node& n, const Value& v) {
    const std::string& t = n.str;
    if (t == "boolean") return v.is(Type::Boolean);
    if (t == "callable") return v.is(Type::Function);
    if (t == "odd" || t == "even") {
      if (!v.is(Type::Integer)) fail(n, "test '" + t + "' needs an integer, not " + v.type_name());
      const bool odd = std::fmod(v.as_number(), 2) != 0;
      return t == "odd" ? odd : !odd;
    }
    if (t == "false") return v.is(Type::Boolean) && !v.as_bool();
    if (t == "true") return v.is(Type::Boolean) && v.as_bool();
    if (t == "none") return v.is_none();
    if (t == "string") return v.is(Type::String);
    if (t == "number") return v.is_number();
    if (t == "integer") return v.is(Type::Integer);
    if (t == "iterable") return v.is(Type::Array) || v.is(Type::String);
    if (t == "mapping") return v.is_mapping();
    if (t == "sequence") return v.is_list() || v.is_mapping() || v.is(Type::String);
    if (t == "lower") return v.is(Type::String) && v.as_string() == js_lower(v.as_string());
    if (t == "upper") return v.is(Type::String) && v.as_string() == js_upper(v.as_string());
    if (t == "defined") return !v.is_undefined();
    if (t == "undefined") return v.is_undefined();
    if (t == "equalto" || t == "eq") return v.is_undefined() || v.is_none();  // without an argument: === undefined
    fail(n, "unknown test '" + t + "'");
  }

  // A test by name, for selectattr / rejectattr (which pass a second argument).
  bool named_test(const Node& n, const std::string& t, const Value& a, const Value& b) {
    if (t == "equalto" || t == "eq") return strict_equals(a, b);
    Node probe(NodeKind::Test, n.pos);
    probe.str = t;
    return test(probe, a);
  }

  static bool known_filter(const std::string& name) {
    static const char* const kNames[] = {"safe", "tojson", "list", "first", "last", "length", "reverse", "sort", "join",
                                         "string", "unique", "upper", "lower", "title", "capitalize", "trim", "indent",
                                         "int", "float", "abs", "items", "bool", "default", "selectattr", "rejectattr",
                                         "map", "replace", "get", "keys", "values", "dictsort"};
    for (const char* k : kNames)
      if (name == k) return true;
    return false;
  }

  Value filter(const Value& v, const Node& f, const EnvPtr& env) {
    const Node& name = f.kind == NodeKind::Call ? *f.a : f;
    if (name.kind == NodeKind::Identifier && !known_filter(name.str)) fail(name, "unknown filter '" + name.str + "'");
    if (f.kind == NodeKind::Identifier) return filter_by_name(v, f);
    if (f.kind != NodeKind::Call || f.a->kind != NodeKind::Identifier) fail(f, "a filter must be a name or a call of a name");
    return filter_call(v, f, env);
  }

  Value filter_by_name(const Value& v, const Node& f) {
    const std::string& name = f.str;
    if (name == "safe") return v;
    if (name == "tojson") return Value::string(v.to_json({}));
    if (v.is_list()) {
      const auto& items = v.items();
      if (name == "list") return v;
      if (name == "first") return items.empty() ? Value() : items.front();
      if (name == "last") return items.empty() ? Value() : items.back();
      if (name == "length") return Value::integer(double(items.size()));
      if (name == "reverse") return Value::array(std::vector<Value>(items.rbegin(), items.rend()));
      if (name == "sort") {
        std::vector<Value> sorted = items;
        merge_sort(sorted, [](const Value& a, const Value& b) { return compare_values(a, b, false) < 0; });
        return Value::array(std::move(sorted));
      }
      if (name == "join") return Value::string(join(items, ""));
      if (name == "string") return Value::string(v.to_json({}, 0, false));
      if (name == "unique") {
        std::vector<Value> out;
        for (const Value& x : items) {
          bool seen = false;
          for (const Value& y : out)
            if (strict_equals(x, y) || (x.is_number() && y.is_number() && std::isnan(x.as_number()) && std::isnan(y.as_number()))) {
              seen = true;
              break;
            }
          if (!seen) out.push_back(x);
        }
        return Value::array(std::move(out));
      }
      fail(f, "unknown filter '" + name + "' for a list");
    }
    if (v.is(Type::String)) {
      const std::string& s = v.as_string();
      if (name == "length") return Value::integer(double(utf16_length(s)));
      if (name == "upper") return Value::string(js_upper(s));
      if (name == "lower") return Value::string(js_lower(s));
      if (name == "title") return Value::string(js_title(s));
      if (name == "capitalize") return Value::string(js_capitalize(s));
      if (name == "trim") return Value::string(std::string(js_trim_end(js_trim_start(s))));
      if (name == "indent") return Value::string(indent(s, "    ", false, false));
      if (name == "join" || name == "string") return v;
      if (name == "int") {
        const double x = js_parse_int(s);
        return Value::integer(std::isnan(x) ? 0 : x);
      }
      if (name == "float") {
        const double x = js_parse_float(s);
        return Value::floating(std::isnan(x) ? 0 : x);
      }
      fail(f, "unknown filter '" + name + "' for a string");
    }
    if (v.is_number()) {
      if (name == "abs") return v.is(Type::Integer) ? Value::integer(std::fabs(v.as_number())) : Value::floating(std::fabs(v.as_number()));
      if (name == "int") return Value::integer(std::trunc(v.as_number()) + 0.0);
      if (name == "float") return Value::floating(v.as_number());
      if (name == "string") return Value::string(v.to_output());
      fail(f, "unknown filter '" + name + "' for a number");
    }
    if (v.is_mapping()) {
      if (name == "items") return key_value_pairs(v.attributes());
      if (name == "length") return Value::integer(double(v.attributes().items.size()));
      const Value m = mapping_method(v, name);
      if (m.is(Type::Function)) return m.call()(CallArgs{});
      fail(f, "unknown filter '" + name + "' for a mapping");
    }
    if (v.is(Type::Boolean)) {
      if (name == "bool") return v;
      if (name == "int") return Value::integer(v.as_bool() ? 1 : 0);
      if (name == "float") return Value::floating(v.as_bool() ? 1 : 0);
      if (name == "string") return Value::string(v.as_bool() ? "true" : "false");
      fail(f, "unknown filter '" + name + "' for a boolean");
    }
    fail(f, "filter '" + name + "' does not apply to " + v.type_name());
  }

  static std::string join(const std::vector<Value>& items, const std::string& sep) {
    std::string out;
    for (size_t i = 0; i < items.size(); ++i) {
      if (i) out += sep;
      if (!items[i].is_none() && !items[i].is_undefined()) out += items[i].to_js_string();
    }
    return out;
  }

  static std::string indent(const std::string& s, const std::string& pad, bool first, bool blank) {
    std::string out;
    size_t start = 0;
    for (size_t line = 0;; ++line) {
      const size_t nl = s.find('\n', start);
      const std::string part = s.substr(start, nl == std::string::npos ? std::string::npos : nl - start);
      out += ((!first && line == 0) || (!blank && part.empty())) ? part : pad + part;
      if (nl == std::string::npos) break;
      out += "\n";
      start = nl + 1;
    }
    return out;
  }

  Value filter_call(const Value& v, const Node& f, const EnvPtr& env) {
    const std::string& name = f.a->str;
    if (name == "tojson") {
      const CallArgs a = arguments(f.list, env);
      Value::JsonOptions opt;
      if (const Value* x = a.kw("indent"); x && !x->is_none()) {
        if (!x->is(Type::Integer)) fail(f, "tojson: indent must be an integer");
        opt.indent = int(std::max(-1.0, std::min(x->as_number(), 1000.0)));
      }
      if (const Value* x = a.kw("ensure_ascii")) {
        if (!x->is(Type::Boolean)) fail(f, "tojson: ensure_ascii must be a boolean");
        opt.ensure_ascii = x->as_bool();
      }
      if (const Value* x = a.kw("sort_keys")) {
        if (!x->is(Type::Boolean)) fail(f, "tojson: sort_keys must be a boolean");
        opt.sort_keys = x->as_bool();
      }
      if (const Value* x = a.kw("separators"); x && !x->is_none()) {
        if (!x->is_list() || x->items().size() != 2 || !x->items()[0].is(Type::String) || !x->items()[1].is(Type::String))
          fail(f, "tojson: separators must be a tuple of two strings");
        opt.separators = std::make_pair(x->items()[0].as_string(), x->items()[1].as_string());
      }
      return Value::string(v.to_json(opt));
    }
    if (name == "join") {
      std::vector<Value> items;
      if (v.is(Type::String)) {
        for (auto& c : code_points(v.as_string())) items.push_back(Value::string(std::move(c)));
      } else if (v.is_list()) {
        items = v.items();
      } else {
        fail(f, std::string("filter 'join' does not apply to ") + v.type_name());
      }
      const CallArgs a = arguments(f.list, env);
      const Value* sep = positional_or_keyword(a, 0, "separator");
      if (sep && !sep->is(Type::String)) fail(f, "join: the separator must be a string");
      std::string s = join(items, sep ? sep->as_string() : "");
      check_string(f, s);
      return Value::string(std::move(s));
    }
    if (name == "int" || name == "float") {
      const CallArgs a = arguments(f.list, env);
      const bool is_int = name == "int";
      const Value* d = positional_or_keyword(a, 0, "default");
      const Value dflt = d ? *d : (is_int ? Value::integer(0) : Value::floating(0));
      if (v.is(Type::String)) {
        const double x = is_int ? js_parse_int(v.as_string()) : js_parse_float(v.as_string());
        return std::isnan(x) ? dflt : (is_int ? Value::integer(x) : Value::floating(x));
      }
      if (v.is_number()) return is_int ? Value::integer(std::trunc(v.as_number()) + 0.0) : Value::floating(v.as_number());
      if (v.is(Type::Boolean)) return is_int ? Value::integer(v.as_bool()) : Value::floating(v.as_bool());
      fail(f, "filter '" + name + "' does not apply to " + v.type_name());
    }
    if (name == "default") {
      const CallArgs a = arguments(f.list, env);
      const Value dflt = a.positional.size() > 0 ? a.positional[0] : Value::string("");
      const Value* b = a.positional.size() > 1 ? &a.positional[1] : a.kw("boolean");
      if (b && !b->is(Type::Boolean)) fail(f, "default: the boolean flag must be a boolean");
      if (v.is_undefined() || (b && b->as_bool() && !v.truthy())) return dflt;
      return v;
    }
    if (v.is_list()) {
      if (name == "sort") {
        const CallArgs a = arguments(f.list, env);
        const bool reverse = bool_arg(a, 0, "reverse", false);
        const bool case_sensitive = bool_arg(a, 1, "case_sensitive", false);
        const Value* attr = positional_or_keyword(a, 2, "attribute");
        if (attr && !attr->is(Type::String) && !attr->is(Type::Integer) && !attr->is_none())
          fail(f, "sort: attribute must be a string, an integer or none");
        const bool by_attr = attr && !attr->is_none();
        const std::string path = by_attr ? (attr->is(Type::String) ? attr->as_string() : js_number(attr->as_number())) : "";
        std::vector<Value> sorted = v.items();
        merge_sort(sorted, [&](const Value& x, const Value& y) {
          const int c = by_attr ? compare_values(attribute_path(x, path), attribute_path(y, path), case_sensitive)
                                : compare_values(x, y, case_sensitive);
          return reverse ? c > 0 : c < 0;
        });
        return Value::array(std::move(sorted));
      }
      if (name == "selectattr" || name == "rejectattr") {
        const bool select = name == "selectattr";
        for (const Value& item : v.items())
          if (!item.has_attributes()) fail(f, name + " applies to a list of mappings only");
        for (const NodePtr& arg : f.list)
          if (arg->kind != NodeKind::StringLiteral) fail(*arg, "the arguments of " + name + " must be strings");
        if (f.list.empty()) fail(f, name + " needs the name of an attribute");
        const std::string attr = f.list[0]->str;
        const std::string test_name = f.list.size() > 1 ? f.list[1]->str : "";
        const Value value = f.list.size() > 2 ? Value::string(f.list[2]->str) : Value();
        std::vector<Value> out;
        for (const Value& item : v.items()) {
          const Value* x = item.attributes().find(attr);
          const bool r = x ? (test_name.empty() ? x->truthy() : named_test(f, test_name, *x, value)) : false;
          if (r == select) out.push_back(item);
        }
        return Value::array(std::move(out));
      }
      if (name == "map") {
        const CallArgs a = arguments(f.list, env);
        const Value* attr = a.kw("attribute");
        if (!attr) fail(f, "map is supported with attribute= only");
        if (!attr->is(Type::String)) fail(f, "map: attribute must be a string");
        const Value* dflt = a.kw("default");
        std::vector<Value> out;
        for (const Value& item : v.items()) {
          if (!item.has_attributes()) fail(f, "map: the items must be mappings");
          Value x = attribute_path(item, attr->as_string());
          out.push_back(x.is_undefined() && dflt ? *dflt : x);
        }
        return Value::array(std::move(out));
      }
      fail(f, "unknown filter '" + name + "' for a list");
    }
    if (v.is(Type::String)) {
      if (name == "indent") {
        const CallArgs a = arguments(f.list, env);
        const Value* w = positional_or_keyword(a, 0, "width");
        std::string pad = "    ";
        if (w) {
          if (w->is(Type::String)) pad = w->as_string();
          else if (w->is(Type::Integer)) pad = std::string(size_t(std::max(0.0, std::min(w->as_number(), 1e6))), ' ');
          else fail(f, "indent: width must be an integer or a string");
        }
        const Value* first = positional_or_keyword(a, 1, "first");
        const Value* blank = positional_or_keyword(a, 2, "blank");
        std::string s = indent(v.as_string(), pad, first && first->truthy(), blank && blank->truthy());
        check_string(f, s);
        return Value::string(std::move(s));
      }
      if (name == "replace") {
        CallArgs a = arguments(f.list, env);
        std::string s = string_method(v.as_string(), "replace").call()(a).as_string();
        check_string(f, s);
        return Value::string(std::move(s));
      }
      fail(f, "unknown filter '" + name + "' for a string");
    }
    if (v.is_mapping()) {
      const Value m = mapping_method(v, name);
      if (m.is(Type::Function)) return m.call()(arguments(f.list, env));
      fail(f, "unknown filter '" + name + "' for a mapping");
    }
    fail(f, "filter '" + name + "' does not apply to " + v.type_name());
  }

  const TemplateSource& src_;
  const RenderLimits lim_;
  EnvPtr global_;
  uint64_t steps_ = 0;
  int call_depth_ = 0;
  int nesting_ = 0;
  std::vector<std::weak_ptr<Object>> namespaces_;
};

}  // namespace

std::string render(const TemplateSource& src, const Node& program,
                   const std::vector<std::pair<std::string, Value>>& variables, const RenderLimits& limits) {
  Interpreter interp(src, limits);
  return interp.run(program, variables);
}

}  // namespace moe::text::jinja
