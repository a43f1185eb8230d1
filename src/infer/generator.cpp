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
  model_.init_cache(caches_, W);
  positions_computed_ = 0;
  auto prefill = [&](int64_t keep) {
    for (auto& c : caches_) c.len = 0;
    const int64_t n = std::min<int64_t>(keep, int64_t(ctx.size()));
    model_.forward_cached(logits.data(), ctx.data() + ctx.size() - n, n, caches_);
    positions_computed_ += n;
  };
  prefill(W);
  std::vector<int32_t> out;
  for (int64_t i = 0; i < cfg.max_tokens; ++i) {
    const int32_t tok = sample_token(logits.data(), V, cfg.sampler, rng);
    out.push_back(tok);
    ctx.push_back(tok);
    if (on_token && !on_token(tok)) break;
    if (i + 1 == cfg.max_tokens) break;
    if (std::find(cfg.stop_ids.begin(), cfg.stop_ids.end(), tok) != cfg.stop_ids.end()) break;
    if (caches_[0].len >= W) {
      prefill(W / 2);
    } else {
      model_.forward_cached(logits.data(), &ctx.back(), 1, caches_);
      positions_computed_ += 1;
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
