// moe generate: sample a continuation of a prompt, streaming text as it is produced: the ids of the
// model's tokenizer.json decoded into whole UTF-8 characters, or bytes for a byte-level model.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/threading.h"
#include "infer/generator.h"
#include "model/checkpoint.h"
#include "parallel.h"
#include "remote.h"
#include "terminal.h"
#include "text/model_tokenizer.h"
#include "weights_option.h"
#include "cli_checks.h"

namespace moe::cli {

namespace {
struct GenArgs {
  std::string model, prompt;
  std::string weights = "stored";
  int64_t max_tokens = 200;
  float temperature = 0.8f;
  int top_k = 0;
  uint64_t seed = 0;
  int threads = 0;
  int expert_parallel = 0;
  bool ignore_eos = false;
  bool json = false;
  RemoteArgs remote;
};

int run_generate(const GenArgs& a) {
  set_num_threads(a.threads);
  // Under mpirun every rank runs the same tokens; the experts are split over the ranks.
  dist::ParallelLayout layout = job_layout(a.expert_parallel, "generate");
  std::unique_ptr<RemoteSwarm> swarm;
  if (!a.remote.bootstrap.empty()) swarm = std::make_unique<RemoteSwarm>(a.remote, layout);
  auto model = load_pretrained(a.model, nullptr, layout, run_load_options(a.weights));
  model->set_data_group(dist::Communicator());
  const text::ModelTokenizer tokens = text::load_model_tokenizer(a.model, model->config().vocab_size);
  Generator gen(*model);
  GenerateConfig gc{.max_tokens = a.max_tokens, .sampler = {.temperature = a.temperature, .top_k = a.top_k}, .seed = a.seed};
  if (!a.ignore_eos) gc.stop_ids = tokens.stop_ids;
  std::string generated;  // the text after the prompt
  auto write = [&](const std::string& s) {
    generated += s;
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  };
  // Encoded before anything is printed: a prompt that is not UTF-8 is an error with empty stdout.
  std::vector<int32_t> prompt, out;
  if (tokens.tokenizer) prompt = tokens.tokenizer->encode(a.prompt);
  std::fwrite(a.prompt.data(), 1, a.prompt.size(), stdout);
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  if (tokens.tokenizer) {
    text::StreamingDecoder dec(*tokens.tokenizer, /*skip_special_tokens=*/true);
    // The prompt goes through the decoder unprinted: a continuation decodes as it does after the
    // prompt (a SentencePiece word keeps its leading space), not as the start of a text.
    for (int32_t id : prompt) dec.push(id);
    out = gen.generate(prompt, gc, [&](int32_t id) {
      write(dec.push(id));
      return true;
    });
    write(dec.finish());
  } else {
    for (unsigned char ch : a.prompt) prompt.push_back(ch);
    for (unsigned char ch : gen.generate(a.prompt, gc, [&](uint8_t b) {
           write(std::string(1, char(b)));
           return true;
         }))
      out.push_back(ch);
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n");
  const size_t n = out.size();
  if (is_printing_rank())
    std::fprintf(stderr, "[%zu tokens in %.2f s, %s tok/s]\n", n, s, format_rate(double(n) / s).c_str());
  if (a.json && is_printing_rank()) {
    const bool stopped = n > 0 && std::find(gc.stop_ids.begin(), gc.stop_ids.end(), out.back()) != gc.stop_ids.end();
    const nlohmann::json j = {{"prompt_ids", prompt}, {"ids", out}, {"tokens", n}, {"text", generated},
                              {"finish_reason", stopped ? "stop" : "length"}};
    // A byte-level model may stop inside a UTF-8 character: such bytes become U+FFFD here.
    std::printf("%s\n", j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace).c_str());
  }
  if (swarm) std::fprintf(stderr, "[remote experts: %s]\n", swarm->summary(swarm->take_step_metrics()).c_str());
  return 0;
}
}  // namespace

Runner add_generate(CLI::App& app) {
  auto a = std::make_shared<GenArgs>();
  CLI::App* c = app.add_subcommand("generate", "sample a continuation of a prompt");
  c->add_option("--model", a->model, "checkpoint directory")->required();
  add_weights_option(c, a->weights);
  c->add_option("--prompt", a->prompt, "text to continue")->required();
  c->add_option("--max-tokens", a->max_tokens, "tokens to generate (bytes for a byte-level model)")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--temperature", a->temperature, "sampling temperature (0: greedy)")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--top-k", a->top_k, "sample among the k most likely tokens (0: all)")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--seed", a->seed, "sampling seed")->capture_default_str();
  c->add_option("--threads", a->threads, "threads (default: all cores)")->check(moe::cli::NonNegative);
  c->add_option("--expert-parallel", a->expert_parallel, "under mpirun: split each MoE layer's experts over R ranks")->check(moe::cli::Positive);
  c->add_flag("--json", a->json, "end with one JSON line: prompt_ids, ids, tokens, text, finish_reason (stop or length)");
  c->add_flag("--ignore-eos", a->ignore_eos, "go on past the end-of-text token (tokenizer_config.json's eos_token, config.json's eos_token_id)");
  add_remote_options(c, a->remote);
  add_replica_check_options(c, a->remote);
  return [a] { return run_generate(*a); };
}

}  // namespace moe::cli
