#include "model/peer_grow.h"

#include <cmath>
#include <cstring>
#include <map>

#include "core/rng.h"

namespace moe {

namespace {

double rms(const Tensor& t) {
  double s = 0;
  for (int64_t i = 0; i < t.numel(); ++i) s += double(t[i]) * t[i];
  return t.numel() ? std::sqrt(s / double(t.numel())) : 0.0;
}

// sub_keys [2, h, s, dk/2] -> [2, h, s2, dk/2]: the old rows first, then small random rows.
void grow_keys(Tensor& dst, const Tensor& src, Rng& rng, float scale) {
  const int64_t halves = src.dim(0) * src.dim(1), s = src.dim(2), s2 = dst.dim(2), w = src.dim(3);
  const float std = float(scale * rms(src));
  for (int64_t a = 0; a < halves; ++a) {
    std::memcpy(dst.data() + a * s2 * w, src.data() + a * s * w, sizeof(float) * s * w);
    for (int64_t i = s * w; i < s2 * w; ++i) dst[a * s2 * w + i] = float(rng.normal() * std);
  }
}

// Expert tables [s*s, d] -> [s2*s2, d]: row i*s + j moves to i*s2 + j; new rows random (u) or 0 (v).
void grow_table(Tensor& dst, const Tensor& src, int64_t s, int64_t s2, Rng* rng) {
  const int64_t d = src.dim(1);
  const float std = float(rms(src));
  for (int64_t i = 0; i < s2; ++i)
    for (int64_t j = 0; j < s2; ++j) {
      float* row = dst.data() + (i * s2 + j) * d;
      if (i < s && j < s) std::memcpy(row, src.data() + (i * s + j) * d, sizeof(float) * d);
      else for (int64_t c = 0; c < d; ++c) row[c] = rng ? float(rng->normal() * std) : 0.0f;
    }
}

}  // namespace

std::unique_ptr<DecoderLM> grow_peer(DecoderLM& model, const PEERGrowConfig& cfg) {
  const ModelConfig& old_c = model.config();
  if (old_c.ffn_type != "peer") throw Error("[grow] the model has no PEER layer (its config has no \"ffn_type\": \"peer\")");
  if (cfg.n_experts <= old_c.peer_num_experts)
    throw Error("[grow] --peer-num-experts " + std::to_string(cfg.n_experts) + " must exceed the current " +
                std::to_string(old_c.peer_num_experts));
  ModelConfig c = old_c;
  c.peer_num_experts = cfg.n_experts;
  c.validate("grow");  // a perfect square, top_k <= sqrt(N), ...
  auto grown = std::make_unique<DecoderLM>(c);
  std::map<std::string, Param*> old_params;
  for (Param* p : model.params()) old_params[p->name] = p;
  Rng rng(mix_seed(cfg.seed, 0x67726f77));  // "grow"
  const int64_t s = old_c.peer_config().n_sub(), s2 = c.peer_config().n_sub();
  for (int l = 0; l < c.num_hidden_layers; ++l) {
    PEERLayer* np = grown->layers[l]->peer();
    if (!np) continue;
    PEERLayer& op = *model.layers[l]->peer();
    grow_keys(np->router.sub_keys.w, op.router.sub_keys.w, rng, cfg.new_key_scale);
    grow_table(np->bank.down.w, op.bank.down.w, s, s2, &rng);
    grow_table(np->bank.up.w, op.bank.up.w, s, s2, nullptr);
  }
  for (Param* p : grown->params()) {
    if (p->name.find(".peer.sub_keys") != std::string::npos || p->name.find(".peer.experts.") != std::string::npos) continue;
    const Param* o = old_params.at(p->name);  // every other tensor keeps its name and shape
    std::memcpy(p->w.data(), o->w.data(), sizeof(float) * p->w.numel());
  }
  return grown;
}

}  // namespace moe
