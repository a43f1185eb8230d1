#pragma once
// The model configuration: a Hugging Face-style config.json. The common keys are read here, each
// architecture's own keys by its file in model/arch/ ("model_type" picks it). Unknown keys are kept
// so a config read and written back loses nothing.
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "moe/peer_config.h"
#include "nn/attention.h"
#include "nn/rope_scaling.h"

namespace moe {

struct ModelConfig {
  // A registered architecture (model/arch/registry.cpp): "mixtral", "mistral" (dense), "qwen2_moe"
  std::string model_type = "mixtral";
  int vocab_size = 256;                // >= 256; without a tokenizer.json token id = byte value
  int hidden_size = 128;
  int intermediate_size = 256;
  int num_hidden_layers = 4;
  int num_attention_heads = 4;
  int num_key_value_heads = 2;
  int head_dim = 0;  // 0: hidden_size / num_attention_heads
  int max_position_embeddings = 128;
  float rms_norm_eps = 1e-5f;
  float rope_theta = 10000.0f;
  bool tie_word_embeddings = false;
  // Routed experts (architectures with experts)
  int num_local_experts = 8;
  int num_experts_per_tok = 2;
  bool norm_topk_prob = true;        // default: true for k >= 2, false for k == 1 (Switch)
  float router_aux_loss_coef = 0.02f;
  float router_z_loss_coef = 0.0f;   // extension key (ST-MoE z-loss), absent in Hugging Face configs
  float router_seq_aux_loss_coef = 0.0f;  // extension key: DeepSeek-V3 sequence-wise balancing loss
  // Extension keys (docs/checkpoints.md): "topk_softmax" (default) or "switch" (top-1, raw
  // probability, capacity-limited); capacity factors for training and evaluation, 0 = dropless.
  std::string router = "topk_softmax";  // see model/router_registry.cpp for the others
  float capacity_factor = 0.0f;
  float eval_capacity_factor = 0.0f;
  float router_importance_loss_coef = 0.01f;  // noisy_topk: w_importance
  float router_load_loss_coef = 0.01f;        // noisy_topk: w_load
  float routed_scaling_factor = 1.0f;    // sigmoid_bias: multiplies the routed weights
  float bias_update_speed = 1e-3f;       // sigmoid_bias: gamma of the bias update
  float expert_choice_capacity = 2.0f;   // expert_choice: c, average experts per token
  std::vector<int> expert_grid;          // grid: the experts' grid dimensions (product = num_local_experts)
  int grid_beam_size = 0;                // grid: prefixes kept per dimension by the beam search; 0: k
  int n_shared_experts = 0;              // always-on experts (DeepSeekMoE), as one SwiGLU
  int shared_expert_intermediate_size = 0;  // 0: n_shared_experts * intermediate_size
  // Set by the architecture (Qwen2-MoE's, from its own keys):
  bool qkv_bias = false;             // q_proj/k_proj/v_proj have biases
  QKNorm qk_norm = QKNorm::none;     // RMSNorm of q and k before RoPE (Qwen3: per head; OLMoE: whole)
  bool causal = true;                // not a config key: false for encoders (vision/vision_config.h)
  bool shared_expert_gate = false;   // the shared expert's output is scaled by sigmoid(x w_s)
  int dense_intermediate_size = 0;   // width of the dense layers (mlp_only_layers); "intermediate_size" in Qwen2-MoE
  int decoder_sparse_step = 1;       // every step-th layer is sparse
  int first_k_dense_replace = 0;     // DeepSeek: layers below this are dense ...
  int moe_layer_freq = 1;            // ... and so is every layer i with i % moe_layer_freq != 0
  // DeepSeek's gate (router "deepseek", moe/router_deepseek.h)
  std::string scoring_func = "softmax";  // | "sigmoid"
  std::string topk_method = "greedy";    // | "group_limited_greedy" | "noaux_tc"
  int n_group = 1;                       // experts in n_group equal groups ...
  int topk_group = 1;                    // ... of which the best topk_group are eligible
  bool scale_normalized_weights = true;  // routed_scaling_factor also after renormalising (V3), or only without (V2)
  // DeepSeek's multi-head latent attention (nn/mla_attention.h), when kv_lora_rank > 0
  int q_lora_rank = 0;
  int kv_lora_rank = 0;
  int qk_nope_head_dim = 0;
  int qk_rope_head_dim = 0;
  int v_head_dim = 0;
  RopeScaling rope_scaling;          // "rope_scaling": YaRN (architectures that read it)
  std::vector<int> mlp_only_layers;  // layers with a dense MLP
  // PEER (extension keys, docs/checkpoints.md): "ffn_type": "peer" makes the FFN of each layer in
  // peer_layers (default: the middle layer) a PEER layer; the other layers keep the model's FFN.
  std::string ffn_type;               // "" (the model type's FFN) or "peer"
  int64_t peer_num_experts = 65536;   // N = 256^2
  int peer_heads = 8;
  int peer_top_k = 16;
  int peer_key_dim = 128;
  std::vector<int> peer_layers;       // filled with {num_hidden_layers / 2} when absent
  bool peer_batch_norm = true;       // the paper's choice; see PEERConfig::batch_norm
  std::string peer_activation = "gelu";  // | relu
  std::string peer_score = "softmax";    // | sigmoid
  float peer_key_lr_scale = 0.01f;       // see PEERConfig::key_lr_scale
  nlohmann::json extra = nlohmann::json::object();  // keys we do not interpret, written back as read

  bool is_moe() const;  // the architecture has routed experts (model/arch/)
  // Whether layer i has the sparse MoE FFN (else a PEER layer or a dense SwiGLU MLP).
  bool sparse_layer(int i) const;
  bool peer_layer(int i) const;
  PEERConfig peer_config() const;
  // Tensor-name prefix of layer i's FFN, e.g. "model.layers.3.block_sparse_moe" (the architecture's).
  std::string ffn_prefix(int i) const;
  int kv_heads() const { return num_key_value_heads; }
  int hdim() const { return head_dim > 0 ? head_dim : hidden_size / num_attention_heads; }
  int shared_ffn() const {
    return shared_expert_intermediate_size > 0 ? shared_expert_intermediate_size : n_shared_experts * intermediate_size;
  }

  // Throws moe::Error naming `source` (a file path or "config") and the offending key.
  static ModelConfig from_json(const nlohmann::json& j, const std::string& source);
  static ModelConfig load(const std::string& path);
  nlohmann::json to_json() const;
  void validate(const std::string& source) const;
  // For the commands that read bytes (token id = byte value): throws moe::Error "[who] what:
  // vocab_size V: <who> reads bytes ..." unless vocab_size is 256.
  void require_bytes(const std::string& who, const std::string& what) const;

  // Parameter counts: all parameters, and those a token touches (k of the E experts).
  int64_t total_params() const;
  int64_t attention_params() const;  // of one layer
  int64_t active_params() const;
};

}  // namespace moe
