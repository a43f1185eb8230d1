#include "text/json_node.h"

#include <cmath>

#include "core/error.h"

namespace moe::text {

namespace {
const char* type_name(const nlohmann::json& j) {
  switch (j.type()) {
    case nlohmann::json::value_t::null: return "null";
    case nlohmann::json::value_t::object: return "an object";
    case nlohmann::json::value_t::array: return "an array";
    case nlohmann::json::value_t::string: return "a string";
    case nlohmann::json::value_t::boolean: return "a boolean";
    default: return "a number";
  }
}
}  // namespace

std::string JsonNode::where() const {
  return "[tokenizer] " + *file_ + (key_.empty() ? "" : ": " + key_);
}

void JsonNode::fail(const std::string& what) const { throw Error(where() + ": " + what); }

void JsonNode::expect_object() const {
  if (!j_->is_object()) fail(std::string("expected an object, found ") + type_name(*j_));
}

void JsonNode::expect_array() const {
  if (!j_->is_array()) fail(std::string("expected an array, found ") + type_name(*j_));
}

JsonNode JsonNode::at(const char* name) const {
  expect_object();
  const std::string key = key_.empty() ? std::string(name) : key_ + "." + name;
  auto it = j_->find(name);
  if (it == j_->end()) throw Error("[tokenizer] " + *file_ + ": " + key + ": missing");
  return JsonNode(*it, *file_, key);
}

bool JsonNode::has(const char* name) const {
  expect_object();
  auto it = j_->find(name);
  return it != j_->end() && !it->is_null();
}

void JsonNode::only_keys(std::initializer_list<const char*> names) const {
  expect_object();
  for (auto it = j_->begin(); it != j_->end(); ++it) {
    bool known = false;
    for (const char* n : names) known = known || it.key() == n;
    if (!known) {
      const std::string key = key_.empty() ? it.key() : key_ + "." + it.key();
      throw Error("[tokenizer] " + *file_ + ": " + key + ": unknown key (not supported)");
    }
  }
}

std::string JsonNode::str() const {
  if (!j_->is_string()) fail(std::string("expected a string, found ") + type_name(*j_));
  return j_->get<std::string>();
}

bool JsonNode::boolean() const {
  if (!j_->is_boolean()) fail(std::string("expected true or false, found ") + type_name(*j_));
  return j_->get<bool>();
}

int64_t JsonNode::integer(int64_t lo, int64_t hi) const {
  int64_t v = 0;
  if (j_->is_number_integer()) {
    v = j_->get<int64_t>();
    if (j_->is_number_unsigned() && j_->get<uint64_t>() > uint64_t(INT64_MAX)) v = INT64_MAX;
  } else if (j_->is_number_float()) {
    const double d = j_->get<double>();
    if (!(std::floor(d) == d) || !(d >= double(lo) && d <= double(hi))) fail("expected an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
    v = int64_t(d);
  } else {
    fail(std::string("expected an integer, found ") + type_name(*j_));
  }
  if (v < lo || v > hi) fail(std::to_string(v) + " is out of range [" + std::to_string(lo) + ", " + std::to_string(hi) + "]");
  return v;
}

double JsonNode::number() const {
  if (!j_->is_number()) fail(std::string("expected a number, found ") + type_name(*j_));
  return j_->get<double>();
}

size_t JsonNode::size() const {
  expect_array();
  return j_->size();
}

JsonNode JsonNode::operator[](size_t i) const {
  expect_array();
  return JsonNode((*j_)[i], *file_, key_ + "[" + std::to_string(i) + "]");
}

}  // namespace moe::text
