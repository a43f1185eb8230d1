#include "model/config.h"

#include <algorithm>

#include "core/error.h"
#include "io/atomic_file.h"
#include "model/arch/architecture.h"
#include "model/router_registry.h"
#include "model/unimplemented_keys.h"
#include "moe/expert_grid.h"

namespace moe {

namespace {

using nlohmann::json;

// Keys every architecture has (read by from_json), and the PEER extension keys (docs/checkpoints.md).
const std::vector<std::string> kCommonKeys = {
    "model_type", "architectures", "hidden_act", "vocab_size", "hidden_size", "intermediate_size",
    "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
    "rms_norm_eps", "rope_theta", "tie_word_embeddings"};
const std::vector<std::string> kPeerKeys = {
    "ffn_type", "peer_num_experts", "peer_heads", "peer_top_k", "peer_key_dim", "peer_layers",
    "peer_batch_norm", "peer_activation", "peer_score", "peer_key_lr_scale"};

// Keys this architecture reads; any other (another family's included) is kept and written back.
bool interpreted(const std::string& key, const std::vector<std::string>& arch_keys) {
  for (const auto* keys : {&kCommonKeys, &kPeerKeys, &arch_keys})
    if (std::find(keys->begin(), keys->end(), key) != keys->end()) return true;
  return false;
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& src) {
  if (!j.is_object()) throw Error("[config] " + src + ": expected a JSON object");
  const ConfigReader r(j, src);
  ModelConfig c;
  if (!j.contains("model_type") || !j["model_type"].is_string())
    r.fail("missing \"model_type\" (supported: " + architecture_names() + ")");
  c.model_type = j["model_type"].get<std::string>();
  const Architecture& arch = architecture_of(c, src);
  r.num("vocab_size", c.vocab_size, true);
  r.num("hidden_size", c.hidden_size, true);
  r.num("intermediate_size", c.intermediate_size, true);
  r.num("num_hidden_layers", c.num_hidden_layers, true);
  r.num("num_attention_heads", c.num_attention_heads, true);
  c.num_key_value_heads = c.num_attention_heads;
  r.num("num_key_value_heads", c.num_key_value_heads);
  r.num("head_dim", c.head_dim);
  r.num("max_position_embeddings", c.max_position_embeddings);
  r.num("rms_norm_eps", c.rms_norm_eps);
  r.num("rope_theta", c.rope_theta);
  r.num("tie_word_embeddings", c.tie_word_embeddings);
  c.dense_intermediate_size = c.intermediate_size;
  arch.read(r, c);
  r.str("ffn_type", c.ffn_type);
  if (c.ffn_type == "peer") {
    r.num("peer_num_experts", c.peer_num_experts);
    r.num("peer_heads", c.peer_heads);
    r.num("peer_top_k", c.peer_top_k);
    r.num("peer_key_dim", c.peer_key_dim);
    r.num("peer_batch_norm", c.peer_batch_norm);
    r.str("peer_activation", c.peer_activation);
    r.str("peer_score", c.peer_score);
    r.num("peer_key_lr_scale", c.peer_key_lr_scale);
    c.peer_layers = {c.num_hidden_layers / 2};
    r.int_list("peer_layers", c.peer_layers);
  }
  const std::vector<std::string> arch_keys = arch.keys();
  reject_unimplemented_keys(j, src, arch_keys);
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    throw Error("[config] " + src + ": hidden_act " + j["hidden_act"].dump() + " is not supported (only \"silu\")");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!interpreted(it.key(), arch_keys)) c.extra[it.key()] = it.value();
  c.validate(src);
  return c;
}

ModelConfig ModelConfig::load(const std::string& path) {
  std::string text = read_file(path);
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    throw Error("[config] " + path + ": not valid JSON: " + e.what());
  }
  return from_json(j, path);
}

void ModelConfig::require_bytes(const std::string& who, const std::string& what) const {
  if (vocab_size != 256)
    throw Error("[" + who + "] " + what + ": vocab_size " + std::to_string(vocab_size) + ": moe " + who +
                " reads bytes (token id = byte value), so it needs vocab_size 256; models with a tokenizer.json are not supported yet");
}

void ModelConfig::validate(const std::string& src) const {
  const Architecture& arch = architecture_of(*this, src);
  auto positive = [&](const char* key, int64_t v) {
    if (v <= 0) throw Error("[config] " + src + ": '" + key + "' must be positive, got " + std::to_string(v));
  };
  positive("vocab_size", vocab_size);
  positive("hidden_size", hidden_size);
  positive("intermediate_size", intermediate_size);
  positive("num_hidden_layers", num_hidden_layers);
  positive("num_attention_heads", num_attention_heads);
  positive("num_key_value_heads", num_key_value_heads);
  positive("max_position_embeddings", max_position_embeddings);
  // Below 256 a byte could not be a token (a model without tokenizer.json reads bytes).
  if (vocab_size < 256)
    throw Error("[config] " + src + ": vocab_size must be at least 256 (the byte tokens), got " + std::to_string(vocab_size));
  if (head_dim == 0 && hidden_size % num_attention_heads != 0)
    throw Error("[config] " + src + ": hidden_size " + std::to_string(hidden_size) +
                " is not divisible by num_attention_heads " + std::to_string(num_attention_heads));
  if (hdim() > 1024) throw Error("[config] " + src + ": head dimension " + std::to_string(hdim()) + " is larger than 1024");
  if (hdim() % 2 != 0) throw Error("[config] " + src + ": head dimension must be even for rotary embeddings, got " + std::to_string(hdim()));
  if (num_attention_heads % num_key_value_heads != 0)
    throw Error("[config] " + src + ": num_attention_heads " + std::to_string(num_attention_heads) +
                " is not a multiple of num_key_value_heads " + std::to_string(num_key_value_heads));
  if (!(rms_norm_eps > 0)) throw Error("[config] " + src + ": rms_norm_eps must be positive");
  if (!(rope_theta > 0)) throw Error("[config] " + src + ": rope_theta must be positive");
  if (!ffn_type.empty() && ffn_type != "peer")
    throw Error("[config] " + src + ": unknown ffn_type '" + ffn_type + "' (supported: peer)");
  if (ffn_type == "peer") {
    if (peer_layers.empty()) throw Error("[config] " + src + ": peer_layers must name at least one layer");
    for (int l : peer_layers)
      if (l < 0 || l >= num_hidden_layers)
        throw Error("[config] " + src + ": peer_layers holds " + std::to_string(l) + ", outside [0, " +
                    std::to_string(num_hidden_layers) + ")");
    if (peer_activation != "gelu" && peer_activation != "relu")
      throw Error("[config] " + src + ": peer_activation must be \"gelu\" or \"relu\", got '" + peer_activation + "'");
    if (peer_score != "softmax" && peer_score != "sigmoid")
      throw Error("[config] " + src + ": peer_score must be \"softmax\" or \"sigmoid\", got '" + peer_score + "'");
    peer_config().validate("[config] " + src + ": ");
  }
  arch.validate(*this, src);  // first: an architecture's own rules name it ("qwen2_moe routes with ...")
  if (is_moe()) {
    positive("num_local_experts", num_local_experts);
    positive("num_experts_per_tok", num_experts_per_tok);
    if (num_experts_per_tok > num_local_experts)
      throw Error("[config] " + src + ": num_experts_per_tok " + std::to_string(num_experts_per_tok) +
                  " exceeds num_local_experts " + std::to_string(num_local_experts));
    if (!find_router(router))
      throw Error("[config] " + src + ": unknown router '" + router + "' (supported: " + router_names() + ")");
    find_router(router)->validate(*this, src);
    if (router_importance_loss_coef < 0 || router_load_loss_coef < 0)
      throw Error("[config] " + src + ": router loss coefficients must be >= 0");
    if (!(routed_scaling_factor > 0)) throw Error("[config] " + src + ": routed_scaling_factor must be positive");
    if (bias_update_speed < 0) throw Error("[config] " + src + ": bias_update_speed must be >= 0");
    if (!(expert_choice_capacity > 0)) throw Error("[config] " + src + ": expert_choice_capacity must be positive");
    if (decoder_sparse_step < 1) throw Error("[config] " + src + ": decoder_sparse_step must be >= 1");
    if (!mlp_only_layers.empty()) positive("dense_intermediate_size", dense_intermediate_size);
    for (int l : mlp_only_layers)
      if (l < 0 || l >= num_hidden_layers)
        throw Error("[config] " + src + ": mlp_only_layers holds " + std::to_string(l) + ", outside [0, " +
                    std::to_string(num_hidden_layers) + ")");
    if (n_shared_experts < 0 || shared_expert_intermediate_size < 0)
      throw Error("[config] " + src + ": n_shared_experts and shared_expert_intermediate_size must be >= 0");
    if (capacity_factor < 0 || eval_capacity_factor < 0)
      throw Error("[config] " + src + ": capacity factors must be >= 0 (0 means dropless)");
    if (router_aux_loss_coef < 0 || router_z_loss_coef < 0 || router_seq_aux_loss_coef < 0)
      throw Error("[config] " + src + ": router loss coefficients must be >= 0");
  }
}

nlohmann::json ModelConfig::to_json() const {
  const Architecture& arch = architecture_of(*this);
  json j = extra;
  j["model_type"] = model_type;
  j["architectures"] = json::array({arch.hf_class()});
  j["hidden_act"] = "silu";
  j["vocab_size"] = vocab_size;
  j["hidden_size"] = hidden_size;
  j["intermediate_size"] = intermediate_size;
  j["num_hidden_layers"] = num_hidden_layers;
  j["num_attention_heads"] = num_attention_heads;
  j["num_key_value_heads"] = num_key_value_heads;
  if (head_dim > 0) j["head_dim"] = head_dim;
  j["max_position_embeddings"] = max_position_embeddings;
  j["rms_norm_eps"] = rms_norm_eps;
  j["rope_theta"] = rope_theta;
  j["tie_word_embeddings"] = tie_word_embeddings;
  arch.write(*this, j);
  if (ffn_type == "peer") {
    j["ffn_type"] = ffn_type;
    j["peer_num_experts"] = peer_num_experts;
    j["peer_heads"] = peer_heads;
    j["peer_top_k"] = peer_top_k;
    j["peer_key_dim"] = peer_key_dim;
    j["peer_layers"] = peer_layers;
    j["peer_batch_norm"] = peer_batch_norm;
    j["peer_activation"] = peer_activation;
    j["peer_score"] = peer_score;
    j["peer_key_lr_scale"] = peer_key_lr_scale;
  }
  return j;
}

bool ModelConfig::peer_layer(int i) const {
  if (ffn_type != "peer") return false;
  for (int l : peer_layers)
    if (l == i) return true;
  return false;
}

PEERConfig ModelConfig::peer_config() const {
  return {.d_model = hidden_size, .n_experts = peer_num_experts, .heads = peer_heads, .top_k = peer_top_k,
          .key_dim = peer_key_dim, .batch_norm = peer_batch_norm, .sigmoid_scores = peer_score == "sigmoid",
          .relu = peer_activation == "relu", .key_lr_scale = peer_key_lr_scale};
}

bool ModelConfig::sparse_layer(int i) const {
  if (!is_moe() || peer_layer(i)) return false;
  for (int l : mlp_only_layers)
    if (l == i) return false;
  if (i < first_k_dense_replace || i % moe_layer_freq != 0) return false;
  return (i + 1) % decoder_sparse_step == 0;
}

std::string ModelConfig::ffn_prefix(int i) const { return architecture_of(*this).ffn_prefix(*this, i); }

bool ModelConfig::is_moe() const {
  const Architecture* a = find_architecture(model_type);
  return a && a->has_experts();
}

int64_t ModelConfig::attention_params() const {
  const int64_t d = hidden_size, hd = hdim(), H = num_attention_heads;
  if (kv_lora_rank > 0) {  // latent attention
    const int64_t Dq = qk_nope_head_dim + qk_rope_head_dim, rq = q_lora_rank, rkv = kv_lora_rank;
    const int64_t q = rq > 0 ? rq * d + rq + H * Dq * rq : H * Dq * d;
    return q + (rkv + qk_rope_head_dim) * d + rkv + H * (qk_nope_head_dim + v_head_dim) * rkv + d * H * v_head_dim;
  }
  return d * hd * H * 2 + d * hd * num_key_value_heads * 2 + (qkv_bias ? hd * (H + 2 * num_key_value_heads) : 0) +
         (qk_norm == QKNorm::per_head ? 2 * hd : 0) + (qk_norm == QKNorm::whole ? hd * (H + num_key_value_heads) : 0);
}

int64_t ModelConfig::total_params() const {
  const int64_t d = hidden_size, f = intermediate_size;
  const int64_t attn = attention_params();
  const RouterKind* rk = find_router(router);
  const int64_t sparse = num_local_experts * 3 * d * f + (rk ? rk->params(*this) : 0) + 3 * d * int64_t(shared_ffn()) +
                         (shared_expert_gate && shared_ffn() > 0 ? d : 0);
  const int64_t dense = 3 * d * int64_t(is_moe() ? dense_intermediate_size : f);
  const int64_t peer_H = int64_t(peer_heads) * peer_key_dim;
  const int64_t peer = peer_H * d + peer_H * peer_config().n_sub() + 2 * peer_num_experts * d +
                       (peer_batch_norm ? 4 * peer_H : 0);
  int64_t layers = 0;
  for (int i = 0; i < num_hidden_layers; ++i)
    layers += attn + 2 * d + (peer_layer(i) ? peer : sparse_layer(i) ? sparse : dense);
  return int64_t(vocab_size) * d * (tie_word_embeddings ? 1 : 2) + layers + d;
}

int64_t ModelConfig::active_params() const {
  int64_t inactive = 0;
  for (int i = 0; i < num_hidden_layers; ++i)
    if (sparse_layer(i))
      inactive += int64_t(num_local_experts - num_experts_per_tok) * 3 * hidden_size * intermediate_size;
    else if (peer_layer(i))  // all sub-keys are scored; h*k of the N neurons are used
      inactive += (peer_num_experts - int64_t(peer_heads) * peer_top_k) * 2 * hidden_size;
  return total_params() - inactive;
}

}  // namespace moe
