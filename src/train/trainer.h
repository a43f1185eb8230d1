#pragma once
// The training loop: seeded batches, forward/backward, clipping, AdamW with warm-up + cosine,
// periodic validation, a JSON-lines metrics file and atomic checkpoints that --resume continues
// from with the same losses as an uninterrupted run. The library never prints: the caller gets a
// StepReport per step.
#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "model/decoder_lm.h"
#include "train/adamw.h"
#include "train/evaluate.h"
#include "train/text_corpus.h"
#include "train/train_config.h"

namespace moe {


struct StepReport {
  int64_t step = 0, total = 0;
  double loss = 0;       // objective: mean NLL + weighted router losses
  double nll = 0;        // mean NLL (nats per byte)
  double aux_loss = 0, z_loss = 0;  // mean over MoE layers, before coefficients
  float lr = 0;
  double grad_norm = 0;
  double tokens_per_s = 0;
  double eta_s = 0;
  bool has_val = false;
  double val_loss = 0;
  bool saved = false;
  std::vector<std::vector<int64_t>> expert_tokens;  // [MoE layer][expert]
  std::vector<double> router_entropy;               // [MoE layer]
  std::vector<double> max_vio;                      // [MoE layer]
  std::vector<double> dropped_fraction;             // [MoE layer] slots dropped by capacity
  std::vector<double> aux_loss_per_layer, z_loss_per_layer;  // [MoE layer], before coefficients
  // On validation steps, per PEER layer (model config's peer_layers order), measured on the
  // validation text: the statistics of PEERUsage. A falling fraction_used warns of key collapse.
  std::vector<int> peer_layers;
  std::vector<double> peer_fraction_used, peer_kl_from_uniform, peer_head_overlap;
  // Under mpirun: this step's seconds in expert all-to-all exchanges and in all-reduces (and the
  // other collectives) on rank 0, and the bytes each rank sent, in rank order.
  int world_size = 1;
  double exchange_s = 0, allreduce_s = 0;
  std::vector<int64_t> bytes_sent;
  // Caller-provided figures for this step (set_step_metrics), also written to metrics.jsonl.
  nlohmann::json extra;
};

class Trainer {
 public:
  // A fresh run: the model is initialised by the caller. The corpus must outlive the trainer.
  // Under mpirun every rank constructs its trainer with its model (whose layout says how the ranks
  // share the work): each rank runs its slice of every global batch of batch_size sequences (rank
  // w: sequences w B / W .. (w+1) B / W - 1 of the batch the single-process run draws), gradients
  // are summed over the ranks, and the losses are those of the whole batch. Only world rank 0
  // writes metrics, plots and train_config.json; checkpoints are written by all ranks together.
  Trainer(const TrainConfig& cfg, std::unique_ptr<DecoderLM> model, const TextCorpus& corpus);
  // Continue the run checkpointed in cfg.out_dir (model, optimizer state and step), at any layout.
  static std::unique_ptr<Trainer> resume(const TrainConfig& cfg, const TextCorpus& corpus,
                                         const dist::ParallelLayout& layout = {});

  // Runs to cfg.steps (or stop_after, or until *stop becomes true), then saves. Returns the last step.
  int64_t run(const std::function<void(const StepReport&)>& on_step,
              const std::atomic<bool>* stop = nullptr);
  // The validation text's loss, expert loads and each PEER layer's retrievals (EvalResult).
  EvalResult validate();
  void save(int64_t step);
  // Called once per step after the step's work: its fields join the step's metrics line and
  // StepReport::extra (e.g. remote expert calls, failures and latencies).
  void set_step_metrics(std::function<nlohmann::json()> f) { step_metrics_ = std::move(f); }

  DecoderLM& model() { return *model_; }
  int64_t step() const { return step_; }
  const TrainConfig& config() const { return cfg_; }

 private:
  int64_t context() const;
  TrainConfig cfg_;
  std::unique_ptr<DecoderLM> model_;
  const TextCorpus& corpus_;
  std::unique_ptr<AdamW> opt_;
  int64_t step_ = 0;
  std::function<nlohmann::json()> step_metrics_;
};

// Name of the optimizer-state file for a step inside a checkpoint directory (the non-expert
// moments; with experts split over R ranks, shard s's expert moments are in
// trainer_state-<step>.shard<s+1>-of-<R>.safetensors beside it).
std::string trainer_state_path(const std::string& dir, int64_t step);

}  // namespace moe
