#include "text/chat_template.h"

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "text/jinja_eval.h"
#include "text/jinja_lexer.h"

namespace moe::text {

namespace {
const char* const kSpecialTokens[] = {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
}

ChatTemplate::ChatTemplate(std::string text, std::string where, std::vector<std::pair<std::string, std::string>> special_tokens)
    : source_(std::move(text), std::move(where)), special_(std::move(special_tokens)) {
  program_ = jinja::parse(source_, jinja::tokenize(source_));
}

ChatTemplate ChatTemplate::load(const std::string& dir) {
  const std::string file = (std::filesystem::path(dir) / "tokenizer_config.json").string();
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error("[chat_template] " + file + ": cannot open (a chat template comes from the model's tokenizer_config.json)");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::ordered_json j;
  try {
    j = nlohmann::ordered_json::parse(ss.str());
  } catch (const nlohmann::json::exception& e) {
    throw Error("[chat_template] " + file + ": not valid JSON: " + e.what());
  }
  return from_config(j, file);
}

ChatTemplate ChatTemplate::from_config(const nlohmann::ordered_json& config, const std::string& file) {
  const std::string where = "[chat_template] " + file;
  if (!config.is_object()) throw Error(where + ": expected a JSON object");
  const auto it = config.find("chat_template");
  if (it == config.end() || it->is_null()) throw Error(where + ": chat_template: missing (this tokenizer has no chat template)");
  std::string text, key = "chat_template";
  if (it->is_string()) {
    text = it->get<std::string>();
  } else if (it->is_array()) {
    std::string names;
    bool found = false;
    for (size_t i = 0; i < it->size(); ++i) {
      const auto& e = (*it)[i];
      const std::string at = "chat_template[" + std::to_string(i) + "]";
      if (!e.is_object() || !e.contains("name") || !e["name"].is_string() || !e.contains("template") || !e["template"].is_string())
        throw Error(where + ": " + at + ": expected {\"name\": string, \"template\": string}");
      const std::string name = e["name"].get<std::string>();
      names += (names.empty() ? "" : ", ") + name;
      if (name == "default" && !found) {
        text = e["template"].get<std::string>();
        key = at + ".template";
        found = true;
      }
    }
    if (!found) throw Error(where + ": chat_template: no template named 'default' (there are: " + names + ")");
  } else {
    throw Error(where + ": chat_template: expected a string or a list of {\"name\", \"template\"}");
  }
  std::vector<std::pair<std::string, std::string>> special;
  for (const char* name : kSpecialTokens) {
    const auto t = config.find(name);
    if (t == config.end() || t->is_null()) continue;
    std::string value;
    if (t->is_string()) value = t->get<std::string>();
    else if (t->is_object() && t->contains("content") && (*t)["content"].is_string()) value = (*t)["content"].get<std::string>();
    else throw Error(where + ": " + name + ": expected a string or an object with a string \"content\"");
    if (!value.empty()) special.emplace_back(name, value);
  }
  return ChatTemplate(std::move(text), where + ": " + key, std::move(special));
}

std::string ChatTemplate::special_token(const std::string& name) const {
  for (const auto& [k, v] : special_)
    if (k == name) return v;
  return "";
}

std::string ChatTemplate::render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                                 const nlohmann::ordered_json& extra) const {
  if (!messages.is_array()) throw Error(source_.where() + ": messages must be a list, not " + std::string(messages.type_name()));
  if (!extra.is_object()) throw Error(source_.where() + ": the extra variables must be a JSON object");
  // As transformers.js builds them: {messages, add_generation_prompt, tools, documents,
  // ...special_tokens, ...extra}, a later key replacing an earlier one in place.
  std::vector<std::pair<std::string, jinja::Value>> vars;
  auto put = [&](const std::string& k, jinja::Value v) {
    for (auto& kv : vars)
      if (kv.first == k) {
        kv.second = std::move(v);
        return;
      }
    vars.emplace_back(k, std::move(v));
  };
  try {
    put("messages", jinja::Value::from_json(messages));
    put("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
    put("tools", jinja::Value::null());
    put("documents", jinja::Value::null());
    for (const auto& [k, v] : special_) put(k, jinja::Value::string(v));
    for (const auto& [k, v] : extra.items()) put(k, jinja::Value::from_json(v));
  } catch (const jinja::FunctionError& e) {
    throw Error(source_.where() + ": the conversation: " + e.message);
  }
  return jinja::render(source_, *program_, vars, limits_);
}

}  // namespace moe::text
