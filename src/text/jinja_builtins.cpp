#include "text/jinja_builtins.h"

#include <cmath>
#include <memory>

#include <unicode/locid.h>
#include <unicode/unistr.h>

#include "text/utf8.h"

namespace moe::text::jinja {

namespace {

std::string icu_case(std::string_view s, bool upper) {
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(s.data(), int32_t(s.size())));
  if (upper) u.toUpper(icu::Locale::getRoot());
  else u.toLower(icu::Locale::getRoot());
  std::string out;
  u.toUTF8String(out);
  return out;
}

bool is_ascii_word(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// JavaScript's str.replace(new RegExp(escaped old, "gu"), ...) with at most count replacements
// (count < 0: all); an empty old matches before every character and at the end.
std::string js_replace(const std::string& s, const std::string& from, const std::string& to, double count) {
  if (count == 0) return s;
  double remaining = count < 0 ? INFINITY : count;
  std::string out;
  if (from.empty()) {
    size_t i = 0;
    while (true) {
      if (remaining > 0) {
        out += to;
        --remaining;
      }
      if (i >= s.size()) break;
      const size_t start = i;
      utf8_next(s, i);
      out.append(s, start, i - start);
    }
    return out;
  }
  size_t pos = 0;
  while (remaining > 0) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string::npos) break;
    out.append(s, pos, hit - pos);
    out += to;
    pos = hit + from.size();
    --remaining;
  }
  out.append(s, pos, std::string::npos);
  return out;
}

Value object_values(const Object& o) {
  std::vector<Value> out;
  for (const auto& kv : o.items) out.push_back(kv.second);
  return Value::array(std::move(out));
}

}  // namespace

// ---- strings as JavaScript sees them -------------------------------------------------------

std::string js_upper(std::string_view s) { return icu_case(s, true); }
std::string js_lower(std::string_view s) { return icu_case(s, false); }

// s.replace(/\b\w/g, c => c.toUpperCase())
std::string js_title(const std::string& s) {
  std::string out = s;
  for (size_t i = 0; i < out.size(); ++i)
    if (is_ascii_word(out[i]) && (i == 0 || !is_ascii_word(s[i - 1])) && out[i] >= 'a' && out[i] <= 'z') out[i] = char(out[i] - 32);
  return out;
}

// s.charAt(0).toUpperCase() + s.slice(1): the first UTF-16 unit only.
std::string js_capitalize(const std::string& s) {
  if (s.empty()) return s;
  size_t i = 0;
  const uint32_t cp = utf8_next(s, i);
  if (cp > 0xFFFF) return s;  // a surrogate does not change case
  return js_upper(std::string_view(s).substr(0, i)) + s.substr(i);
}

std::vector<std::string> code_points(const std::string& s) {
  std::vector<std::string> out;
  for (size_t i = 0; i < s.size();) {
    const size_t start = i;
    utf8_next(s, i);
    out.push_back(s.substr(start, i - start));
  }
  return out;
}

// parseInt(s, 10) and parseFloat(s): the longest numeric prefix after leading whitespace.
double js_parse_int(std::string_view s) {
  s = js_trim_start(s);
  size_t i = 0;
  bool neg = false;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) neg = s[i++] == '-';
  double v = 0;
  size_t digits = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') v = v * 10 + (s[i++] - '0'), ++digits;
  if (!digits) return NAN;
  return neg ? -v : v;
}

double js_parse_float(std::string_view s) {
  s = js_trim_start(s);
  size_t i = 0;
  if (i < s.size() && (s[i] == '+' || s[i] == '-')) ++i;
  if (s.substr(i, 8) == "Infinity") return s[0] == '-' ? -INFINITY : INFINITY;
  size_t j = i, digits = 0;
  while (j < s.size() && s[j] >= '0' && s[j] <= '9') ++j, ++digits;
  if (j < s.size() && s[j] == '.') {
    size_t k = j + 1, frac = 0;
    while (k < s.size() && s[k] >= '0' && s[k] <= '9') ++k, ++frac;
    if (digits + frac > 0) j = k, digits += frac;
  }
  if (!digits) return NAN;
  if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
    size_t k = j + 1;
    if (k < s.size() && (s[k] == '+' || s[k] == '-')) ++k;
    size_t e = 0;
    while (k < s.size() && s[k] >= '0' && s[k] <= '9') ++k, ++e;
    if (e) j = k;
  }
  return std::strtod(std::string(s.substr(0, j)).c_str(), nullptr);
}

[[noreturn]] void raise(const std::string& msg) { throw FunctionError{msg}; }


// The reference's compareRuntimeValues: none with none, numbers (and booleans) with numbers,
// strings with strings (lower-cased unless case_sensitive); anything else is an error.
int compare_values(const Value& a, const Value& b, bool case_sensitive) {
  auto kind = [](const Value& v) { return v.is_number() || v.is(Type::Boolean); };
  if (a.is_none() && b.is_none()) return 0;
  if (a.is_none() || b.is_none()) raise(std::string("cannot compare ") + a.type_name() + " with " + b.type_name());
  if (a.is_undefined() && b.is_undefined()) return 0;
  if (a.is_undefined() || b.is_undefined()) raise(std::string("cannot compare ") + a.type_name() + " with " + b.type_name());
  if (kind(a) && kind(b)) {
    const double x = a.is(Type::Boolean) ? double(a.as_bool()) : a.as_number();
    const double y = b.is(Type::Boolean) ? double(b.as_bool()) : b.as_number();
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.type() != b.type()) raise(std::string("cannot compare ") + a.type_name() + " with " + b.type_name());
  if (!a.is(Type::String)) raise(std::string("cannot compare values of type ") + a.type_name());
  const std::string x = case_sensitive ? a.as_string() : js_lower(a.as_string());
  const std::string y = case_sensitive ? b.as_string() : js_lower(b.as_string());
  return x < y ? -1 : x > y ? 1 : 0;
}

// getAttributeValue: "a.b.0" through mappings, namespaces and lists.
Value attribute_path(const Value& item, const std::string& path) {
  Value v = item;
  size_t start = 0;
  while (true) {
    const size_t dot = path.find('.', start);
    const std::string part = path.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    if (v.has_attributes()) {
      const Value* f = v.attributes().find(part);
      v = f ? *f : Value();
    } else if (v.is_list()) {
      const double idx = js_parse_int(part);
      if (std::isnan(idx) || idx < 0 || idx >= double(v.items().size())) return Value();
      v = v.items()[size_t(idx)];
    } else {
      return Value();
    }
    if (dot == std::string::npos) return v;
    start = dot + 1;
  }
}

Value key_value_pairs(const Object& o) {
  std::vector<Value> out;
  for (const auto& [k, v] : o.items) out.push_back(Value::array({Value::string(k), v}));
  return Value::array(std::move(out));
}

Value object_keys(const Object& o) {
  std::vector<Value> out;
  for (const auto& kv : o.items) out.push_back(Value::string(kv.first));
  return Value::array(std::move(out));
}


const Value* positional_or_keyword(const CallArgs& a, size_t i, std::string_view name) {
  if (i < a.positional.size()) return &a.positional[i];
  return a.kw(name);
}

bool bool_arg(const CallArgs& a, size_t i, std::string_view name, bool dflt) {
  const Value* v = positional_or_keyword(a, i, name);
  if (!v) return dflt;
  if (!v->is(Type::Boolean)) raise(std::string(name) + " must be a boolean");
  return v->as_bool();
}

// A mapping's methods (also its filters): get, items, keys, values, dictsort.
Value mapping_method(const Value& obj, const std::string& name) {
  const std::shared_ptr<Object> o = obj.object_ptr();
  if (name == "get")
    return Value::function([o](const CallArgs& a) {
      if (a.positional.empty() || !a.positional[0].is(Type::String)) raise("get(): the key must be a string");
      const Value* v = o->find(a.positional[0].as_string());
      if (v) return *v;
      return a.positional.size() > 1 ? a.positional[1] : Value::null();
    });
  if (name == "items") return Value::function([o](const CallArgs&) { return key_value_pairs(*o); });
  if (name == "keys") return Value::function([o](const CallArgs&) { return object_keys(*o); });
  if (name == "values") return Value::function([o](const CallArgs&) { return object_values(*o); });
  if (name == "dictsort")
    return Value::function([o](const CallArgs& a) {
      const bool case_sensitive = bool_arg(a, 0, "case_sensitive", false);
      const Value* by = positional_or_keyword(a, 1, "by");
      const std::string by_s = by ? (by->is(Type::String) ? by->as_string() : (raise("by must be a string"), "")) : "key";
      if (by_s != "key" && by_s != "value") raise("by must be either 'key' or 'value'");
      const bool reverse = bool_arg(a, 2, "reverse", false);
      std::vector<Value> items = key_value_pairs(*o).items();
      const size_t idx = by_s == "key" ? 0 : 1;
      merge_sort(items, [&](const Value& x, const Value& y) {
        const int c = compare_values(x.items()[idx], y.items()[idx], case_sensitive);
        return reverse ? c > 0 : c < 0;
      });
      return Value::array(std::move(items));
    });
  return Value();
}

// A string's methods (and .length).
Value string_method(const std::string& s, const std::string& name) {
  auto fn = [](auto f) { return Value::function(f); };
  if (name == "length") return Value::integer(double(utf16_length(s)));
  if (name == "upper") return fn([s](const CallArgs&) { return Value::string(js_upper(s)); });
  if (name == "lower") return fn([s](const CallArgs&) { return Value::string(js_lower(s)); });
  if (name == "strip") return fn([s](const CallArgs&) { return Value::string(std::string(js_trim_end(js_trim_start(s)))); });
  if (name == "lstrip") return fn([s](const CallArgs&) { return Value::string(std::string(js_trim_start(s))); });
  if (name == "rstrip") return fn([s](const CallArgs&) { return Value::string(std::string(js_trim_end(s))); });
  if (name == "title") return fn([s](const CallArgs&) { return Value::string(js_title(s)); });
  if (name == "capitalize") return fn([s](const CallArgs&) { return Value::string(js_capitalize(s)); });
  if (name == "startswith" || name == "endswith") {
    const bool starts = name == "startswith";
    return fn([s, starts, name](const CallArgs& a) {
      if (a.positional.empty()) raise(name + "() requires at least one argument");
      auto test = [&](const std::string& p) {
        return p.size() <= s.size() && (starts ? s.compare(0, p.size(), p) == 0 : s.compare(s.size() - p.size(), p.size(), p) == 0);
      };
      const Value& p = a.positional[0];
      if (p.is(Type::String)) return Value::boolean(test(p.as_string()));
      if (p.is_list()) {
        for (const Value& item : p.items()) {
          if (!item.is(Type::String)) raise(name + "() tuple elements must be strings");
          if (test(item.as_string())) return Value::boolean(true);
        }
        return Value::boolean(false);
      }
      raise(name + "() argument must be a string or tuple of strings");
    });
  }
  if (name == "split")
    return fn([s](const CallArgs& a) {
      if (!a.keyword.empty()) raise("split() takes positional arguments only (sep, maxsplit)");
      const Value sep = a.positional.size() > 0 ? a.positional[0] : Value::null();
      if (!sep.is(Type::String) && !sep.is_none()) raise("split(): sep must be a string or none");
      const Value maxsplit = a.positional.size() > 1 ? a.positional[1] : Value::integer(-1);
      if (!maxsplit.is(Type::Integer)) raise("split(): maxsplit must be an integer");
      const double max = maxsplit.as_number();
      std::vector<Value> out;
      if (sep.is_none()) {
        const std::string_view text = js_trim_start(s);
        size_t i = 0;
        while (i < text.size()) {
          size_t start = i, len = 0;
          // skip whitespace
          while (start < text.size()) {
            size_t j = start;
            if (!is_js_whitespace(utf8_next(text, j))) break;
            start = j;
          }
          if (start >= text.size()) break;
          size_t end = start;
          while (end < text.size()) {
            size_t j = end;
            if (is_js_whitespace(utf8_next(text, j))) break;
            end = j;
          }
          len = end - start;
          if (max >= 0 && double(out.size()) >= max) {
            out.push_back(Value::string(std::string(text.substr(start))));
            break;
          }
          out.push_back(Value::string(std::string(text.substr(start, len))));
          i = end;
        }
      } else {
        const std::string& d = sep.as_string();
        if (d.empty()) raise("split(): empty separator");
        std::vector<std::string> parts;
        size_t pos = 0;
        while (true) {
          const size_t hit = s.find(d, pos);
          if (hit == std::string::npos) break;
          parts.push_back(s.substr(pos, hit - pos));
          pos = hit + d.size();
        }
        parts.push_back(s.substr(pos));
        if (max >= 0 && double(parts.size()) > max) {
          std::string rest;
          for (size_t k = size_t(max); k < parts.size(); ++k) rest += (k > size_t(max) ? d : "") + parts[k];
          parts.resize(size_t(max));
          parts.push_back(rest);
        }
        for (auto& p : parts) out.push_back(Value::string(std::move(p)));
      }
      return Value::array(std::move(out));
    });
  if (name == "replace")
    return fn([s](const CallArgs& a) {
      if (a.positional.size() < 2) raise("replace() requires at least two arguments");
      const Value& from = a.positional[0];
      const Value& to = a.positional[1];
      if (!from.is(Type::String) || !to.is(Type::String)) raise("replace() arguments must be strings");
      Value count = Value::null();
      if (a.positional.size() > 2) count = a.positional[2];
      else if (const Value* c = a.kw("count")) count = *c;
      if (!count.is(Type::Integer) && !count.is_none()) raise("replace() count argument must be a number or none");
      return Value::string(js_replace(s, from.as_string(), to.as_string(), count.is_none() ? -1 : count.as_number()));
    });
  return Value();
}

// The reference's slice(array, start, stop, step) over n items: the indices taken.
std::vector<size_t> slice_indices(size_t n, const Value& start_v, const Value& stop_v, const Value& step_v) {
  const double len = double(n);
  const double step = step_v.is_undefined() ? 1 : step_v.as_number();
  const double dir = step > 0 ? 1 : step < 0 ? -1 : 0;
  double start, stop;
  if (dir >= 0) {
    start = start_v.is_undefined() ? 0 : start_v.as_number();
    start = start < 0 ? std::max(len + start, 0.0) : std::min(start, len);
    stop = stop_v.is_undefined() ? len : stop_v.as_number();
    stop = stop < 0 ? std::max(len + stop, 0.0) : std::min(stop, len);
  } else {
    start = start_v.is_undefined() ? len - 1 : start_v.as_number();
    start = start < 0 ? std::max(len + start, -1.0) : std::min(start, len - 1);
    stop = stop_v.is_undefined() ? -1 : stop_v.as_number();
    stop = stop < -1 ? std::max(len + stop, -1.0) : std::min(stop, len - 1);
  }
  std::vector<size_t> out;
  for (double i = start; dir * i < dir * stop; i += step) out.push_back(size_t(i));
  return out;
}

}  // namespace moe::text::jinja
