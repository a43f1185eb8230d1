#include "train/evaluate.h"

#include <cmath>

#include "core/error.h"
#include "train/text_corpus.h"

namespace moe {

double EvalResult::loss() const { return tokens ? nll_sum / double(tokens) : 0.0; }
double EvalResult::perplexity() const { return std::exp(loss()); }

namespace {
// token(i): the i-th of n_all tokens (a byte widened, or an id), read in place rather than copied:
// a byte-level text stays one byte per token.
template <class TokenAt>
EvalResult evaluate_impl(DecoderLM& model, int64_t n_all, TokenAt token, const EvalConfig& cfg,
                         const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t T = cfg.context > 0 ? cfg.context : model.config().max_position_embeddings;
  if (T < 2) throw Error("[eval] context must be at least 2 tokens, got " + std::to_string(T));
  if (T > model.config().max_position_embeddings)
    throw Error("[eval] a context of " + std::to_string(T) + " exceeds the model's max_position_embeddings (" +
                std::to_string(model.config().max_position_embeddings) + ")");
  if (cfg.batch < 1) throw Error("[eval] batch must be positive");
  const int64_t n = cfg.max_tokens > 0 ? std::min<int64_t>(cfg.max_tokens, n_all) : n_all;
  const auto windows = eval_windows(n, T);
  EvalResult r;
  // The PEER layers count into r.peer_usage for this call only, however it ends.
  struct Detach {
    DecoderLM& m;
    std::vector<int> layers;
    ~Detach() {
      for (int l : layers) m.layers[l]->peer()->set_usage(nullptr);
    }
  } attached{model, cfg.peer_usage ? model.peer_layers() : std::vector<int>{}};
  r.peer_usage.resize(attached.layers.size());
  for (size_t p = 0; p < attached.layers.size(); ++p) model.layers[attached.layers[p]]->peer()->set_usage(&r.peer_usage[p]);
  std::vector<int32_t> tokens, targets;
  size_t i = 0;
  while (i < windows.size()) {
    // Group windows of equal length (all but possibly the last have length T).
    const int64_t len = windows[i].second;
    size_t j = i;
    while (j < windows.size() && j - i < size_t(cfg.batch) && windows[j].second == len) ++j;
    const int64_t B = int64_t(j - i);
    tokens.resize(B * len);
    targets.resize(B * len);
    for (int64_t b = 0; b < B; ++b) {
      const int64_t s = windows[i + b].first;
      for (int64_t t = 0; t < len; ++t) {
        tokens[b * len + t] = token(s + t);
        targets[b * len + t] = t + 1 < len ? token(s + t + 1) : -1;
      }
    }
    LossResult lr = model.forward(tokens.data(), targets.data(), B, len);
    r.nll_sum += lr.nll_sum;
    r.tokens += lr.count;
    const auto plans = model.routing();
    r.expert_tokens.resize(plans.size());
    for (size_t l = 0; l < plans.size(); ++l) {
      const auto& c = plans[l]->stats.tokens_per_expert;
      r.expert_tokens[l].resize(c.size());
      for (size_t e = 0; e < c.size(); ++e) r.expert_tokens[l][e] += c[e];
    }
    i = j;
    if (progress) progress(int64_t(i), int64_t(windows.size()));
  }
  return r;
}

}  // namespace

EvalResult evaluate_text(DecoderLM& model, const std::string& text, const EvalConfig& cfg,
                         const std::function<void(int64_t, int64_t)>& progress) {
  return evaluate_impl(model, int64_t(text.size()), [&](int64_t i) { return int32_t(uint8_t(text[i])); }, cfg, progress);
}

EvalResult evaluate_tokens(DecoderLM& model, std::span<const int32_t> ids, const EvalConfig& cfg,
                           const std::function<void(int64_t, int64_t)>& progress) {
  const int64_t V = model.config().vocab_size;
  for (size_t i = 0; i < ids.size(); ++i)
    if (ids[i] < 0 || ids[i] >= V)
      throw Error("[eval] token " + std::to_string(i) + " has id " + std::to_string(ids[i]) + ", outside the model's vocab_size " + std::to_string(V));
  return evaluate_impl(model, int64_t(ids.size()), [&](int64_t i) { return ids[i]; }, cfg, progress);
}

}  // namespace moe
