// moe chat: a conversation with a model through its chat template (tokenizer_config.json's
// chat_template, rendered as transformers.js renders it: src/text/chat_template.h). Reads one user
// message per line from stdin until EOF; each reply streams to stdout as whole UTF-8 characters
// and joins the conversation. --render prints a conversation's prompt and needs no weights.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <iostream>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "core/threading.h"
#include "infer/generator.h"
#include "io/atomic_file.h"
#include "model/checkpoint.h"
#include "terminal.h"
#include "text/chat_template.h"
#include "text/model_tokenizer.h"
#include "text/utf8.h"
#include "weights_option.h"
#include "cli_checks.h"

namespace moe::cli {

namespace {
using json = nlohmann::ordered_json;

struct ChatArgs {
  std::string model, render, system;
  std::string weights = "stored";
  bool no_generation_prompt = false;
  int64_t max_tokens = 200;
  float temperature = 0.8f;
  int top_k = 0;
  float top_p = 1.0f;
  uint64_t seed = 0;
  int threads = 0;
  CLI::Option* system_opt = nullptr;
};

// MESSAGES.json: a list of messages, or {"messages": [...], other template variables...}.
void read_conversation(const std::string& file, json& messages, json& extra) {
  std::string text;
  try {
    text = read_file(file);
  } catch (const Error& e) {
    throw Error(std::string("[chat] ") + e.what());
  }
  json j;
  try {
    j = json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error("[chat] " + file + ": not valid JSON: " + e.what());
  }
  extra = json::object();
  if (j.is_array()) {
    messages = j;
  } else if (j.is_object() && j.contains("messages")) {
    messages = j["messages"];
    for (const auto& [k, v] : j.items())
      if (k != "messages") extra[k] = v;
    if (!messages.is_array()) throw Error("[chat] " + file + ": messages: expected a list of messages");
  } else {
    throw Error("[chat] " + file + ": expected a list of messages or an object with \"messages\"");
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    const json& m = messages[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      throw Error("[chat] " + file + ": messages[" + std::to_string(i) + "]: expected an object with a string \"role\"");
  }
}

int run_render(const ChatArgs& a, const text::ChatTemplate& tmpl) {
  json messages, extra;
  read_conversation(a.render, messages, extra);
  if (a.system_opt->count() > 0) messages.insert(messages.begin(), json{{"role", "system"}, {"content", a.system}});
  const std::string prompt = tmpl.render(messages, !a.no_generation_prompt, extra);
  std::fwrite(prompt.data(), 1, prompt.size(), stdout);
  std::fflush(stdout);
  return 0;
}

int run_chat(const ChatArgs& a) {
  // The template first: a directory without one fails before any weights are read.
  const text::ChatTemplate tmpl = text::ChatTemplate::load(a.model);
  if (!a.render.empty()) return run_render(a, tmpl);
  if (a.no_generation_prompt) throw Error("[chat] --no-generation-prompt goes with --render");
  set_num_threads(a.threads);
  auto model = load_pretrained(a.model, nullptr, {}, run_load_options(a.weights));
  const text::ModelTokenizer tokens = text::load_model_tokenizer(a.model, model->config().vocab_size);
  Generator gen(*model);
  json messages = json::array();
  if (a.system_opt->count() > 0) messages.push_back({{"role", "system"}, {"content", a.system}});
  const bool interactive = isatty(STDIN_FILENO) != 0;
  std::string line;
  for (uint64_t turn = 0;; ++turn) {
    if (interactive) std::fprintf(stderr, "> ");
    if (!std::getline(std::cin, line)) break;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (const size_t bad = text::utf8_invalid_at(line); bad != std::string::npos)
      throw Error("[chat] stdin: line " + std::to_string(turn + 1) + " is not valid UTF-8 (byte " + std::to_string(bad) + ")");
    messages.push_back({{"role", "user"}, {"content", line}});
    const std::string prompt_text = tmpl.render(messages, true);
    GenerateConfig gc{.max_tokens = a.max_tokens,
                      .sampler = {.temperature = a.temperature, .top_k = a.top_k, .top_p = a.top_p},
                      .seed = a.seed + turn,
                      .stop_ids = tokens.stop_ids};
    std::string reply;
    auto write = [&](const std::string& s) {
      reply += s;
      std::fwrite(s.data(), 1, s.size(), stdout);
      std::fflush(stdout);
    };
    const auto t0 = std::chrono::steady_clock::now();
    size_t n = 0;
    if (tokens.tokenizer) {
      // The rendered text holds the special tokens already: no BOS of the tokenizer's own (as
      // transformers.js's apply_chat_template encodes with add_special_tokens: false).
      const std::vector<int32_t> prompt = tokens.tokenizer->encode(prompt_text, /*add_special_tokens=*/false);
      text::StreamingDecoder dec(*tokens.tokenizer, /*skip_special_tokens=*/true);
      for (int32_t id : prompt) dec.push(id);  // unprinted: the reply decodes as it does after the prompt
      n = gen.generate(prompt, gc, [&](int32_t id) {
             write(dec.push(id));
             return true;
           }).size();
      write(dec.finish());
    } else {
      // A byte-level model: the prompt's bytes, the reply's bytes as whole UTF-8 characters.
      std::string pending;
      n = gen.generate(prompt_text, gc, [&](uint8_t b) {
             pending.push_back(char(b));
             std::string out;
             const size_t held = text::utf8_decode_lossy(pending, out, /*hold_tail=*/true);
             pending.erase(0, pending.size() - held);
             write(out);
             return true;
           }).size();
      std::string out;
      text::utf8_decode_lossy(pending, out);
      write(out);
    }
    std::printf("\n");
    std::fflush(stdout);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    // The prompt positions kept from the last turn (the conversation so far) and those computed.
    std::fprintf(stderr, "[%zu tokens in %.2f s, %s tok/s; prompt: %lld positions reused, %lld computed]\n", n, s,
                 format_rate(double(n) / s).c_str(), (long long)gen.prompt_positions_reused(),
                 (long long)gen.prompt_positions_computed());
    messages.push_back({{"role", "assistant"}, {"content", reply}});
  }
  return 0;
}
}  // namespace

Runner add_chat(CLI::App& app) {
  auto a = std::make_shared<ChatArgs>();
  CLI::App* c = app.add_subcommand("chat", "talk to a model through its chat template (one user message per line of stdin)");
  c->add_option("--model", a->model, "model directory (tokenizer_config.json with a chat_template; weights unless --render)")->required();
  add_weights_option(c, a->weights);
  c->add_option("--render", a->render, "print the prompt of the conversation in MESSAGES.json (a list of messages, or {\"messages\": [...], ...}) and exit")
      ->option_text("MESSAGES.json");
  c->add_flag("--no-generation-prompt", a->no_generation_prompt, "with --render: without the assistant turn's opening");
  a->system_opt = c->add_option("--system", a->system, "a system message first");
  c->add_option("--max-tokens", a->max_tokens, "tokens to generate per reply")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--temperature", a->temperature, "sampling temperature (0: greedy)")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--top-k", a->top_k, "sample among the k most likely tokens (0: all)")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--top-p", a->top_p, "sample among the most likely tokens whose probability reaches p (1: all)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->add_option("--seed", a->seed, "sampling seed (reply i uses seed + i)")->capture_default_str();
  c->add_option("--threads", a->threads, "threads (default: all cores)")->check(moe::cli::NonNegative);
  return [a] { return run_chat(*a); };
}

}  // namespace moe::cli
