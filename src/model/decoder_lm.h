#pragma once
// The Mixtral decoder language model (and its dense Mistral twin): embeddings, N decoder blocks,
// final RMSNorm, LM head. Byte-level: token id = byte value.
#include <memory>
#include <vector>

#include "model/config.h"
#include "model/decoder_block.h"
#include "nn/embedding.h"

namespace moe {

struct LossResult {
  double nll_sum = 0;     // sum of token NLL over counted positions (nats)
  int64_t count = 0;      // counted (predicted) positions
  double aux_objective = 0;  // weighted router losses (coefficients applied, summed over the MoE layers)
  double aux_loss = 0;    // mean over MoE layers of the balancing loss (unweighted)
  double z_loss = 0;      // mean over MoE layers of the z-loss (unweighted)
  double mean_nll() const { return count ? nll_sum / double(count) : 0.0; }
  double objective() const { return mean_nll() + aux_objective; }
};

class DecoderLM {
 public:
  // layout: the ranks of an mpirun job (expert parallelism R: this rank holds E / R experts of each
  // MoE layer; the world's ranks split each batch). Default: one process.
  explicit DecoderLM(const ModelConfig& cfg, const dist::ParallelLayout& layout = {});
  const dist::ParallelLayout& layout() const { return layout_; }
  // The ranks that split the batches of forward(): its loss, the routers' balancing losses and
  // statistics are those of all their tokens together, and backward() gives this rank's share of
  // the gradient (summing the shares over the ranks gives the whole gradient). The layout's world
  // by default; a single rank when every rank runs the same tokens (evaluation and generation
  // under mpirun, which still exchange rows with the experts' owners).
  void set_data_group(const dist::Communicator& group);
  const dist::Communicator& data_group() const { return data_group_; }
  const ModelConfig& config() const { return cfg_; }

  Embedding embed_tokens;
  std::vector<std::unique_ptr<DecoderBlock>> layers;
  RMSNorm norm;
  std::unique_ptr<Param> lm_head;  // [V, d]; null when tied to the embeddings

  ParamList params();
  // Training mode routes with the training capacity factor; evaluation (the default) with the
  // evaluation one.
  void set_training(bool training);
  // After each optimizer step (router bias updates).
  void after_step();
  void restore_steps(int64_t steps);  // a resumed run: as after `steps` optimizer steps (routers' noise)
  // The coming step's learning rate, for experts that step their own optimizer (remote experts).
  void set_learning_rate(float lr);
  // False if some router is not causal (expert choice): such a model cannot generate text.
  bool causal() const;
  void init_weights(uint64_t seed, float std = 0.02f);
  void zero_grad();

  // Training / evaluation forward. tokens, targets: [B, T]; a target of -1 is not counted. With a
  // data group of several ranks, B is this rank's share and the loss is the whole batch's.
  // Keeps the activations for backward(). logits of the last call: [B*T, V].
  LossResult forward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T);
  // Gradients of objective() of the last forward, accumulated into every Param::g.
  void backward();
  const Tensor& logits() const { return logits_; }

  // Inference with per-layer KV caches. tokens: [n] appended at positions cache[0].len...;
  // logits: [V] of the last token. n > kPrefillChunk goes through in chunks of that many.
  static constexpr int64_t kPrefillChunk = 512;
  void init_cache(std::vector<LayerKVCache>& caches, int64_t capacity) const;
  void forward_cached(float* logits, const int32_t* tokens, int64_t n, std::vector<LayerKVCache>& caches);
  // One decode step of S independent sequences (continuous batching): token s is appended to the
  // caches of sequence s (*caches[s], one per layer, each with room). Attention runs per sequence;
  // every other layer, the experts included, runs once over the S rows, so each expert's weights
  // are read once per step for all the sequences routed to it. logits: [S, V].
  void decode_step(float* logits, const int32_t* tokens, const std::vector<std::vector<LayerKVCache>*>& caches);

  // Routing plans of the last forward, one per MoE layer (empty for dense models).
  std::vector<const RoutingPlan*> routing() const;
  // The layer index of each entry of routing().
  std::vector<int> routed_layers() const;
  std::vector<int> peer_layers() const;  // the layers whose FFN is a PEER layer

 private:
  kernels::MatrixRef head_weight() const { return lm_head ? lm_head->matrix() : embed_tokens.weight.matrix(); }
  float* head_grad() { return lm_head ? lm_head->g.data() : embed_tokens.weight.g.data(); }

  ModelConfig cfg_;
  dist::ParallelLayout layout_;
  dist::Communicator data_group_;
  int64_t B_ = 0, T_ = 0;
  std::vector<int32_t> tokens_, targets_;
  std::vector<Tensor> acts_;  // [L+1] x [B*T, d]: input of each block, then the last block's output
  Tensor normed_;             // [B*T, d]
  Tensor logits_;             // [B*T, V] (overwritten by dlogits in backward)
  Tensor nll_;                // [B*T]
  Tensor dcur_, dprev_;       // [B*T, d]
  int64_t count_ = 0;
};

}  // namespace moe
