// moe generate: sample a continuation of a prompt, streaming bytes as they are produced.
#include <chrono>
#include <cstdio>

#include "commands.h"
#include "core/threading.h"
#include "infer/generator.h"
#include "model/checkpoint.h"
#include "parallel.h"
#include "remote.h"
#include "terminal.h"

namespace moe::cli {

namespace {
struct GenArgs {
  std::string model, prompt;
  int64_t max_tokens = 200;
  float temperature = 0.8f;
  int top_k = 0;
  uint64_t seed = 0;
  int threads = 0;
  int expert_parallel = 0;
  RemoteArgs remote;
};

int run_generate(const GenArgs& a) {
  set_num_threads(a.threads);
  // Under mpirun every rank runs the same tokens; the experts are split over the ranks.
  dist::ParallelLayout layout = job_layout(a.expert_parallel, "generate");
  std::unique_ptr<RemoteSwarm> swarm;
  if (!a.remote.bootstrap.empty()) swarm = std::make_unique<RemoteSwarm>(a.remote, layout);
  auto model = load_pretrained(a.model, nullptr, layout);
  model->set_data_group(dist::Communicator());
  Generator gen(*model);
  GenerateConfig gc{.max_tokens = a.max_tokens, .sampler = {.temperature = a.temperature, .top_k = a.top_k}, .seed = a.seed};
  std::fwrite(a.prompt.data(), 1, a.prompt.size(), stdout);
  std::fflush(stdout);
  const auto t0 = std::chrono::steady_clock::now();
  std::string out = gen.generate(a.prompt, gc, [](uint8_t b) {
    std::fputc(b, stdout);
    std::fflush(stdout);
    return true;
  });
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("\n");
  if (is_printing_rank())
    std::fprintf(stderr, "[%zu tokens in %.2f s, %s tok/s]\n", out.size(), s, format_rate(double(out.size()) / s).c_str());
  if (swarm) std::fprintf(stderr, "[remote experts: %s]\n", swarm->summary(swarm->take_step_metrics()).c_str());
  return 0;
}
}  // namespace

Runner add_generate(CLI::App& app) {
  auto a = std::make_shared<GenArgs>();
  CLI::App* c = app.add_subcommand("generate", "sample a continuation of a prompt");
  c->add_option("--model", a->model, "checkpoint directory")->required();
  c->add_option("--prompt", a->prompt, "text to continue")->required();
  c->add_option("--max-tokens", a->max_tokens, "bytes to generate")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--temperature", a->temperature, "sampling temperature (0: greedy)")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--top-k", a->top_k, "sample among the k most likely bytes (0: all)")->capture_default_str()->check(CLI::NonNegativeNumber);
  c->add_option("--seed", a->seed, "sampling seed")->capture_default_str();
  c->add_option("--threads", a->threads, "threads (default: all cores)")->check(CLI::NonNegativeNumber);
  c->add_option("--expert-parallel", a->expert_parallel, "under mpirun: split each MoE layer's experts over R ranks")->check(CLI::PositiveNumber);
  add_remote_options(c, a->remote);
  add_replica_check_options(c, a->remote);
  return [a] { return run_generate(*a); };
}

}  // namespace moe::cli
