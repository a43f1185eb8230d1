// moe eval: mean next-token NLL of a checkpoint on a text file (the evaluation contract of README):
// the tokens are the ids of the model's tokenizer.json, or the bytes for a byte-level model.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>

#include "commands.h"
#include "core/threading.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "parallel.h"
#include "remote.h"
#include "terminal.h"
#include "text/model_tokenizer.h"
#include "train/evaluate.h"
#include "weights_option.h"
#include "cli_checks.h"

namespace moe::cli {

namespace {
struct EvalArgs {
  std::string model, data;
  std::string weights = "stored";
  std::string logits;  // safetensors file for the first window's logits
  int64_t context = 0, batch = 16;
  int threads = 0;
  int expert_parallel = 0;
  bool json = false;
  RemoteArgs remote;
};

int run_eval(const EvalArgs& a) {
  set_num_threads(a.threads);
  // Under mpirun every rank runs the same tokens; the experts are split over the ranks.
  dist::ParallelLayout layout = job_layout(a.expert_parallel, "eval");
  std::unique_ptr<RemoteSwarm> swarm;
  if (!a.remote.bootstrap.empty()) swarm = std::make_unique<RemoteSwarm>(a.remote, layout);
  auto model = load_pretrained(a.model, nullptr, layout, run_load_options(a.weights));
  model->set_data_group(dist::Communicator());
  const text::ModelTokenizer tokens = text::load_model_tokenizer(a.model, model->config().vocab_size);
  const std::string text = read_file(a.data);
  // The tokenizer's ids of the whole file (with its special tokens, e.g. a leading BOS), or the bytes.
  std::vector<int32_t> ids;
  if (tokens.tokenizer) {
    try {
      ids = tokens.tokenizer->encode(text);
    } catch (const Error& e) {
      throw Error("[eval] " + a.data + ": " + e.what());
    }
  }
  const int64_t n = tokens.tokenizer ? int64_t(ids.size()) : int64_t(text.size());
  if (n < 2)
    throw Error("[eval] " + a.data + ": needs at least 2 " + (tokens.tokenizer ? "tokens" : "bytes") +
                " to predict anything, has " + std::to_string(n) +
                (tokens.tokenizer ? " under " + tokens.tokenizer->name() : std::string()));
  EvalConfig ec{.context = a.context, .batch = a.batch};
  ProgressLine progress;
  const auto t0 = std::chrono::steady_clock::now();
  auto on_progress = [&](int64_t done, int64_t total) {
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    progress.update("eval: window " + std::to_string(done) + "/" + std::to_string(total) + " | ETA " +
                    format_duration(s / double(done) * double(total - done)));
  };
  EvalResult r = tokens.tokenizer ? evaluate_tokens(*model, ids, ec, on_progress) : evaluate_text(*model, text, ec, on_progress);
  progress.finish();
  if (!a.logits.empty()) {
    // The first window's logits [T, V] (positions 0..T-1 of the file's tokens), for comparison
    // with other implementations.
    const int64_t T = std::min<int64_t>(a.context > 0 ? a.context : model->config().max_position_embeddings, n);
    std::vector<int32_t> window(static_cast<size_t>(T)), none(static_cast<size_t>(T), -1);
    for (int64_t t = 0; t < T; ++t) window[t] = tokens.tokenizer ? ids[t] : int32_t(uint8_t(text[t]));
    model->forward(window.data(), none.data(), 1, T);
    write_safetensors(a.logits, {{"logits", &model->logits()}}, {{"tokens", std::to_string(T)}});
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t ctx = a.context > 0 ? a.context : model->config().max_position_embeddings;
  // Per byte only when a token is a byte; a tokenizer's tokens span several bytes each.
  const std::string unit = tokens.tokenizer ? "bits/token" : "bits/byte";
  std::printf("%s: %lld predicted tokens, context %lld, loss %.6f nats/token (%.4f %s), perplexity %.4f, %.0f tokens/s\n",
              a.data.c_str(), (long long)r.tokens, (long long)ctx, r.loss(), r.loss() / std::log(2.0), unit.c_str(),
              r.perplexity(), double(n) / secs);
  nlohmann::json calls;
  if (swarm) {
    calls = swarm->take_step_metrics();
    std::printf("remote experts: %s\n", swarm->summary(calls).c_str());
  }
  if (a.json) {
    nlohmann::json j = {{"tokens", r.tokens}, {"loss", r.loss()}, {"perplexity", r.perplexity()}, {"context", ctx}, {"file", a.data}};
    if (tokens.tokenizer) {
      j["bits_per_token"] = r.loss() / std::log(2.0);
      j["tokenizer"] = tokens.tokenizer->name();
      j["ids"] = ids.size();
    } else {
      j["bits_per_byte"] = r.loss() / std::log(2.0);
    }
    if (swarm) j.update(calls);
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}
}  // namespace

Runner add_eval(CLI::App& app) {
  auto a = std::make_shared<EvalArgs>();
  CLI::App* c = app.add_subcommand("eval", "evaluate a checkpoint's next-token loss on a text file");
  c->add_option("--model", a->model, "checkpoint directory (config.json + model.safetensors)")->required();
  add_weights_option(c, a->weights);
  c->add_option("--data", a->data, "text file")->required()->check(CLI::ExistingFile);
  c->add_option("--context", a->context, "window length (default: max_position_embeddings)")->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  c->add_option("--batch-size", a->batch, "windows per forward pass")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--threads", a->threads, "threads (default: all cores)")->check(moe::cli::NonNegative);
  c->add_option("--expert-parallel", a->expert_parallel, "under mpirun: split each MoE layer's experts over R ranks")->check(moe::cli::Positive);
  c->add_flag("--json", a->json, "end with one JSON line: tokens, loss, perplexity");
  c->add_option("--logits", a->logits, "also write the first window's logits [T, V] (float32 tensor \"logits\") to this safetensors file");
  add_remote_options(c, a->remote);
  add_replica_check_options(c, a->remote);
  return [a] { return run_eval(*a); };
}

}  // namespace moe::cli
