// moe tokenize: a Hugging Face tokenizer (DIR/tokenizer.json) applied to a text: its token ids.
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "io/atomic_file.h"
#include "text/tokenizer.h"
#include "text/utf8.h"

namespace moe::cli {

namespace {
struct TokenizeArgs {
  std::string model, text, data;
  bool json = false;
  CLI::Option* text_opt = nullptr;
};

int run_tokenize(const TokenizeArgs& a) {
  const bool has_text = a.text_opt->count() > 0;
  if (has_text == !a.data.empty()) throw Error("[tokenize] give the text with exactly one of --text TEXT and --data FILE");
  if (!std::filesystem::is_directory(a.model)) throw Error("[tokenize] " + a.model + ": not a directory (--model DIR holds tokenizer.json)");
  const std::string path = (std::filesystem::path(a.model) / "tokenizer.json").string();
  if (!std::filesystem::exists(path)) throw Error("[tokenize] " + path + ": no such file (--model DIR holds tokenizer.json)");
  const std::string text = has_text ? a.text : read_file(a.data);
  if (const size_t bad = text::utf8_invalid_at(text); bad != std::string::npos)
    throw Error("[tokenize] " + (has_text ? std::string("--text") : a.data) + ": not valid UTF-8 (byte " + std::to_string(bad) + ")");
  const text::Tokenizer tok = text::Tokenizer::load(path);
  const std::vector<int32_t> ids = tok.encode(text);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  std::printf("%s\n", line.c_str());
  if (a.json) std::printf("%s\n", nlohmann::json({{"ids", ids}, {"tokens", ids.size()}}).dump().c_str());
  return 0;
}
}  // namespace

Runner add_tokenize(CLI::App& app) {
  auto a = std::make_shared<TokenizeArgs>();
  CLI::App* c = app.add_subcommand("tokenize", "token ids of a text under a Hugging Face tokenizer.json");
  c->add_option("--model", a->model, "directory holding tokenizer.json")->required();
  a->text_opt = c->add_option("--text", a->text, "the text");
  c->add_option("--data", a->data, "a file holding the text (UTF-8)");
  c->add_flag("--json", a->json, "end with one JSON line: ids and tokens");
  return [a] { return run_tokenize(*a); };
}

}  // namespace moe::cli
