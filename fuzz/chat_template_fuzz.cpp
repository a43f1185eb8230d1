// Chat templates (text/chat_template.h, the Jinja-subset interpreter of src/text/jinja_*): the
// input is a template, parsed then rendered with a fixed conversation (a system message, user and
// assistant turns with <think> content and tool calls, tools, non-ASCII text), with and without
// the generation prompt. It renders or throws moe::Error; nothing may crash, hang or leak, an
// internal assertion is a bug, and whatever renders is valid UTF-8. Tight render limits keep each
// input well under libFuzzer's 1 s timeout.
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "text/chat_template.h"
#include "text/utf8.h"

namespace {

const nlohmann::ordered_json& conversation() {
  static const nlohmann::ordered_json j = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are helpful. 你好 👍🏽"},
      {"role": "user", "content": "What is 2+2?\n"},
      {"role": "assistant", "content": "<think>\nadd\n</think>\n\n4", "tool_calls": [
        {"type": "function", "function": {"name": "calc", "arguments": {"a": 2, "b": [2.5, null, true]}}}]},
      {"role": "tool", "content": "4"},
      {"role": "user", "content": "  again\t "}
    ],
    "extra": {"tools": [{"type": "function", "function": {"name": "calc", "parameters": {"type": "object"}}}],
              "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false}
  })");
  return j;
}

bool internal(const moe::Error& e) { return std::string(e.what()).find("[internal]") != std::string::npos; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    moe::text::ChatTemplate t(text, "[chat_template] fuzz");
    t.set_limits({.max_steps = 200'000, .max_string_bytes = 1u << 20, .max_list_items = 10'000, .max_call_depth = 32, .max_nesting = 400});
    for (bool gen : {false, true}) {
      try {
        const std::string out = t.render(conversation()["messages"], gen, conversation()["extra"]);
        if (moe::text::utf8_invalid_at(out) != std::string::npos) __builtin_trap();
      } catch (const moe::Error& e) {
        if (internal(e)) __builtin_trap();
      }
    }
  } catch (const moe::Error& e) {
    if (internal(e)) __builtin_trap();
  }
  return 0;
}
