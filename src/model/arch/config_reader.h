#pragma once
// Typed reads of config.json keys. Every error names the file (or "config") and the key:
// "[config] DIR/config.json: key 'hidden_size' must be an integer, got "64"".
#include <string>
#include <type_traits>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"

namespace moe {

class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& j, std::string source) : j_(j), src_(std::move(source)) {}
  const nlohmann::json& json() const { return j_; }
  const std::string& source() const { return src_; }
  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }
  [[noreturn]] void fail(const std::string& what) const { throw Error("[config] " + src_ + ": " + what); }

  // Leaves `out` unchanged when the key is absent or null (an error if required).
  template <class T>
  void num(const char* key, T& out, bool required = false) const {
    if (!has(key)) {
      if (required) fail(std::string("missing required key '") + key + "'");
      return;
    }
    const nlohmann::json& v = j_[key];
    if constexpr (std::is_same_v<T, bool>) {
      if (!v.is_boolean()) fail(std::string("key '") + key + "' must be true or false, got " + v.dump());
    } else if constexpr (std::is_integral_v<T>) {
      if (!v.is_number_integer()) fail(std::string("key '") + key + "' must be an integer, got " + v.dump());
    } else {
      if (!v.is_number()) fail(std::string("key '") + key + "' must be a number, got " + v.dump());
    }
    out = v.get<T>();
  }
  void str(const char* key, std::string& out) const {
    if (!has(key)) return;
    if (!j_[key].is_string()) fail(std::string("key '") + key + "' must be a string, got " + j_[key].dump());
    out = j_[key].get<std::string>();
  }
  void int_list(const char* key, std::vector<int>& out) const {
    if (!has(key)) return;
    if (!j_[key].is_array()) fail(std::string("'") + key + "' must be a list of layer indices");
    out.clear();
    for (const auto& v : j_[key]) {
      if (!v.is_number_integer()) fail(std::string("'") + key + "' must hold integers, got " + v.dump());
      out.push_back(v.get<int>());
    }
  }

 private:
  const nlohmann::json& j_;
  std::string src_;
};

}  // namespace moe
