#pragma once
// A value of tokenizer.json together with its file and key path, so that every complaint names
// both: "[tokenizer] FILE: pre_tokenizer.pretokenizers[1].type: 'Whitespace' is not supported".
#include <cstdint>
#include <initializer_list>
#include <string>

#include <nlohmann/json.hpp>

namespace moe::text {

class JsonNode {
 public:
  JsonNode(const nlohmann::json& j, const std::string& file, std::string key)
      : j_(&j), file_(&file), key_(std::move(key)) {}

  [[noreturn]] void fail(const std::string& what) const;
  // "[tokenizer] FILE: KEY" (or "[tokenizer] FILE" at the root): the prefix of fail().
  std::string where() const;
  const std::string& key() const { return key_; }
  const std::string& file() const { return *file_; }
  const nlohmann::json& json() const { return *j_; }

  bool is_null() const { return j_->is_null(); }
  // An object's member: present (null allowed) or an error naming the key.
  JsonNode at(const char* name) const;
  // Whether the object has the member and it is not null.
  bool has(const char* name) const;
  // Members other than these are an error: a key we do not know may change the result.
  void only_keys(std::initializer_list<const char*> names) const;

  std::string str() const;
  bool boolean() const;
  int64_t integer(int64_t lo, int64_t hi) const;
  double number() const;
  // Arrays.
  size_t size() const;
  JsonNode operator[](size_t i) const;

  // Optional members: the default when absent or null.
  bool get_bool(const char* name, bool dflt) const { return has(name) ? at(name).boolean() : dflt; }
  std::string get_str(const char* name, const std::string& dflt) const { return has(name) ? at(name).str() : dflt; }

  void expect_object() const;
  void expect_array() const;

 private:
  const nlohmann::json* j_;
  const std::string* file_;
  std::string key_;
};

}  // namespace moe::text
