#include "train/trainer.h"

#include <cctype>
#include <chrono>
#include <cmath>
#include <set>
#include <filesystem>
#include <fstream>

#include "core/exact_sums.h"
#include "dist/gradient_sync.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "train/evaluate.h"
#include "train/optimizer_state.h"
#include "train/plots.h"
#include "train/schedule.h"

namespace moe {

namespace fs = std::filesystem;
using nlohmann::json;

std::string trainer_state_path(const std::string& dir, int64_t step) {
  return dir + "/trainer_state-" + std::to_string(step) + ".safetensors";
}

namespace {

// Optimizer-state files in dir ("trainer_state-<step>[.shard<i>-of-<R>].safetensors") with their
// steps.
std::vector<std::pair<int64_t, fs::path>> state_files(const std::string& dir) {
  std::vector<std::pair<int64_t, fs::path>> out;
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    if (n.rfind("trainer_state-", 0) != 0 || n.size() <= 26 || n.substr(n.size() - 12) != ".safetensors") continue;
    size_t end = 14;
    while (end < n.size() && std::isdigit(static_cast<unsigned char>(n[end]))) ++end;
    if (end == 14 || (n[end] != '.' )) continue;
    try {
      out.emplace_back(std::stoll(n.substr(14, end - 14)), e.path());
    } catch (...) {
    }
  }
  return out;
}

std::string state_shard_path(const std::string& dir, int64_t step, int shard, int R) {
  return dir + "/trainer_state-" + std::to_string(step) + ".shard" + std::to_string(shard + 1) + "-of-" +
         std::to_string(R) + ".safetensors";
}

}  // namespace

Trainer::Trainer(const TrainConfig& cfg, std::unique_ptr<DecoderLM> model, const TextCorpus& corpus)
    : cfg_(cfg), model_(std::move(model)), corpus_(corpus) {
  cfg_.check();
  // Checked here, before a run prints or writes anything, rather than at the first batch.
  model_->config().require_bytes("train", "the model");
  const int64_t T = context(), P = model_->config().max_position_embeddings;
  if (T > P)
    throw Error("[train] --context " + std::to_string(T) + " exceeds the model's max_position_embeddings (" +
                std::to_string(P) + "); raise it in the model config to train on longer sequences");
  const int64_t n = int64_t(corpus_.train().size());
  if (n < T + 1)
    throw Error("[data] the training split has " + std::to_string(n) + " byte" + (n == 1 ? "" : "s") +
                "; a context of " + std::to_string(T) + " needs at least " + std::to_string(T + 1) +
                " (give more text or a smaller --context)");
  opt_ = std::make_unique<AdamW>(model_->params(), AdamWConfig{.weight_decay = cfg_.weight_decay});
}

std::unique_ptr<Trainer> Trainer::resume(const TrainConfig& cfg, const TextCorpus& corpus,
                                         const dist::ParallelLayout& layout) {
  std::map<std::string, std::string> meta;
  auto model = load_pretrained(cfg.out_dir, &meta, layout);
  const int64_t step = checkpoint_step(meta, cfg.out_dir);
  if (step < 0)
    throw Error("[train] " + cfg.out_dir + "/model.safetensors has no training step in its metadata: not a checkpoint written by moe train");
  const std::string state = trainer_state_path(cfg.out_dir, step);
  if (!fs::exists(state))
    throw Error("[train] " + cfg.out_dir + ": no optimizer state for step " + std::to_string(step) + " (" + state + ")");
  auto t = std::make_unique<Trainer>(cfg, std::move(model), corpus);
  // The step's state may be split into expert shards, written at any R: find each tensor by name.
  std::vector<SafetensorsFile> files{SafetensorsFile::open(state)};
  for (auto& [s, path] : state_files(cfg.out_dir))
    if (s == step && path.filename().string().find(".shard") != std::string::npos)
      files.push_back(SafetensorsFile::open(path.string()));
  load_optimizer_state(*t->opt_, files, step, cfg.out_dir);
  t->step_ = step;
  t->model_->restore_steps(step);
  // Drop metrics logged after the checkpoint (the steps about to be redone).
  const std::string mpath = cfg.out_dir + "/metrics.jsonl";
  if (layout.world.rank() == 0 && fs::exists(mpath)) {
    std::ifstream in(mpath);
    std::string line, kept;
    while (std::getline(in, line)) {
      try {
        auto j = json::parse(line);
        if (j.value("step", int64_t(0)) <= step) kept += line + "\n";
      } catch (const json::exception&) {
      }  // a line cut by a crash
    }
    atomic_write_file(mpath, kept);
  }
  return t;
}

int64_t Trainer::context() const {
  return cfg_.context > 0 ? cfg_.context : model_->config().max_position_embeddings;
}

EvalResult Trainer::validate() {
  EvalConfig ec{.context = context(), .batch = cfg_.batch_size, .max_tokens = cfg_.eval_tokens, .peer_usage = true};
  const std::string& val = corpus_.val().size() >= 2 ? corpus_.val() : corpus_.train();
  // Every rank evaluates the whole text (the experts' owners still compute their rows).
  model_->set_training(false);
  model_->set_data_group(dist::Communicator());
  EvalResult r = evaluate_text(*model_, val, ec);
  model_->set_data_group(model_->layout().world);
  model_->set_training(true);
  return r;
}

void Trainer::save(int64_t step) {
  // Optimizer state first, under its step's name; then the model (whose metadata names the step);
  // then older states are removed. A crash at any point leaves a model whose state files exist.
  // Under mpirun all ranks take part: rank 0 writes the non-expert moments, the first replica's
  // ranks their experts' moments.
  const dist::ParallelLayout& L = model_->layout();
  const std::map<std::string, std::string> meta = {{"step", std::to_string(step)}, {"format", "moe-trainer-state-v1"}};
  if (L.expert_parallel == 1) {
    if (L.world.rank() == 0) write_safetensors(trainer_state_path(cfg_.out_dir, step), opt_->state_tensors(), meta);
  } else {
    std::set<std::string> sharded;
    for (Param* p : model_->params())
      if (p->sharded) sharded.insert("adam.m." + p->name), sharded.insert("adam.v." + p->name);
    NamedTensors mine, rest;
    for (auto& t : opt_->state_tensors()) (sharded.count(t.first) ? mine : rest).push_back(t);
    if (L.replica.rank() == 0)
      write_safetensors(state_shard_path(cfg_.out_dir, step, L.shard(), L.expert_parallel), mine, meta);
    if (L.world.rank() == 0) write_safetensors(trainer_state_path(cfg_.out_dir, step), rest, meta);
  }
  L.world.barrier();
  save_pretrained(cfg_.out_dir, *model_, {{"step", std::to_string(step)}});
  if (L.world.rank() == 0) {
    write_training_plots(cfg_.out_dir);
    // Older steps, and this step's expert shards from a save at another R.
    const std::string of = "-of-" + std::to_string(L.expert_parallel) + ".safetensors";
    for (auto& [s, path] : state_files(cfg_.out_dir)) {
      const std::string n = path.filename().string();
      const bool other_r = n.find(".shard") != std::string::npos &&
                           (L.expert_parallel == 1 || n.compare(n.size() - of.size(), of.size(), of) != 0);
      if (s != step || other_r) fs::remove(path);
    }
  }
  L.world.barrier();
}

namespace {

// Layout-exact sums for the length of a run: the mode, and a double accumulator per gradient.
class ExactSumsScope {
 public:
  ExactSumsScope(int blocks, int world, const ParamList& params) : on_(blocks > 0) {
    if (!on_) return;
    if (blocks % world != 0)
      throw Error("[train] --exact-blocks " + std::to_string(blocks) + " is not a multiple of the " +
                  std::to_string(world) + " ranks (each rank must hold whole blocks)");
    for (Param* p : params) {
      if (!p->trainable) continue;
      if (p->row_sparse) throw Error("[train] --exact-blocks does not support PEER layers (" + p->name + ")");
      p->g64.assign(size_t(p->g.numel()), 0.0);
      exact::register_accumulator(p->g.data(), p->g64.data());
    }
    params_ = params;
    exact::configure(blocks, world);
  }
  ~ExactSumsScope() {
    if (!on_) return;
    exact::configure(0, 1);
    exact::clear_accumulators();
    for (Param* p : params_) p->g64 = {};
  }

 private:
  bool on_;
  ParamList params_;
};

}  // namespace

int64_t Trainer::run(const std::function<void(const StepReport&)>& on_step, const std::atomic<bool>* stop) {
  using clock = std::chrono::steady_clock;
  const dist::ParallelLayout& L = model_->layout();
  dist::Communicator world = L.world;
  const bool rank0 = world.rank() == 0;
  const int W = world.size();
  ExactSumsScope exact_sums(cfg_.exact_blocks, W, model_->params());
  std::ofstream metrics;
  if (rank0) {
    std::error_code ec;
    fs::create_directories(cfg_.out_dir, ec);
    if (ec) throw Error("[train] cannot create " + cfg_.out_dir + ": " + ec.message());
    atomic_write_file(cfg_.out_dir + "/train_config.json", cfg_.to_json().dump(2) + "\n");
    metrics.open(cfg_.out_dir + "/metrics.jsonl", std::ios::app);
    if (!metrics) throw Error("[train] cannot write " + cfg_.out_dir + "/metrics.jsonl");
  }

  const int64_t B = cfg_.batch_size, T = context();
  if (B < W)
    throw Error("[train] --batch-size " + std::to_string(B) + " is smaller than the " + std::to_string(W) +
                " ranks that split each batch");
  // This rank's sequences of every global batch.
  const int64_t b0 = int64_t(world.rank()) * B / W, b1 = int64_t(world.rank() + 1) * B / W;

  LRSchedule sched{.max_lr = cfg_.lr, .min_lr = cfg_.lr * cfg_.min_lr_ratio,
                   .warmup_steps = cfg_.warmup_steps >= 0 ? cfg_.warmup_steps : std::min<int64_t>(100, cfg_.steps / 10),
                   .total_steps = cfg_.steps};
  std::vector<int32_t> tokens(B * T), targets(B * T);
  ParamList params = model_->params();
  double ema_step_s = 0;
  int64_t saved_step = -1;
  const int64_t last = cfg_.stop_after > 0 ? std::min(cfg_.stop_after, cfg_.steps) : cfg_.steps;
  // A signal may reach the ranks at different moments: they agree once per step boundary.
  auto stopping = [&] { return world.max(stop && stop->load() ? 1 : 0) > 0; };
  bool stopped = false;
  while (step_ < last && !(stopped = stopping())) {
    const int64_t s = step_ + 1;
    const auto t0 = clock::now();
    L.reset_stats();
    Rng rng(mix_seed(cfg_.seed, uint64_t(s)));
    corpus_.sample_batch(tokens.data(), targets.data(), B, T, rng);
    model_->set_training(true);
    const float lr = sched.at(s);
    model_->set_learning_rate(lr);
    model_->zero_grad();
    LossResult r = model_->forward(tokens.data() + b0 * T, targets.data() + b0 * T, b1 - b0, T);
    if (!std::isfinite(r.objective()))
      throw Error("[train] loss is not finite at step " + std::to_string(s) + " (try a lower --lr)");
    model_->backward();
    StepReport rep;
    if (W > 1 || cfg_.exact_blocks > 0) dist::all_reduce_gradients(params, L);
    rep.grad_norm = dist::clip_grad_norm(params, cfg_.grad_clip, L);
    rep.lr = lr;
    opt_->step(rep.lr);
    model_->after_step();
    step_ = s;
    const double dt = std::chrono::duration<double>(clock::now() - t0).count();
    ema_step_s = ema_step_s == 0 ? dt : 0.9 * ema_step_s + 0.1 * dt;

    rep.step = s;
    rep.total = cfg_.steps;
    rep.loss = r.objective();
    rep.nll = r.mean_nll();
    rep.aux_loss = r.aux_loss;
    rep.z_loss = r.z_loss;
    rep.tokens_per_s = double(B * T) / ema_step_s;
    rep.eta_s = ema_step_s * double(cfg_.steps - s);
    for (const RoutingPlan* p : model_->routing()) {
      rep.expert_tokens.push_back(p->stats.tokens_per_expert);
      rep.router_entropy.push_back(p->stats.entropy);
      rep.aux_loss_per_layer.push_back(p->stats.aux_loss);
      rep.z_loss_per_layer.push_back(p->stats.z_loss);
      const int64_t routed = p->stats.batch_tokens > 0 ? p->stats.batch_tokens : p->n_tok;
      rep.dropped_fraction.push_back(double(p->stats.dropped) / double(std::max<int64_t>(1, routed * p->k)));
      double mx = 0, sum = 0;
      for (auto c : p->stats.tokens_per_expert) mx = std::max(mx, double(c)), sum += double(c);
      const double mean = sum / double(p->stats.tokens_per_expert.size());
      rep.max_vio.push_back(mean > 0 ? (mx - mean) / mean : 0.0);
    }
    if (W > 1) {
      rep.world_size = W;
      const dist::CommStats cs = L.stats();
      rep.exchange_s = cs.exchange_s;
      rep.allreduce_s = cs.reduce_s;
      rep.bytes_sent = world.all_gather(cs.exchange_bytes + cs.reduce_bytes);
    }
    // An interruption during this step is seen at the next boundary, which saves this step.
    const bool final_step = s == last;
    if ((cfg_.eval_every > 0 && s % cfg_.eval_every == 0) || s == cfg_.steps) {
      rep.has_val = true;
      const EvalResult val = validate();
      rep.val_loss = val.loss();
      rep.peer_layers = model_->peer_layers();
      for (const PEERUsage& u : val.peer_usage) {
        rep.peer_fraction_used.push_back(u.fraction_used());
        rep.peer_kl_from_uniform.push_back(u.kl_from_uniform());
        rep.peer_head_overlap.push_back(u.head_overlap());
      }
    }
    json m = {{"step", s}, {"loss", rep.loss}, {"nll", rep.nll}, {"lr", rep.lr},
              {"grad_norm", rep.grad_norm}, {"tokens_per_s", rep.tokens_per_s}, {"step_s", dt},
              {"time", std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count()}};
    if (!rep.expert_tokens.empty())
      m.update({{"aux_loss", rep.aux_loss}, {"z_loss", rep.z_loss}, {"expert_tokens", rep.expert_tokens},
                {"router_entropy", rep.router_entropy}, {"max_vio", rep.max_vio},
                {"dropped_fraction", rep.dropped_fraction}, {"aux_loss_per_layer", rep.aux_loss_per_layer},
                {"z_loss_per_layer", rep.z_loss_per_layer}});
    if (rep.has_val) m["val_loss"] = rep.val_loss;
    if (!rep.peer_layers.empty())
      m.update({{"peer_layers", rep.peer_layers}, {"peer_fraction_used", rep.peer_fraction_used},
                {"peer_kl_from_uniform", rep.peer_kl_from_uniform}, {"peer_head_overlap", rep.peer_head_overlap}});
    if (rep.world_size > 1)
      m.update({{"world_size", rep.world_size}, {"expert_parallel", L.expert_parallel},
                {"exchange_s", rep.exchange_s}, {"allreduce_s", rep.allreduce_s}, {"bytes_sent", rep.bytes_sent}});
    if (step_metrics_) {
      rep.extra = step_metrics_();
      if (rep.extra.is_object()) m.update(rep.extra);
    }
    if (rank0) {
      metrics << m.dump() << "\n";
      metrics.flush();
    }
    if ((cfg_.save_every > 0 && s % cfg_.save_every == 0) || final_step) {
      save(s);  // after the metrics line, so the plots include this step
      saved_step = s;
      rep.saved = true;
    }
    if (on_step) on_step(rep);
  }
  // Interrupted between steps: make sure the last completed step is on disk.
  if (step_ > 0 && saved_step != step_ && stopped) save(step_);
  return step_;
}

}  // namespace moe
