#pragma once
// The values of the chat-template interpreter. They behave as @huggingface/jinja's runtime values
// (the reference renderer), which is JavaScript underneath: numbers are doubles (an "integer" is a
// double without fraction, as JSON gives it), "==" is JavaScript's loose equality, a boolean
// prints as "true", a list or a mapping prints as JSON with ", " and ": " separators. Lists,
// mappings and namespaces are shared by reference, as in Jinja ({% set ns.x = 1 %} changes ns for
// everyone holding it).
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace moe::text::jinja {

enum class Type { Undefined, Null, Boolean, Integer, Float, String, Array, Tuple, Object, Namespace, Function };

class Value;

// A mapping that keeps its insertion order (messages' keys print in the order they were given).
struct Object {
  std::vector<std::pair<std::string, Value>> items;
  const Value* find(std::string_view key) const;
  void set(const std::string& key, Value v);
};

struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  const Value* kw(std::string_view name) const;
};

// A native function throws FunctionError for a bad call; the interpreter adds the position.
struct FunctionError {
  std::string message;
};
using Function = std::function<Value(const CallArgs&)>;

class Value {
 public:
  Value() = default;  // undefined
  static Value undefined() { return Value(); }
  static Value null();
  static Value boolean(bool b);
  static Value integer(double n);
  static Value floating(double n);
  static Value number(double n);  // an integer when it has no fraction, as JavaScript's numbers convert
  static Value string(std::string s);
  static Value array(std::vector<Value> items);
  static Value tuple(std::vector<Value> items);
  static Value object(Object o = {});
  static Value namespace_(Object o = {});
  static Value function(Function f);
  // JSON: integers (and floats without fraction) become integers, objects keep their key order.
  static Value from_json(const nlohmann::ordered_json& j);

  Type type() const { return type_; }
  bool is(Type t) const { return type_ == t; }
  bool is_undefined() const { return type_ == Type::Undefined; }
  bool is_none() const { return type_ == Type::Null; }
  bool is_number() const { return type_ == Type::Integer || type_ == Type::Float; }
  bool is_list() const { return type_ == Type::Array || type_ == Type::Tuple; }  // either kind of sequence
  bool is_mapping() const { return type_ == Type::Object; }
  bool has_attributes() const { return type_ == Type::Object || type_ == Type::Namespace; }

  bool as_bool() const { return b_; }
  double as_number() const { return n_; }
  const std::string& as_string() const { return s_; }
  const std::vector<Value>& items() const { return *list_; }
  const std::shared_ptr<std::vector<Value>>& list_ptr() const { return list_; }
  Object& attributes() const { return *object_; }
  const std::shared_ptr<Object>& object_ptr() const { return object_; }
  const Function& call() const { return *fn_; }
  const void* identity() const;
  // How deeply a list or a mapping nests (1: no list or mapping inside; a namespace counts 1). A
  // template cannot build one deeper than 256 levels: printing, comparing or freeing it recurses.
  int depth() const { return depth_; }  // for identity comparisons of lists, mappings and functions

  // Python's truthiness as the reference has it: empty strings, lists and mappings are false; a
  // namespace or a function is true.
  bool truthy() const;
  // "undefined", "none", "a boolean", "an integer", "a float", "a string", "a list", "a tuple",
  // "a mapping", "a namespace", "a function": for messages.
  const char* type_name() const;

  // What {{ value }} prints (the reference's RuntimeValue.toString()): 1.0 prints "1.0", a list or
  // a mapping as JSON, none and undefined as "undefined" (the renderer prints nothing for those).
  std::string to_output() const;
  // JavaScript's String(value.value): what "+" and "~" concatenate (1.0 gives "1", a mapping
  // "[object Map]", a list its items' outputs joined by ",").
  std::string to_js_string() const;

  struct JsonOptions {
    std::optional<int> indent;
    bool ensure_ascii = false;
    bool sort_keys = false;
    std::optional<std::pair<std::string, std::string>> separators;
  };
  // The reference's toJSON (what | tojson prints: Python json.dumps's ", " and ": " separators).
  // A tuple or a function cannot be converted (as in the reference): throws FunctionError.
  std::string to_json(const JsonOptions& opt, int depth = 0, bool undefined_to_null = true) const;

 private:
  Type type_ = Type::Undefined;
  bool b_ = false;
  double n_ = 0;
  int depth_ = 0;
  std::string s_;
  std::shared_ptr<std::vector<Value>> list_;
  std::shared_ptr<Object> object_;
  std::shared_ptr<Function> fn_;
};

// JavaScript's Number.prototype.toString() (shortest round trip; exponent outside 1e-7..1e21).
std::string js_number(double x);
// JavaScript's ToNumber of a string (for loose equality): NaN when it is not a number.
double js_string_to_number(std::string_view s);
// JSON.stringify of a string: escapes ", \ and control characters only.
std::string json_quote(std::string_view s);
// JavaScript's loose equality of the values' payloads (the reference's "=="), and strict equality
// (its "in" on lists).
bool loose_equals(const Value& a, const Value& b);
bool strict_equals(const Value& a, const Value& b);

}  // namespace moe::text::jinja
