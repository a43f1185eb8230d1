#include "infer/generator.h"

#include <algorithm>

#include "core/error.h"

namespace moe {

std::vector<int32_t> Generator::generate(const std::vector<int32_t>& prompt, const GenerateConfig& cfg,
                                         const std::function<bool(int32_t)>& on_token) {
  if (cfg.max_tokens < 0) throw Error("[generate] --max-tokens must be >= 0");
  if (!model_.causal())
    throw Error("[generate] this model's router (" + model_.config().router +
                ") lets each expert choose among all tokens of a batch, so it is not causal and cannot generate text; "
                "use it for training and non-causal evaluation");
  const int64_t W = cfg.window > 0 ? cfg.window : model_.config().max_position_embeddings;
  if (W < 2) throw Error("[generate] the context window must be at least 2");
  const int64_t V = model_.config().vocab_size;
  if (prompt.empty()) throw Error("[generate] the prompt has no tokens");
  for (int32_t id : prompt)
    if (id < 0 || id >= V)
      throw Error("[generate] prompt token id " + std::to_string(id) + " is outside the model's vocab_size " + std::to_string(V));
  Rng rng(cfg.seed);
  std::vector<int32_t> ctx = prompt;  // every token so far (prompt + generated)
  std::vector<float> logits(V);
  // Room for this call only (a window of 40,960 positions would cost a large model gigabytes).
  const int64_t room = std::min<int64_t>(W, int64_t(prompt.size()) + std::max<int64_t>(cfg.max_tokens, 1));
  positions_computed_ = 0;
  // The previous call's positions that this prompt starts with (a chat's next turn resends the
  // conversation): kept, and only the rest is prefilled. At least one prompt token is always
  // computed, for its logits.
  int64_t reuse = 0;
  if (W == window_ && int64_t(prompt.size()) <= W && !caches_.empty()) {
    const size_t most = std::min(cached_.size(), prompt.size() - 1);
    while (size_t(reuse) < most && cached_[size_t(reuse)] == prompt[size_t(reuse)]) ++reuse;
  }
  reused_ = reuse;
  if (reuse > 0) {
    for (auto& c : caches_) {
      c.len = reuse;
      if (c.capacity() < room) set_capacity(c, room);
    }
    cached_.resize(size_t(reuse));
  } else {
    model_.init_cache(caches_, room);
    cached_.clear();
  }
  window_ = W;
  auto forward = [&](const int32_t* ids, int64_t n) {
    try {
      model_.forward_cached(logits.data(), ids, n, caches_);
    } catch (...) {
      forget();  // the caches may hold part of ids: nothing of them is reused
      throw;
    }
    cached_.insert(cached_.end(), ids, ids + n);
    positions_computed_ += n;
  };
  auto prefill = [&](int64_t keep) {  // the last `keep` tokens of ctx, from position 0
    for (auto& c : caches_) c.len = 0;
    cached_.clear();
    const int64_t n = std::min<int64_t>(keep, int64_t(ctx.size()));
    forward(ctx.data() + ctx.size() - n, n);
  };
  if (reuse > 0) forward(prompt.data() + reuse, int64_t(prompt.size()) - reuse);
  else prefill(W);
  prefilled_ = positions_computed_;
  std::vector<int32_t> out;
  for (int64_t i = 0; i < cfg.max_tokens; ++i) {
    const int32_t tok = sample_token(logits.data(), V, cfg.sampler, rng);
    out.push_back(tok);
    ctx.push_back(tok);
    if (on_token && !on_token(tok)) break;
    if (i + 1 == cfg.max_tokens) break;
    if (std::find(cfg.stop_ids.begin(), cfg.stop_ids.end(), tok) != cfg.stop_ids.end()) break;
    if (caches_[0].len >= caches_[0].capacity()) {
      prefill(W / 2);
    } else {
      forward(&ctx.back(), 1);
    }
  }
  return out;
}

std::string Generator::generate(const std::string& prompt, const GenerateConfig& cfg,
                                const std::function<bool(uint8_t)>& on_token) {
  std::vector<int32_t> ids(prompt.begin(), prompt.end());
  for (auto& id : ids) id = int32_t(uint8_t(id));
  if (ids.empty()) ids.push_back('\n');  // an empty prompt starts at a line break
  const std::vector<int32_t> out = generate(ids, cfg, [&](int32_t id) { return !on_token || on_token(uint8_t(id)); });
  std::string bytes;
  for (int32_t id : out) bytes.push_back(char(uint8_t(id)));
  return bytes;
}

}  // namespace moe
