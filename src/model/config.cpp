#include "model/config.h"

#include <set>

#include "core/error.h"
#include "io/atomic_file.h"
#include "model/router_registry.h"
#include "model/unimplemented_keys.h"
#include "moe/expert_grid.h"

namespace moe {

namespace {

using nlohmann::json;

template <class T>
void get_num(const json& j, const char* key, T& out, const std::string& src, bool required) {
  if (!j.contains(key) || j[key].is_null()) {
    if (required) throw Error("[config] " + src + ": missing required key '" + key + "'");
    return;
  }
  const json& v = j[key];
  if constexpr (std::is_same_v<T, bool>) {
    if (!v.is_boolean()) throw Error("[config] " + src + ": key '" + key + "' must be true or false, got " + v.dump());
    out = v.get<bool>();
  } else if constexpr (std::is_integral_v<T>) {
    if (!v.is_number_integer()) throw Error("[config] " + src + ": key '" + key + "' must be an integer, got " + v.dump());
    out = v.get<T>();
  } else {
    if (!v.is_number()) throw Error("[config] " + src + ": key '" + key + "' must be a number, got " + v.dump());
    out = v.get<T>();
  }
}

const std::set<std::string> kKnown = {
    "model_type", "vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
    "num_attention_heads", "num_key_value_heads", "head_dim", "max_position_embeddings",
    "rms_norm_eps", "rope_theta", "tie_word_embeddings", "num_local_experts",
    "num_experts_per_tok", "norm_topk_prob", "router_aux_loss_coef", "router_z_loss_coef",
    "architectures", "hidden_act", "router", "router_seq_aux_loss_coef", "router_importance_loss_coef", "router_load_loss_coef", "capacity_factor", "eval_capacity_factor",
    "routed_scaling_factor", "bias_update_speed", "expert_choice_capacity", "expert_grid", "grid_beam_size", "n_shared_experts",
    "shared_expert_intermediate_size", "num_experts", "moe_intermediate_size", "decoder_sparse_step",
    "mlp_only_layers", "ffn_type", "peer_num_experts", "peer_heads", "peer_top_k", "peer_key_dim", "peer_layers",
    "peer_batch_norm", "peer_activation", "peer_score", "peer_key_lr_scale", "dense_intermediate_size"};

void get_string(const json& j, const char* key, std::string& out, const std::string& src) {
  if (!j.contains(key) || j[key].is_null()) return;
  if (!j[key].is_string()) throw Error("[config] " + src + ": key '" + key + "' must be a string, got " + j[key].dump());
  out = j[key].get<std::string>();
}

void get_int_list(const json& j, const char* key, std::vector<int>& out, const std::string& src) {
  if (!j.contains(key) || j[key].is_null()) return;
  if (!j[key].is_array()) throw Error("[config] " + src + ": '" + key + "' must be a list of layer indices");
  out.clear();
  for (const auto& v : j[key]) {
    if (!v.is_number_integer()) throw Error("[config] " + src + ": '" + key + "' must hold integers, got " + v.dump());
    out.push_back(v.get<int>());
  }
}

}  // namespace

ModelConfig ModelConfig::from_json(const json& j, const std::string& src) {
  if (!j.is_object()) throw Error("[config] " + src + ": expected a JSON object");
  ModelConfig c;
  if (!j.contains("model_type") || !j["model_type"].is_string())
    throw Error("[config] " + src + ": missing \"model_type\" (expected \"mixtral\", \"mistral\" or \"qwen2_moe\")");
  c.model_type = j["model_type"].get<std::string>();
  if (c.model_type != "mixtral" && c.model_type != "mistral" && c.model_type != "qwen2_moe")
    throw Error("[config] " + src + ": unsupported model_type '" + c.model_type +
                "' (supported: mixtral, mistral, qwen2_moe)");
  get_num(j, "vocab_size", c.vocab_size, src, true);
  get_num(j, "hidden_size", c.hidden_size, src, true);
  get_num(j, "intermediate_size", c.intermediate_size, src, true);
  get_num(j, "num_hidden_layers", c.num_hidden_layers, src, true);
  get_num(j, "num_attention_heads", c.num_attention_heads, src, true);
  c.num_key_value_heads = c.num_attention_heads;
  get_num(j, "num_key_value_heads", c.num_key_value_heads, src, false);
  get_num(j, "head_dim", c.head_dim, src, false);
  get_num(j, "max_position_embeddings", c.max_position_embeddings, src, false);
  get_num(j, "rms_norm_eps", c.rms_norm_eps, src, false);
  get_num(j, "rope_theta", c.rope_theta, src, false);
  get_num(j, "tie_word_embeddings", c.tie_word_embeddings, src, false);
  c.dense_intermediate_size = c.intermediate_size;
  if (c.is_qwen2_moe()) {
    // Qwen2-MoE's names: num_experts, moe_intermediate_size (experts), intermediate_size (dense layers).
    get_num(j, "num_experts", c.num_local_experts, src, true);
    get_num(j, "moe_intermediate_size", c.intermediate_size, src, true);
    get_num(j, "shared_expert_intermediate_size", c.shared_expert_intermediate_size, src, false);
    c.n_shared_experts = c.shared_expert_intermediate_size > 0 ? 1 : 0;
    c.shared_expert_gate = true;
    c.qkv_bias = true;
    get_num(j, "decoder_sparse_step", c.decoder_sparse_step, src, false);
    get_int_list(j, "mlp_only_layers", c.mlp_only_layers, src);
  }
  if (c.is_moe()) {
    if (!c.is_qwen2_moe()) get_num(j, "num_local_experts", c.num_local_experts, src, true);
    get_num(j, "num_experts_per_tok", c.num_experts_per_tok, src, true);
    c.norm_topk_prob = c.is_qwen2_moe() ? false : c.num_experts_per_tok > 1;
    get_num(j, "norm_topk_prob", c.norm_topk_prob, src, false);
    get_num(j, "router_aux_loss_coef", c.router_aux_loss_coef, src, false);
    get_num(j, "router_z_loss_coef", c.router_z_loss_coef, src, false);
    if (j.contains("router")) {
      if (!j["router"].is_string()) throw Error("[config] " + src + ": key 'router' must be a string");
      c.router = j["router"].get<std::string>();
    }
    if (c.router == "switch") {
      c.norm_topk_prob = false;
      c.capacity_factor = 1.25f;
      c.eval_capacity_factor = 2.0f;
    }
    if (c.router == "sigmoid_bias") c.router_aux_loss_coef = 0.0f;  // balanced by the bias instead
    get_num(j, "router_aux_loss_coef", c.router_aux_loss_coef, src, false);
    get_num(j, "router_seq_aux_loss_coef", c.router_seq_aux_loss_coef, src, false);
    get_num(j, "router_importance_loss_coef", c.router_importance_loss_coef, src, false);
    get_num(j, "router_load_loss_coef", c.router_load_loss_coef, src, false);
    get_num(j, "routed_scaling_factor", c.routed_scaling_factor, src, false);
    get_num(j, "bias_update_speed", c.bias_update_speed, src, false);
    get_num(j, "expert_choice_capacity", c.expert_choice_capacity, src, false);
    get_int_list(j, "expert_grid", c.expert_grid, src);
    get_num(j, "grid_beam_size", c.grid_beam_size, src, false);
    if (!c.is_qwen2_moe()) {
      // Extension keys: dense layers inside a mixtral model, and their width.
      get_int_list(j, "mlp_only_layers", c.mlp_only_layers, src);
      get_num(j, "dense_intermediate_size", c.dense_intermediate_size, src, false);
      get_num(j, "n_shared_experts", c.n_shared_experts, src, false);
      get_num(j, "shared_expert_intermediate_size", c.shared_expert_intermediate_size, src, false);
    }
    get_num(j, "capacity_factor", c.capacity_factor, src, false);
    get_num(j, "eval_capacity_factor", c.eval_capacity_factor, src, false);
    if (c.router == "switch" && j.contains("norm_topk_prob") && c.norm_topk_prob != (j["norm_topk_prob"] == true))
      throw Error("[config] " + src + ": router \"switch\" does not renormalise (norm_topk_prob must be false)");
  } else {
    c.num_local_experts = 0;
    c.num_experts_per_tok = 0;
    c.router_aux_loss_coef = 0;
  }
  get_string(j, "ffn_type", c.ffn_type, src);
  if (c.ffn_type == "peer") {
    get_num(j, "peer_num_experts", c.peer_num_experts, src, false);
    get_num(j, "peer_heads", c.peer_heads, src, false);
    get_num(j, "peer_top_k", c.peer_top_k, src, false);
    get_num(j, "peer_key_dim", c.peer_key_dim, src, false);
    get_num(j, "peer_batch_norm", c.peer_batch_norm, src, false);
    get_string(j, "peer_activation", c.peer_activation, src);
    get_string(j, "peer_score", c.peer_score, src);
    get_num(j, "peer_key_lr_scale", c.peer_key_lr_scale, src, false);
    c.peer_layers = {c.num_hidden_layers / 2};
    get_int_list(j, "peer_layers", c.peer_layers, src);
  }
  reject_unimplemented_keys(j, src);
  if (j.contains("hidden_act") && j["hidden_act"] != "silu")
    throw Error("[config] " + src + ": hidden_act " + j["hidden_act"].dump() + " is not supported (only \"silu\")");
  for (auto it = j.begin(); it != j.end(); ++it)
    if (!kKnown.count(it.key())) c.extra[it.key()] = it.value();
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
  if (is_moe()) {
    positive("num_local_experts", num_local_experts);
    positive("num_experts_per_tok", num_experts_per_tok);
    if (num_experts_per_tok > num_local_experts)
      throw Error("[config] " + src + ": num_experts_per_tok " + std::to_string(num_experts_per_tok) +
                  " exceeds num_local_experts " + std::to_string(num_local_experts));
    if (!find_router(router))
      throw Error("[config] " + src + ": unknown router '" + router + "' (supported: " + router_names() + ")");
    if (router == "grid") {
      if (expert_grid.empty())
        throw Error("[config] " + src + ": router \"grid\" needs expert_grid, the grid's dimensions (e.g. [4, 4])");
      GridShape{expert_grid}.check(num_local_experts, "[config] " + src + ": expert_grid");
      if (grid_beam_size < 0) throw Error("[config] " + src + ": grid_beam_size must be >= 0 (0: num_experts_per_tok)");
    } else if (!expert_grid.empty()) {
      throw Error("[config] " + src + ": expert_grid is only for router \"grid\", not '" + router + "'");
    }
    if (router == "noisy_topk" && num_experts_per_tok >= num_local_experts)
      throw Error("[config] " + src + ": router \"noisy_topk\" needs num_experts_per_tok < num_local_experts");
    if (router_importance_loss_coef < 0 || router_load_loss_coef < 0)
      throw Error("[config] " + src + ": router loss coefficients must be >= 0");
    if (!(routed_scaling_factor > 0)) throw Error("[config] " + src + ": routed_scaling_factor must be positive");
    if (bias_update_speed < 0) throw Error("[config] " + src + ": bias_update_speed must be >= 0");
    if (!(expert_choice_capacity > 0)) throw Error("[config] " + src + ": expert_choice_capacity must be positive");
    if (is_qwen2_moe() && router != "topk_softmax")
      throw Error("[config] " + src + ": qwen2_moe routes with softmax top-k; the router key is not supported");
    if (decoder_sparse_step < 1) throw Error("[config] " + src + ": decoder_sparse_step must be >= 1");
    if (!mlp_only_layers.empty()) positive("dense_intermediate_size", dense_intermediate_size);
    for (int l : mlp_only_layers)
      if (l < 0 || l >= num_hidden_layers)
        throw Error("[config] " + src + ": mlp_only_layers holds " + std::to_string(l) + ", outside [0, " +
                    std::to_string(num_hidden_layers) + ")");
    if (n_shared_experts < 0 || shared_expert_intermediate_size < 0)
      throw Error("[config] " + src + ": n_shared_experts and shared_expert_intermediate_size must be >= 0");
    if (router == "switch" && num_experts_per_tok != 1)
      throw Error("[config] " + src + ": router \"switch\" routes each token to one expert; num_experts_per_tok must be 1, got " +
                  std::to_string(num_experts_per_tok));
    if (router == "switch" && norm_topk_prob)
      throw Error("[config] " + src + ": router \"switch\" does not renormalise (norm_topk_prob must be false)");
    if (capacity_factor < 0 || eval_capacity_factor < 0)
      throw Error("[config] " + src + ": capacity factors must be >= 0 (0 means dropless)");
    if (router_aux_loss_coef < 0 || router_z_loss_coef < 0 || router_seq_aux_loss_coef < 0)
      throw Error("[config] " + src + ": router loss coefficients must be >= 0");
  }
}

nlohmann::json ModelConfig::to_json() const {
  json j = extra;
  j["model_type"] = model_type;
  j["architectures"] = json::array({is_qwen2_moe() ? "Qwen2MoeForCausalLM" : is_moe() ? "MixtralForCausalLM" : "MistralForCausalLM"});
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
  if (is_qwen2_moe()) {
    j["num_experts"] = num_local_experts;
    j["moe_intermediate_size"] = intermediate_size;
    j["intermediate_size"] = dense_intermediate_size;
    j["shared_expert_intermediate_size"] = shared_ffn();
    j["num_experts_per_tok"] = num_experts_per_tok;
    j["norm_topk_prob"] = norm_topk_prob;
    j["decoder_sparse_step"] = decoder_sparse_step;
    j["mlp_only_layers"] = mlp_only_layers;
    j["router_aux_loss_coef"] = router_aux_loss_coef;
    if (router_z_loss_coef > 0) j["router_z_loss_coef"] = router_z_loss_coef;
    if (router_seq_aux_loss_coef > 0) j["router_seq_aux_loss_coef"] = router_seq_aux_loss_coef;
    if (capacity_factor > 0) j["capacity_factor"] = capacity_factor;
    if (eval_capacity_factor > 0) j["eval_capacity_factor"] = eval_capacity_factor;
  } else if (is_moe()) {
    j["num_local_experts"] = num_local_experts;
    j["num_experts_per_tok"] = num_experts_per_tok;
    j["norm_topk_prob"] = norm_topk_prob;
    j["router_aux_loss_coef"] = router_aux_loss_coef;
    j["router_z_loss_coef"] = router_z_loss_coef;
    if (router != "topk_softmax") j["router"] = router;
    if (router_seq_aux_loss_coef > 0) j["router_seq_aux_loss_coef"] = router_seq_aux_loss_coef;
    if (capacity_factor > 0 || router != "topk_softmax") j["capacity_factor"] = capacity_factor;
    if (router == "sigmoid_bias") {
      j["routed_scaling_factor"] = routed_scaling_factor;
      j["bias_update_speed"] = bias_update_speed;
    }
    if (router == "expert_choice") j["expert_choice_capacity"] = expert_choice_capacity;
    if (router == "grid") {
      j["expert_grid"] = expert_grid;
      j["grid_beam_size"] = grid_beam_size;
    }
    if (router == "noisy_topk") {
      j["router_importance_loss_coef"] = router_importance_loss_coef;
      j["router_load_loss_coef"] = router_load_loss_coef;
    }
    if (!mlp_only_layers.empty()) {
      j["mlp_only_layers"] = mlp_only_layers;
      j["dense_intermediate_size"] = dense_intermediate_size;
    }
    if (n_shared_experts > 0) {
      j["n_shared_experts"] = n_shared_experts;
      j["shared_expert_intermediate_size"] = shared_ffn();
    }
    if (eval_capacity_factor > 0 || router != "topk_softmax") j["eval_capacity_factor"] = eval_capacity_factor;
  }
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
  return (i + 1) % decoder_sparse_step == 0;
}

std::string ModelConfig::ffn_prefix(int i) const {
  if (peer_layer(i)) return "model.layers." + std::to_string(i) + ".peer";
  return "model.layers." + std::to_string(i) + (model_type == "mixtral" && sparse_layer(i) ? ".block_sparse_moe" : ".mlp");
}

int64_t ModelConfig::total_params() const {
  const int64_t d = hidden_size, hd = hdim(), f = intermediate_size;
  const int64_t attn = d * hd * num_attention_heads * 2 + d * hd * num_key_value_heads * 2 +
                       (qkv_bias ? hd * (num_attention_heads + 2 * num_key_value_heads) : 0);
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
