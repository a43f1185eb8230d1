// moe train: train a model from a config on text files, with a live progress line.
#include <cstdio>
#include <filesystem>
#include <optional>
#include <sstream>

#include "commands.h"
#include "core/stop_signals.h"
#include "core/threading.h"
#include "default_config.h"
#include "io/atomic_file.h"
#include "io/dir_lock.h"
#include "model/checkpoint.h"
#include "parallel.h"
#include "remote.h"
#include "terminal.h"
#include "train/trainer.h"
#include "cli_checks.h"

namespace moe::cli {

namespace fs = std::filesystem;

namespace {

constexpr const char* kFortunes = "/usr/share/games/fortunes";

struct TrainArgs {
  std::string model_config, out;
  std::vector<std::string> data;
  int64_t steps = 600, batch = 32, context = 0, eval_every = 100, save_every = 200, warmup = -1;
  int exact_blocks = 0;
  int64_t eval_tokens = 65536;
  int64_t stop_after = 0;
  float lr = 3e-3f, min_lr_ratio = 0.1f;
  uint64_t seed = 0;
  int threads = 0;
  int expert_parallel = 0;  // 0: not given
  bool resume = false, overwrite = false;
  std::string init;  // start from this checkpoint's weights (fresh optimizer)
  RemoteArgs remote;
};

std::string load_summary(const std::vector<std::vector<int64_t>>& acc, const std::vector<int>& layer_ids) {
  std::ostringstream o;
  for (size_t l = 0; l < acc.size(); ++l) {
    int64_t sum = 0, mx = 0;
    for (auto c : acc[l]) sum += c, mx = std::max(mx, c);
    const double mean = double(sum) / double(acc[l].size());
    o << "    layer " << layer_ids.at(l) << " expert load %:";
    for (auto c : acc[l]) {
      char b[16];
      std::snprintf(b, sizeof b, " %4.1f", sum ? 100.0 * double(c) / double(sum) : 0.0);
      o << b;
    }
    char b[64];
    std::snprintf(b, sizeof b, "  MaxVio %.2f", mean > 0 ? (double(mx) - mean) / mean : 0.0);
    o << b << (l + 1 < acc.size() ? "\n" : "");
  }
  return o.str();
}

int run_train(CLI::App& cmd, const TrainArgs& a) {
  set_num_threads(a.threads);
  dist::ParallelLayout layout = job_layout(a.expert_parallel, "train");
  // Before any model exists (its MoE layers are built remote), and outliving it.
  std::unique_ptr<RemoteSwarm> swarm;
  if (!a.remote.bootstrap.empty()) swarm = std::make_unique<RemoteSwarm>(a.remote, layout);
  const bool rank0 = layout.world.rank() == 0;
  TrainConfig tc;
  const bool has_weights = fs::exists(a.out + "/model.safetensors") || fs::exists(a.out + "/model.safetensors.index.json");
  const bool has_ckpt = has_weights || fs::exists(a.out + "/config.json");
  if (a.resume) {
    if (!fs::exists(a.out + "/train_config.json") || !has_weights)
      throw Error("[train] --resume: " + a.out + " holds no checkpoint written by moe train");
    tc = TrainConfig::load(a.out + "/train_config.json");
  } else if (has_ckpt && !a.overwrite) {
    throw Error("[train] " + a.out + " already holds a checkpoint; pass --resume to continue it or --overwrite to start over");
  }
  // Flags given on the command line override the saved run's settings.
  auto given = [&](const char* flag) { return cmd.count(flag) > 0 || !a.resume; };
  if (given("--steps")) tc.steps = a.steps;
  if (given("--batch-size")) tc.batch_size = a.batch;
  if (given("--context")) tc.context = a.context;
  if (given("--lr")) tc.lr = a.lr;
  if (given("--seed")) tc.seed = a.seed;
  if (given("--eval-every")) tc.eval_every = a.eval_every;
  if (given("--eval-tokens")) tc.eval_tokens = a.eval_tokens;
  if (given("--save-every")) tc.save_every = a.save_every;
  if (given("--warmup")) tc.warmup_steps = a.warmup;
  if (given("--min-lr-ratio")) tc.min_lr_ratio = a.min_lr_ratio;
  if (given("--exact-blocks")) tc.exact_blocks = a.exact_blocks;
  tc.out_dir = a.out;
  tc.stop_after = a.stop_after;
  if (tc.exact_blocks > 0 && tc.batch_size % tc.exact_blocks != 0)
    throw Error("[train] --exact-blocks " + std::to_string(tc.exact_blocks) + " does not divide --batch-size " +
                std::to_string(tc.batch_size) + " (each block is a whole number of sequences)");
  if (tc.exact_blocks > 0 && tc.exact_blocks % layout.world.size() != 0)
    throw Error("[train] --exact-blocks " + std::to_string(tc.exact_blocks) + " is not a multiple of the " +
                std::to_string(layout.world.size()) + " ranks (each rank must hold whole blocks)");

  // One trainer per directory: rank 0 holds the lock for the job until it ends, in any way.
  std::unique_ptr<DirLock> lock;
  if (rank0) {
    fs::create_directories(a.out);
    lock = std::make_unique<DirLock>(a.out, "moe train");
    remove_stale_temporaries(a.out);  // a killed run's half-written files
  }
  std::vector<std::string> data = a.data;
  if (data.empty()) {
    if (!fs::is_directory(kFortunes))
      throw Error(std::string("[train] no --data given and the fortune corpus is not installed at ") + kFortunes +
                  " (apt-get install fortunes fortunes-de fortunes-es fortunes-it fortunes-br)");
    data.push_back(kFortunes);
  }
  // Everything a user can get wrong is checked before the first line of output.
  std::unique_ptr<DecoderLM> fresh;
  if (!a.init.empty()) {
    if (a.resume) throw Error("[train] --init starts a new run from a checkpoint's weights; it cannot be combined with --resume");
    if (!a.model_config.empty()) throw Error("[train] --init takes the model config from the checkpoint; drop --model-config");
    if (fs::exists(a.out) && fs::exists(a.init) && fs::equivalent(a.out, a.init))
      throw Error("[train] --init and --out must be different directories");
    fresh = load_pretrained(a.init, nullptr, layout);
  } else if (!a.resume) {
    ModelConfig mc = a.model_config.empty()
                         ? ModelConfig::from_json(nlohmann::json::parse(kDefaultConfigJson), "<built-in default config>")
                         : ModelConfig::load(a.model_config);
    fresh = std::make_unique<DecoderLM>(mc, layout);
  }
  TextCorpus corpus = TextCorpus::load(data);
  std::unique_ptr<Trainer> trainer;  // checks the corpus against the context
  if (a.resume) {
    trainer = Trainer::resume(tc, corpus, layout);
  } else {
    if (a.init.empty()) fresh->init_weights(tc.seed);
    trainer = std::make_unique<Trainer>(tc, std::move(fresh), corpus);
    if (rank0) fs::create_directories(a.out);
    if (a.overwrite && rank0) {
      // Starting over retires the old checkpoint as a whole, model first: a crash before the new
      // run's first save then leaves no checkpoint, never an old model without its optimizer state.
      auto remove_if = [&](auto&& pred) {
        for (auto& e : fs::directory_iterator(a.out))
          if (pred(e.path().filename().string())) fs::remove(e.path());
      };
      auto starts = [](const std::string& n, const char* p) { return n.rfind(p, 0) == 0; };
      remove_if([](const std::string& n) { return n == "model.safetensors.index.json"; });
      remove_if([](const std::string& n) { return n == "model.safetensors" || n == "config.json"; });
      remove_if([&](const std::string& n) {
        return (starts(n, "model-") && n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0) ||
               starts(n, "trainer_state-") || n == "metrics.jsonl";
      });
    }
  }
  ProgressLine progress;
  progress.print("data: " + std::to_string(corpus.files().size()) + " files, " +
                 std::to_string(corpus.train().size()) + " training bytes, " +
                 std::to_string(corpus.val().size()) + " held-out bytes");
  if (a.resume)
    progress.print("resuming " + a.out + " at step " + std::to_string(trainer->step()) + " of " + std::to_string(tc.steps));
  if (rank0) atomic_write_file(a.out + "/heldout.txt", corpus.val());
  layout.world.barrier();  // the directory is ready before any rank writes into it
  const ModelConfig& mc = trainer->model().config();
  std::string ffn = mc.is_moe() ? std::to_string(mc.num_local_experts) + " experts, top-" + std::to_string(mc.num_experts_per_tok) : "dense";
  if (mc.ffn_type == "peer") {
    ffn += "; PEER in layer " + join_ints(mc.peer_layers) + ": " + std::to_string(mc.peer_num_experts) + " experts, " +
           std::to_string(mc.peer_heads) + " heads x top-" + std::to_string(mc.peer_top_k);
  }
  char head[512];
  std::snprintf(head, sizeof head, "model: %s, %d layers, d=%d, %s; %.2fM parameters, %.2fM active per token",
                mc.model_type.c_str(), mc.num_hidden_layers, mc.hidden_size, ffn.c_str(), mc.total_params() / 1e6,
                mc.active_params() / 1e6);
  progress.print(head);
  if (layout.world.size() > 1)
    progress.print("mpirun: " + std::to_string(layout.world.size()) + " ranks, experts split " +
                   std::to_string(layout.expert_parallel) + " ways, " +
                   std::to_string(layout.world.size() / layout.expert_parallel) + " data-parallel replica(s)");
  progress.print("training " + std::to_string(tc.steps) + " steps, batch " + std::to_string(tc.batch_size) + " x " +
                 std::to_string(tc.context > 0 ? tc.context : mc.max_position_embeddings) + " tokens, lr " +
                 std::to_string(tc.lr) + ", seed " + std::to_string(tc.seed) + " -> " + a.out);

  if (swarm) {
    trainer->set_step_metrics([&] { return swarm->take_step_metrics(); });
    progress.print("experts: remote, uids " + a.remote.prefix + ".<layer>.<expert>, found through the DHT at " +
                   a.remote.bootstrap + " (k_min " + std::to_string(a.remote.calls.k_min) + ")");
  }
  std::atomic<bool> stop{false};  // set by SIGINT or SIGTERM
  std::optional<StopOnSignal> stop_on_signal(std::in_place, stop);
  std::vector<std::vector<int64_t>> acc;
  double last_val = NAN;
  const int64_t print_every = std::max<int64_t>(1, tc.steps / 20);
  const int64_t end = trainer->run([&](const StepReport& r) {
    if (acc.size() != r.expert_tokens.size()) acc.assign(r.expert_tokens.size(), {});
    for (size_t l = 0; l < acc.size(); ++l) {
      acc[l].resize(r.expert_tokens[l].size());
      for (size_t e = 0; e < acc[l].size(); ++e) acc[l][e] += r.expert_tokens[l][e];
    }
    if (r.has_val) last_val = r.val_loss;
    char line[256];
    std::snprintf(line, sizeof line, "step %lld/%lld | loss %.4f | val %s | lr %.2e | %s tok/s | ETA %s%s",
                  (long long)r.step, (long long)r.total, r.nll,
                  std::isnan(last_val) ? "-" : std::to_string(last_val).substr(0, 6).c_str(), r.lr,
                  format_rate(r.tokens_per_s).c_str(), format_duration(r.eta_s).c_str(), r.saved ? " | saved" : "");
    if (!r.has_val) {
      progress.update(line, r.step % print_every == 0 || r.step == r.total);
      return;
    }
    progress.print(line);
    if (swarm && !r.extra.is_null()) progress.print("    remote experts this step: " + swarm->summary(r.extra));
    if (!acc.empty()) {
      progress.print(load_summary(acc, trainer->model().routed_layers()));
      acc.assign(acc.size(), {});
    }
    for (size_t i = 0; i < r.peer_layers.size(); ++i) {
      char b[160];
      std::snprintf(b, sizeof b, "    layer %d PEER on validation: %.1f%% of experts retrieved, KL from uniform %.2f, head overlap %.2f%%",
                    r.peer_layers[i], 100.0 * r.peer_fraction_used[i], r.peer_kl_from_uniform[i], 100.0 * r.peer_head_overlap[i]);
      progress.print(b);
    }
  }, &stop);
  progress.finish();
  stop_on_signal.reset();
  if (stop.load()) {
    if (rank0)
      std::fprintf(stderr, "interrupted: checkpoint of step %lld saved in %s; continue with --resume\n", (long long)end, a.out.c_str());
    return 130;
  }
  if (std::isnan(last_val))
    std::printf("trained %lld steps (no validation yet); checkpoint in %s\n", (long long)end, a.out.c_str());
  else
    std::printf("trained %lld steps; final validation loss %.4f nats/byte; checkpoint in %s\n", (long long)end,
                last_val, a.out.c_str());
  return 0;
}

}  // namespace

Runner add_train(CLI::App& app) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* c = app.add_subcommand("train", "train a model (Mixtral-style MoE or dense) on text");
  c->add_option("--model-config", a->model_config, "Hugging Face-style config.json (default: built-in small MoE)")->check(CLI::ExistingFile);
  c->add_option("--data", a->data, "text files or directories (default: the fortune corpus)")->expected(1, -1);
  c->add_option("--out", a->out, "checkpoint directory")->required();
  c->add_option("--steps", a->steps, "optimizer steps")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--batch-size", a->batch, "sequences per step")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--context", a->context, "tokens per sequence (default: max_position_embeddings)")->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  c->add_option("--lr", a->lr, "peak learning rate (warm-up, then cosine to lr * --min-lr-ratio)")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--min-lr-ratio", a->min_lr_ratio, "the cosine's final learning rate over the peak (1: constant after warm-up)")->capture_default_str()->check(CLI::Range(0.0f, 1.0f));
  c->add_option("--warmup", a->warmup, "warm-up steps (default: min(100, steps/10))");
  c->add_option("--seed", a->seed, "seed for initialisation and data order")->capture_default_str();
  c->add_option("--eval-every", a->eval_every, "validate every N steps (0: only at the end)")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--eval-tokens", a->eval_tokens, "held-out tokens used for validation during training")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--save-every", a->save_every, "checkpoint every N steps (0: only at the end)")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--threads", a->threads, "threads (default: all cores)")->check(moe::cli::NonNegative);
  c->add_option("--stop-after", a->stop_after, "save and stop after this step, as an interrupted run that --resume continues")->check(moe::cli::Positive);
  c->add_option("--expert-parallel", a->expert_parallel, "under mpirun: split each MoE layer's experts over R ranks (R divides the ranks; 1: data parallelism only)")->check(moe::cli::Positive);
  c->add_option("--exact-blocks", a->exact_blocks, "layout-exact sums over G blocks of each batch: the same losses at any rank count that divides G, at some cost in speed (0: off; docs/distributed.md)")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_flag("--resume", a->resume, "continue the run checkpointed in --out");
  c->add_option("--init", a->init, "start from this checkpoint's weights and config (e.g. after moe grow), with a fresh optimizer");
  c->add_flag("--overwrite", a->overwrite, "start over even if --out holds a checkpoint");
  add_remote_options(c, a->remote);
  return [c, a] { return run_train(*c, *a); };
}

}  // namespace moe::cli
