#pragma once
// A model's chat template: tokenizer_config.json's "chat_template" (a Jinja template string, or a
// list of {"name", "template"} of which "default" is used), rendered with a conversation into the
// prompt text the model was trained on, byte for byte as transformers.js's apply_chat_template
// renders it (@huggingface/jinja: the reference, tests/oracle/render.mjs). The Jinja subset and its
// limits are described in jinja_eval.h.
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "text/jinja_eval.h"
#include "text/jinja_parser.h"

namespace moe::text {

class ChatTemplate {
 public:
  // DIR/tokenizer_config.json. Throws moe::Error naming the file and the key: no file, not JSON,
  // no chat_template, a malformed template (with its line and column), a malformed special token.
  static ChatTemplate load(const std::string& dir);
  // The same from a parsed tokenizer_config.json; file names it in errors.
  static ChatTemplate from_config(const nlohmann::ordered_json& config, const std::string& file);
  // A template text with its special tokens (e.g. {"bos_token", "<s>"}); where prefixes errors.
  ChatTemplate(std::string text, std::string where, std::vector<std::pair<std::string, std::string>> special_tokens = {});

  // messages: a list of {"role", "content", ...}. The template sees messages,
  // add_generation_prompt, tools and documents (null unless extra has them), the special tokens
  // (bos_token, eos_token, unk_token, sep_token, pad_token, cls_token, mask_token: those that are
  // set), then extra's other keys (e.g. "enable_thinking": false), which take precedence. Throws
  // moe::Error naming the template position for what the template rejects: raise_exception('...')
  // (with its message), an operation on the wrong types, anything unsupported.
  std::string render(const nlohmann::ordered_json& messages, bool add_generation_prompt,
                     const nlohmann::ordered_json& extra = nlohmann::ordered_json::object()) const;

  const std::string& text() const { return source_.text(); }
  // Bounds on rendering (steps, string and list sizes, nesting): the defaults suit real templates.
  void set_limits(const jinja::RenderLimits& limits) { limits_ = limits; }
  // The value of a special token ("bos_token", "eos_token", ...), empty when unset.
  std::string special_token(const std::string& name) const;

 private:
  jinja::TemplateSource source_;
  jinja::NodePtr program_;
  std::vector<std::pair<std::string, std::string>> special_;
  jinja::RenderLimits limits_{};
};

}  // namespace moe::text
