// moe info: what a checkpoint holds: architecture, parameter counts, training step.
#include <cstdio>

#include "commands.h"
#include "model/checkpoint.h"
#include "terminal.h"

namespace moe::cli {

namespace {
struct InfoArgs {
  std::string model;
  bool json = false;
};

int run_info(const InfoArgs& a) {
  std::map<std::string, std::string> meta;
  auto model = load_pretrained(a.model, &meta, {}, {.for_training = false});
  const ModelConfig& c = model->config();
  int64_t counted = 0;
  for (Param* p : model->params()) counted += p->w.numel();
  MOE_ASSERT(counted == c.total_params());
  nlohmann::json j = {{"model", a.model}, {"model_type", c.model_type},
                      {"total_parameters", c.total_params()}, {"active_parameters", c.active_params()},
                      {"num_hidden_layers", c.num_hidden_layers}, {"hidden_size", c.hidden_size},
                      {"intermediate_size", c.intermediate_size}, {"num_attention_heads", c.num_attention_heads},
                      {"num_key_value_heads", c.num_key_value_heads}, {"max_position_embeddings", c.max_position_embeddings},
                      {"vocab_size", c.vocab_size}};
  if (c.is_moe()) {
    j["num_local_experts"] = c.num_local_experts;
    j["num_experts_per_tok"] = c.num_experts_per_tok;
    j["norm_topk_prob"] = c.norm_topk_prob;
  }
  if (c.ffn_type == "peer") {
    j["peer_layers"] = c.peer_layers;
    j["peer_num_experts"] = c.peer_num_experts;
    j["peer_heads"] = c.peer_heads;
    j["peer_top_k"] = c.peer_top_k;
  }
  if (const int64_t step = checkpoint_step(meta, a.model); step >= 0) j["step"] = step;
  std::printf("%s: %s, %d layers, hidden %d, ffn %d, heads %d (kv %d), context %d\n", a.model.c_str(),
              c.model_type.c_str(), c.num_hidden_layers, c.hidden_size, c.intermediate_size,
              c.num_attention_heads, c.num_key_value_heads, c.max_position_embeddings);
  if (c.is_moe())
    std::printf("experts: %d per layer, %d active per token%s\n", c.num_local_experts, c.num_experts_per_tok,
                c.norm_topk_prob ? " (weights renormalised)" : "");
  if (c.ffn_type == "peer") {
    std::printf("PEER layers %s: %lld single-neuron experts, %d heads x top-%d, key dim %d%s\n", join_ints(c.peer_layers).c_str(),
                (long long)c.peer_num_experts, c.peer_heads, c.peer_top_k, c.peer_key_dim,
                c.peer_batch_norm ? ", batch-normalised queries" : "");
  }
  std::printf("parameters: %lld total, %lld active per token\n", (long long)c.total_params(), (long long)c.active_params());
  if (meta.count("step")) std::printf("trained steps: %s\n", meta["step"].c_str());
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}
}  // namespace

Runner add_info(CLI::App& app) {
  auto a = std::make_shared<InfoArgs>();
  CLI::App* c = app.add_subcommand("info", "describe a checkpoint");
  c->add_option("--model", a->model, "checkpoint directory")->required();
  c->add_flag("--json", a->json, "end with one JSON line");
  return [a] { return run_info(*a); };
}

}  // namespace moe::cli
