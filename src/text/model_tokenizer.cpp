#include "text/model_tokenizer.h"

#include <algorithm>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe::text {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
// A JSON file of the model directory, or null when it is absent.
json read_json_if_present(const fs::path& p) {
  if (!fs::exists(p)) return nullptr;
  try {
    return json::parse(read_file(p.string()));
  } catch (const json::exception& e) {
    throw Error("[tokenizer] " + p.string() + ": not valid JSON (" + e.what() + ")");
  }
}

void add_stop_id(std::vector<int32_t>& ids, int32_t id) {
  if (std::find(ids.begin(), ids.end(), id) == ids.end()) ids.push_back(id);
}
}  // namespace

ModelTokenizer load_model_tokenizer(const std::string& dir, int64_t vocab_size) {
  ModelTokenizer m;
  const fs::path path = fs::path(dir) / "tokenizer.json";
  if (!fs::exists(path)) {
    if (vocab_size != 256)
      throw Error("[tokenizer] " + dir + ": vocab_size " + std::to_string(vocab_size) +
                  " needs a tokenizer.json beside config.json (only a byte-level model, vocab_size 256, goes without)");
    return m;
  }
  m.tokenizer = Tokenizer::load(path.string());
  const Tokenizer& tok = *m.tokenizer;
  if (tok.vocab_size() > vocab_size)
    throw Error("[tokenizer] " + path.string() + ": has ids up to " + std::to_string(tok.vocab_size() - 1) +
                ", beyond the model's vocab_size " + std::to_string(vocab_size) + " (config.json)");
  // tokenizer_config.json: "eos_token": "</s>" or {"content": "</s>", ...}.
  const fs::path tc_path = fs::path(dir) / "tokenizer_config.json";
  const json tc = read_json_if_present(tc_path);
  if (tc.is_object() && tc.contains("eos_token") && !tc["eos_token"].is_null()) {
    const json& e = tc["eos_token"];
    const json content = e.is_object() ? e.value("content", json()) : e;
    if (!content.is_string()) throw Error("[tokenizer] " + tc_path.string() + ": eos_token must be a string or hold a \"content\" string");
    const int32_t id = tok.token_to_id(content.get<std::string>());
    if (id < 0) throw Error("[tokenizer] " + tc_path.string() + ": eos_token '" + content.get<std::string>() + "' is not a token of tokenizer.json");
    add_stop_id(m.stop_ids, id);
  }
  // config.json: "eos_token_id": 2 or [151645, 151643].
  const fs::path c_path = fs::path(dir) / "config.json";
  const json c = read_json_if_present(c_path);
  if (c.is_object() && c.contains("eos_token_id") && !c["eos_token_id"].is_null()) {
    const json& e = c["eos_token_id"];
    for (const json& v : e.is_array() ? e : json::array({e})) {
      if (!v.is_number_integer() || v.get<int64_t>() < 0 || v.get<int64_t>() >= vocab_size)
        throw Error("[tokenizer] " + c_path.string() + ": eos_token_id must be ids below vocab_size " + std::to_string(vocab_size) + ", got " + e.dump());
      add_stop_id(m.stop_ids, int32_t(v.get<int64_t>()));
    }
  }
  return m;
}

}  // namespace moe::text
