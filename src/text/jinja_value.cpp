#include "text/jinja_value.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "text/utf8.h"

namespace moe::text::jinja {

namespace {
constexpr int kMaxValueDepth = 256;  // nesting of lists and mappings (deeper: an error, not a deep recursion)

int depth_of(const Value& v);

int depth_of_items(const std::vector<Value>& items) {
  int d = 0;
  for (const Value& v : items) d = std::max(d, depth_of(v));
  return d + 1;
}
}  // namespace

const Value* Object::find(std::string_view key) const {
  for (const auto& [k, v] : items)
    if (k == key) return &v;
  return nullptr;
}

void Object::set(const std::string& key, Value v) {
  for (auto& [k, old] : items)
    if (k == key) {
      old = std::move(v);
      return;
    }
  items.emplace_back(key, std::move(v));
}

const Value* CallArgs::kw(std::string_view name) const {
  for (const auto& [k, v] : keyword)
    if (k == name) return &v;
  return nullptr;
}

Value Value::null() {
  Value v;
  v.type_ = Type::Null;
  return v;
}
Value Value::boolean(bool b) {
  Value v;
  v.type_ = Type::Boolean;
  v.b_ = b;
  return v;
}
Value Value::integer(double n) {
  Value v;
  v.type_ = Type::Integer;
  v.n_ = n;
  return v;
}
Value Value::floating(double n) {
  Value v;
  v.type_ = Type::Float;
  v.n_ = n;
  return v;
}
Value Value::number(double n) { return std::isfinite(n) && std::trunc(n) == n ? integer(n) : floating(n); }
Value Value::string(std::string s) {
  Value v;
  v.type_ = Type::String;
  v.s_ = std::move(s);
  return v;
}
Value Value::array(std::vector<Value> items) {
  Value v;
  v.type_ = Type::Array;
  v.depth_ = depth_of_items(items);
  if (v.depth_ > kMaxValueDepth) throw FunctionError{"lists nest deeper than " + std::to_string(kMaxValueDepth) + " levels"};
  v.list_ = std::make_shared<std::vector<Value>>(std::move(items));
  return v;
}
Value Value::tuple(std::vector<Value> items) {
  Value v = array(std::move(items));
  v.type_ = Type::Tuple;
  return v;
}
Value Value::object(Object o) {
  Value v;
  v.type_ = Type::Object;
  int d = 0;
  for (const auto& kv : o.items) d = std::max(d, depth_of(kv.second));
  v.depth_ = d + 1;
  if (v.depth_ > kMaxValueDepth) throw FunctionError{"mappings nest deeper than " + std::to_string(kMaxValueDepth) + " levels"};
  v.object_ = std::make_shared<Object>(std::move(o));
  return v;
}
Value Value::namespace_(Object o) {
  Value v;
  v.type_ = Type::Namespace;
  v.depth_ = 1;
  v.object_ = std::make_shared<Object>(std::move(o));
  return v;
}
Value Value::function(Function f) {
  Value v;
  v.type_ = Type::Function;
  v.fn_ = std::make_shared<Function>(std::move(f));
  return v;
}

namespace {
int depth_of(const Value& v) {
  return v.depth();
}
}  // namespace

Value Value::from_json(const nlohmann::ordered_json& j) {
  switch (j.type()) {
    case nlohmann::ordered_json::value_t::null: return null();
    case nlohmann::ordered_json::value_t::boolean: return boolean(j.get<bool>());
    case nlohmann::ordered_json::value_t::number_integer: return integer(double(j.get<int64_t>()));
    case nlohmann::ordered_json::value_t::number_unsigned: return integer(double(j.get<uint64_t>()));
    case nlohmann::ordered_json::value_t::number_float: return number(j.get<double>());
    case nlohmann::ordered_json::value_t::string: return string(j.get<std::string>());
    case nlohmann::ordered_json::value_t::array: {
      std::vector<Value> items;
      items.reserve(j.size());
      for (const auto& e : j) items.push_back(from_json(e));
      return array(std::move(items));
    }
    case nlohmann::ordered_json::value_t::object: {
      Object o;
      for (const auto& [k, e] : j.items()) o.set(k, from_json(e));
      return object(std::move(o));
    }
    default: throw FunctionError{"a JSON value of this kind (binary) cannot be a template variable"};
  }
}

const void* Value::identity() const {
  if (list_) return list_.get();
  if (object_) return object_.get();
  if (fn_) return fn_.get();
  return nullptr;
}

bool Value::truthy() const {
  switch (type_) {
    case Type::Undefined:
    case Type::Null: return false;
    case Type::Boolean: return b_;
    case Type::Integer:
    case Type::Float: return n_ != 0 && !std::isnan(n_);
    case Type::String: return !s_.empty();
    case Type::Array:
    case Type::Tuple: return !list_->empty();
    case Type::Object: return !object_->items.empty();
    case Type::Namespace:
    case Type::Function: return true;
  }
  return false;
}

const char* Value::type_name() const {
  switch (type_) {
    case Type::Undefined: return "undefined";
    case Type::Null: return "none";
    case Type::Boolean: return "a boolean";
    case Type::Integer: return "an integer";
    case Type::Float: return "a float";
    case Type::String: return "a string";
    case Type::Array: return "a list";
    case Type::Tuple: return "a tuple";
    case Type::Object: return "a mapping";
    case Type::Namespace: return "a namespace";
    case Type::Function: return "a function";
  }
  return "value";
}

std::string js_number(double x) {
  if (std::isnan(x)) return "NaN";
  if (x == 0) return "0";
  if (std::isinf(x)) return x < 0 ? "-Infinity" : "Infinity";
  if (x < 0) return "-" + js_number(-x);
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  const std::string sci(buf, res.ptr);  // d.ddde+XX (shortest round trip)
  const size_t e = sci.find('e');
  std::string digits = sci.substr(0, 1) + (e > 2 ? sci.substr(2, e - 2) : "");
  const int exp10 = std::atoi(sci.c_str() + e + 1);
  const int k = int(digits.size());
  const int n = exp10 + 1;  // the decimal point sits after n digits
  if (k <= n && n <= 21) return digits + std::string(size_t(n - k), '0');
  if (0 < n && n <= 21) return digits.substr(0, size_t(n)) + "." + digits.substr(size_t(n));
  if (-6 < n && n <= 0) return std::string("0.").append(size_t(-n), '0') + digits;
  const std::string e_part = std::string("e") + (n - 1 >= 0 ? "+" : "-") + std::to_string(std::abs(n - 1));
  if (k == 1) return digits + e_part;
  return digits.substr(0, 1) + "." + digits.substr(1) + e_part;
}

double js_string_to_number(std::string_view s) {
  s = js_trim_end(js_trim_start(s));
  if (s.empty()) return 0;
  const std::string t(s);
  if (t.size() > 2 && t[0] == '0' && (t[1] == 'x' || t[1] == 'X' || t[1] == 'o' || t[1] == 'O' || t[1] == 'b' || t[1] == 'B')) {
    const int base = (t[1] == 'x' || t[1] == 'X') ? 16 : (t[1] == 'o' || t[1] == 'O') ? 8 : 2;
    double v = 0;
    for (size_t i = 2; i < t.size(); ++i) {
      const char c = t[i];
      int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10 : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : 99;
      if (d >= base) return NAN;
      v = v * base + d;
    }
    return v;
  }
  size_t i = 0;
  if (t[i] == '+' || t[i] == '-') ++i;
  if (t.compare(i, std::string::npos, "Infinity") == 0) return t[0] == '-' ? -INFINITY : INFINITY;
  // StrDecimalLiteral: digits [. digits] | . digits, then an optional exponent.
  size_t j = i, int_digits = 0, frac_digits = 0;
  while (j < t.size() && t[j] >= '0' && t[j] <= '9') ++j, ++int_digits;
  if (j < t.size() && t[j] == '.') {
    ++j;
    while (j < t.size() && t[j] >= '0' && t[j] <= '9') ++j, ++frac_digits;
  }
  if (int_digits + frac_digits == 0) return NAN;
  if (j < t.size() && (t[j] == 'e' || t[j] == 'E')) {
    size_t k = j + 1;
    if (k < t.size() && (t[k] == '+' || t[k] == '-')) ++k;
    size_t exp_digits = 0;
    while (k < t.size() && t[k] >= '0' && t[k] <= '9') ++k, ++exp_digits;
    if (exp_digits == 0) return NAN;
    j = k;
  }
  if (j != t.size()) return NAN;
  return std::strtod(t.c_str(), nullptr);
}

std::string json_quote(std::string_view s) {
  std::string out = "\"";
  for (const char ch : s) {
    const unsigned char c = static_cast<unsigned char>(ch);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (c < 0x20) {
          char buf[16];
          std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(c));
          out += buf;
        } else {
          out.push_back(ch);
        }
    }
  }
  out += "\"";
  return out;
}

namespace {
// ensure_ascii: every UTF-16 code unit from U+007F up becomes \uXXXX.
std::string ascii_safe(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const uint32_t cp = utf8_next(s, i);
    auto esc = [&](uint32_t u) {
      char buf[16];
      std::snprintf(buf, sizeof buf, "\\u%04x", unsigned(u));
      out += buf;
    };
    if (cp < 0x7F) {
      out.push_back(char(cp));
    } else if (cp > 0xFFFF) {
      esc(0xD800 + ((cp - 0x10000) >> 10));
      esc(0xDC00 + ((cp - 0x10000) & 0x3FF));
    } else {
      esc(cp);
    }
  }
  return out;
}

std::string float_output(double x) {
  if (x == 0 && std::signbit(x)) return "-0.0";
  if (std::isfinite(x) && std::trunc(x) == x) {
    if (std::fabs(x) >= 1e21) return js_number(x);  // toFixed falls back to toString there
    char buf[400];
    std::snprintf(buf, sizeof buf, "%.1f", x);
    return buf;
  }
  return js_number(x);
}
}  // namespace

std::string Value::to_output() const {
  switch (type_) {
    case Type::Undefined:
    case Type::Null: return "undefined";
    case Type::Boolean: return b_ ? "true" : "false";
    case Type::Integer: return js_number(n_);
    case Type::Float: return float_output(n_);
    case Type::String: return s_;
    case Type::Array:
    case Type::Tuple:
    case Type::Object:
    case Type::Namespace: return to_json(JsonOptions{}, 0, false);
    case Type::Function: throw FunctionError{"a function cannot be printed"};
  }
  return "";
}

std::string Value::to_js_string() const {
  switch (type_) {
    case Type::Integer:
    case Type::Float: return js_number(n_);
    case Type::Array:
    case Type::Tuple: {
      std::string out;
      for (size_t i = 0; i < list_->size(); ++i) {
        if (i) out += ",";
        out += (*list_)[i].to_output();
      }
      return out;
    }
    case Type::Object:
    case Type::Namespace: return "[object Map]";
    case Type::Function: throw FunctionError{"a function cannot be converted to a string"};
    default: return to_output();
  }
}

std::string Value::to_json(const JsonOptions& opt, int depth, bool undefined_to_null) const {
  if (depth > kMaxValueDepth) throw FunctionError{"tojson: the value nests deeper than " + std::to_string(kMaxValueDepth) + " levels"};
  std::string item_sep = ", ", key_sep = ": ";
  if (opt.separators) {
    item_sep = opt.separators->first;
    key_sep = opt.separators->second;
  } else if (opt.indent && *opt.indent) {
    item_sep = ",";
  }
  switch (type_) {
    case Type::Null: return "null";
    case Type::Undefined: return undefined_to_null ? "null" : "undefined";
    case Type::Boolean: return b_ ? "true" : "false";
    case Type::Integer:
    case Type::Float: return std::isfinite(n_) ? js_number(n_) : "null";
    case Type::String: return opt.ensure_ascii ? ascii_safe(json_quote(s_)) : json_quote(s_);
    case Type::Array:
    case Type::Object:
    case Type::Namespace: {
      if (opt.indent && *opt.indent < 0) throw FunctionError{"tojson: indent must not be negative"};
      const bool indented = opt.indent && *opt.indent != 0;
      const std::string indent_value = indented ? std::string(size_t(*opt.indent), ' ') : "";
      std::string base = "\n";
      for (int i = 0; i < depth; ++i) base += indent_value;
      const std::string child = base + indent_value;
      std::vector<std::string> core;
      if (type_ == Type::Array) {
        for (const Value& v : *list_) core.push_back(v.to_json(opt, depth + 1, undefined_to_null));
        std::string out = "[";
        if (indented && !core.empty()) {
          out += child;
          for (size_t i = 0; i < core.size(); ++i) out += (i ? item_sep + child : "") + core[i];
          return out + base + "]";
        }
        for (size_t i = 0; i < core.size(); ++i) out += (i ? item_sep : "") + core[i];
        return out + "]";
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& kv : object_->items) entries.push_back(&kv);
      if (opt.sort_keys)
        std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
      for (const auto* kv : entries) {
        std::string key = json_quote(kv->first);
        if (opt.ensure_ascii) key = ascii_safe(key);
        std::string v = key + key_sep + kv->second.to_json(opt, depth + 1, undefined_to_null);
        core.push_back(indented ? child + v : v);
      }
      std::string out = "{";
      for (size_t i = 0; i < core.size(); ++i) out += (i ? item_sep : "") + core[i];
      return out + (indented && !core.empty() ? base : "") + "}";
    }
    case Type::Tuple: throw FunctionError{"tojson: a tuple cannot be converted to JSON (as in the reference renderer)"};
    case Type::Function: throw FunctionError{"tojson: a function cannot be converted to JSON"};
  }
  return "";
}

namespace {
// The payload of a value as JavaScript sees it, for the equality operators.
enum class JsKind { Undefined, Boolean, Number, String, Reference };
JsKind js_kind(const Value& v) {
  switch (v.type()) {
    case Type::Undefined:
    case Type::Null: return JsKind::Undefined;  // both hold undefined in the reference
    case Type::Boolean: return JsKind::Boolean;
    case Type::Integer:
    case Type::Float: return JsKind::Number;
    case Type::String: return JsKind::String;
    default: return JsKind::Reference;
  }
}
}  // namespace

bool strict_equals(const Value& a, const Value& b) {
  const JsKind ka = js_kind(a), kb = js_kind(b);
  if (ka != kb) return false;
  switch (ka) {
    case JsKind::Undefined: return true;
    case JsKind::Boolean: return a.as_bool() == b.as_bool();
    case JsKind::Number: return a.as_number() == b.as_number();
    case JsKind::String: return a.as_string() == b.as_string();
    case JsKind::Reference: return a.identity() == b.identity();
  }
  return false;
}

bool loose_equals(const Value& a, const Value& b) {
  const JsKind ka = js_kind(a), kb = js_kind(b);
  if (ka == kb) return strict_equals(a, b);
  if (ka == JsKind::Undefined || kb == JsKind::Undefined) return false;
  if (ka == JsKind::Boolean) return loose_equals(Value::integer(a.as_bool() ? 1 : 0), b);
  if (kb == JsKind::Boolean) return loose_equals(a, Value::integer(b.as_bool() ? 1 : 0));
  if (ka == JsKind::Number && kb == JsKind::String) return a.as_number() == js_string_to_number(b.as_string());
  if (ka == JsKind::String && kb == JsKind::Number) return js_string_to_number(a.as_string()) == b.as_number();
  // A list or a mapping against a number or a string: compared as its string.
  if (ka == JsKind::Reference) return loose_equals(Value::string(a.to_js_string()), b);
  return loose_equals(a, Value::string(b.to_js_string()));
}

}  // namespace moe::text::jinja
