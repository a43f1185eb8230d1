#include "model/decoder_lm.h"

#include <cstring>

#include "core/rng.h"
#include "kernels/cross_entropy.h"
#include "kernels/gemm.h"
#include "nn/init.h"

namespace moe {

DecoderLM::DecoderLM(const ModelConfig& c, const dist::ParallelLayout& layout)
    : embed_tokens("model.embed_tokens.weight", c.vocab_size, c.hidden_size),
      norm("model.norm.weight", c.hidden_size, c.rms_norm_eps),
      cfg_(c),
      layout_(layout),
      data_group_(layout.world) {
  c.validate("config");
  for (int i = 0; i < c.num_hidden_layers; ++i) layers.push_back(std::make_unique<DecoderBlock>(c, i, layout));
  if (!c.tie_word_embeddings)
    lm_head = std::make_unique<Param>("lm_head.weight", Shape{c.vocab_size, c.hidden_size});
  if (lm_head) lm_head->may_stay_16bit = true;  // read through head_weight()
}

ParamList DecoderLM::params() {
  ParamList out{&embed_tokens.weight};
  for (auto& l : layers) l->params(out);
  out.push_back(&norm.weight);
  if (lm_head) out.push_back(lm_head.get());
  return out;
}

void DecoderLM::set_learning_rate(float lr) {
  for (auto& l : layers) l->ffn->set_learning_rate(lr);
}

void DecoderLM::set_training(bool training) {
  for (auto& l : layers) l->ffn->set_training(training);
}

void DecoderLM::set_data_group(const dist::Communicator& group) {
  data_group_ = group;
  for (auto& l : layers) l->ffn->set_data_group(group);
}

void DecoderLM::after_step() {
  for (auto& l : layers) l->ffn->after_step();
}

void DecoderLM::restore_steps(int64_t steps) {
  for (auto& l : layers) l->ffn->restore_steps(steps);
}

bool DecoderLM::causal() const {
  for (auto& l : layers)
    if (!l->ffn->causal()) return false;
  return true;
}

void DecoderLM::init_weights(uint64_t seed, float std) {
  Rng rng(seed);
  const ParamList ps = params();
  // An expert-parallel rank holds a contiguous run of E / R experts per MoE layer (its sharded
  // params, consecutive in ps); it draws past the other ranks' experts so that every layout gets
  // the single-process initialisation.
  const int R = layout_.expert_parallel, shard = layout_.shard();
  auto skip = [&](int64_t n) {
    for (int64_t i = 0; i < n; ++i) rng.normal();
  };
  int64_t skip_after = 0;  // draws of the later shards' experts, due at the end of the current run
  for (size_t i = 0; i < ps.size(); ++i) {
    Param* p = ps[i];
    if (p->sharded && (i == 0 || !ps[i - 1]->sharded)) {
      int64_t run = 0;  // draws of this rank's experts in this layer
      for (size_t j = i; j < ps.size() && ps[j]->sharded; ++j) run += ps[j]->w.numel();
      skip(int64_t(shard) * run);
      skip_after = int64_t(R - 1 - shard) * run;
    }
    const bool bias = p->name.size() > 5 && p->name.compare(p->name.size() - 5, 5, ".bias") == 0;
    if (!p->trainable || bias) init_constant(*p, 0.0f);  // router bias, projection biases
    else if (p->w.ndim() == 1) init_constant(*p, 1.0f);  // norms
    else init_normal(*p, rng, std);
    if (p->sharded && (i + 1 == ps.size() || !ps[i + 1]->sharded)) skip(skip_after);
  }
  for (auto& l : layers)
    if (PEERLayer* peer = l->peer()) {
      // Replaces the normal draw above: std-0.02 sub-keys trained to a higher loss (2.3900 vs 2.3691
      // in a 300-step 1024^2 run, docs/checkpoints.md).
      peer->router.init_sub_keys(rng);
      peer->router.reset_running_stats();
    }
}

void DecoderLM::zero_grad() {
  for (Param* p : params()) p->zero_grad();
}

LossResult DecoderLM::forward(const int32_t* tokens, const int32_t* targets, int64_t B, int64_t T) {
  const int64_t n = B * T, d = cfg_.hidden_size, V = cfg_.vocab_size;
  const int L = cfg_.num_hidden_layers;
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= V) throw Error("[model] token id " + std::to_string(tokens[i]) + " outside the vocabulary [0, " + std::to_string(V) + ")");
  B_ = B;
  T_ = T;
  tokens_.assign(tokens, tokens + n);
  targets_.assign(targets, targets + n);
  acts_.resize(L + 1);
  for (auto& a : acts_) a.resize({n, d});
  embed_tokens.forward(acts_[0].data(), tokens, n);
  for (int l = 0; l < L; ++l) layers[l]->forward(acts_[l + 1].data(), acts_[l].data(), B, T);
  normed_.resize({n, d});
  norm.forward(normed_.data(), acts_[L].data(), n);
  logits_.resize({n, V});
  kernels::linear_forward(logits_.data(), normed_.data(), head_weight(), n, d, V);
  nll_.resize({n});
  LossResult r;
  r.nll_sum = kernels::cross_entropy_forward(nll_.data(), logits_.data(), targets, n, V);
  for (int64_t i = 0; i < n; ++i) r.count += targets[i] >= 0;
  if (data_group_.size() > 1) {
    double s[2] = {r.nll_sum, double(r.count)};
    data_group_.all_reduce_sum(s, 2);
    r.nll_sum = s[0];
    r.count = int64_t(s[1]);
  }
  count_ = r.count;
  int n_moe = 0;
  for (auto& layer : layers) {
    r.aux_objective += layer->ffn->aux_objective();
    const MoELayer* moe = layer->moe();
    if (!moe) continue;
    ++n_moe;
    r.aux_loss += moe->plan().stats.aux_loss;
    r.z_loss += moe->plan().stats.z_loss;
  }
  if (n_moe) r.aux_loss /= n_moe, r.z_loss /= n_moe;
  return r;
}

void DecoderLM::backward() {
  if (!embed_tokens.weight.has_gradient())
    throw Error("[model] this model was loaded to run only (no gradient storage): it cannot be trained");
  const int64_t n = B_ * T_, d = cfg_.hidden_size, V = cfg_.vocab_size;
  const int L = cfg_.num_hidden_layers;
  const float scale = count_ ? 1.0f / float(count_) : 0.0f;
  float* dlogits = logits_.data();  // in place
  kernels::cross_entropy_backward(dlogits, logits_.data(), targets_.data(), n, V, scale);
  dcur_.resize({n, d});
  dprev_.resize({n, d});
  // logits = normed W^T
  kernels::linear_backward_weight(head_grad(), dlogits, normed_.data(), n, d, V);
  kernels::linear_backward_input(dprev_.data(), dlogits, head_weight().need_f32("backward"), n, d, V);
  norm.backward(dcur_.data(), dprev_.data());
  for (int l = L - 1; l >= 0; --l) {
    layers[l]->backward(dprev_.data(), dcur_.data());
    std::swap(dprev_, dcur_);
  }
  embed_tokens.backward(dcur_.data(), tokens_.data(), n);
}

void DecoderLM::init_cache(std::vector<LayerKVCache>& caches, int64_t capacity) const {
  caches.resize(layers.size());
  for (size_t l = 0; l < layers.size(); ++l) layers[l]->self_attn->init_cache(caches[l], capacity);
}

void DecoderLM::forward_cached(float* logits, const int32_t* tokens, int64_t n,
                               std::vector<LayerKVCache>& caches) {
  const int64_t d = cfg_.hidden_size, V = cfg_.vocab_size;
  const int L = cfg_.num_hidden_layers;
  for (int64_t i = 0; i < n; ++i)
    if (tokens[i] < 0 || tokens[i] >= V) throw Error("[model] token id " + std::to_string(tokens[i]) + " outside the vocabulary");
  // A long prompt goes through in chunks: every layer keeps buffers of its input's rows (the
  // experts' dispatch, attention's projections), which at n = 6,000 came to 1 GB on a 53 MB model.
  acts_.resize(2);
  int64_t m = 0;
  for (int64_t c0 = 0; c0 < n; c0 += m) {
    m = std::min(kPrefillChunk, n - c0);
    acts_[0].resize({m, d});
    acts_[1].resize({m, d});
    embed_tokens.forward(acts_[0].data(), tokens + c0, m);
    for (int l = 0; l < L; ++l) {
      layers[l]->forward_cached(acts_[1].data(), acts_[0].data(), m, caches[l]);
      std::swap(acts_[0], acts_[1]);
    }
  }
  normed_.resize({1, d});
  norm.apply(normed_.data(), acts_[0].data() + (m - 1) * d, 1);
  kernels::linear_forward(logits, normed_.data(), head_weight(), 1, d, V);
}

void DecoderLM::decode_step(float* logits, const int32_t* tokens,
                            const std::vector<std::vector<LayerKVCache>*>& caches) {
  const int64_t d = cfg_.hidden_size, V = cfg_.vocab_size, S = int64_t(caches.size());
  const int L = cfg_.num_hidden_layers;
  for (int64_t s = 0; s < S; ++s)
    if (tokens[s] < 0 || tokens[s] >= V) throw Error("[model] token id " + std::to_string(tokens[s]) + " outside the vocabulary");
  acts_.resize(2);
  acts_[0].resize({S, d});
  acts_[1].resize({S, d});
  embed_tokens.forward(acts_[0].data(), tokens, S);
  std::vector<LayerKVCache*> layer_caches(S);
  for (int l = 0; l < L; ++l) {
    for (int64_t s = 0; s < S; ++s) layer_caches[s] = &(*caches[s])[l];
    layers[l]->decode_step(acts_[1].data(), acts_[0].data(), layer_caches);
    std::swap(acts_[0], acts_[1]);
  }
  normed_.resize({S, d});
  norm.apply(normed_.data(), acts_[0].data(), S);
  kernels::linear_forward(logits, normed_.data(), head_weight(), S, d, V);
}

std::vector<const RoutingPlan*> DecoderLM::routing() const {
  std::vector<const RoutingPlan*> out;
  for (auto& l : layers)
    if (const MoELayer* moe = l->moe()) out.push_back(&moe->plan());
  return out;
}

std::vector<int> DecoderLM::routed_layers() const {
  std::vector<int> out;
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i]->moe()) out.push_back(int(i));
  return out;
}

std::vector<int> DecoderLM::peer_layers() const {
  std::vector<int> out;
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i]->peer()) out.push_back(int(i));
  return out;
}

}  // namespace moe
