// PEER inside the decoder: config keys and their errors, training through the row-sparse
// optimizer path, a bit-exact checkpoint round trip with the documented tensor names, and growing.
#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "model/checkpoint.h"
#include "model/peer_grow.h"
#include "train/adamw.h"
#include "../test_util.h"

namespace moe {
namespace {

nlohmann::json tiny_json() {
  return {{"model_type", "mixtral"}, {"vocab_size", 256}, {"hidden_size", 16}, {"intermediate_size", 24},
          {"num_hidden_layers", 3}, {"num_attention_heads", 4}, {"num_key_value_heads", 2},
          {"max_position_embeddings", 32}, {"num_local_experts", 4}, {"num_experts_per_tok", 2},
          {"ffn_type", "peer"}, {"peer_num_experts", 256}, {"peer_heads", 2}, {"peer_top_k", 4}, {"peer_key_dim", 8}};
}

ModelConfig tiny() { return ModelConfig::from_json(tiny_json(), "test"); }

std::vector<int32_t> text_tokens(int64_t n) {
  const std::string s = "Der Hund schlaeft. The dog sleeps. El perro duerme. Il cane dorme. ";
  std::vector<int32_t> t(n);
  for (int64_t i = 0; i < n; ++i) t[i] = uint8_t(s[i % s.size()]);
  return t;
}

double loss_on(DecoderLM& m, const std::vector<int32_t>& t, int64_t B, int64_t T) {
  std::vector<int32_t> in(B * T), tg(B * T);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t i = 0; i < T; ++i) {
      in[b * T + i] = t[b * (T + 1) + i];
      tg[b * T + i] = t[b * (T + 1) + i + 1];
    }
  return m.forward(in.data(), tg.data(), B, T).mean_nll();
}

TEST(PEERConfig, DefaultsRoundTripAndErrors) {
  const ModelConfig c = tiny();
  EXPECT_EQ(c.peer_layers, std::vector<int>{1});  // the middle layer
  EXPECT_TRUE(c.peer_layer(1));
  EXPECT_FALSE(c.sparse_layer(1));
  EXPECT_TRUE(c.sparse_layer(0));
  EXPECT_EQ(c.ffn_prefix(1), "model.layers.1.peer");
  const ModelConfig back = ModelConfig::from_json(c.to_json(), "round trip");
  EXPECT_EQ(back.to_json(), c.to_json());
  auto err = [](nlohmann::json j) {
    return test::error_of([&] { ModelConfig::from_json(j, "cfg.json"); });
  };
  auto with = [](const char* k, nlohmann::json v) {
    auto j = tiny_json();
    j[k] = v;
    return j;
  };
  EXPECT_NE(err(with("peer_num_experts", 250)).find("perfect square"), std::string::npos);
  EXPECT_NE(err(with("ffn_type", "moe2")).find("unknown ffn_type"), std::string::npos);
  EXPECT_NE(err(with("peer_layers", {5})).find("peer_layers holds 5"), std::string::npos);
  EXPECT_NE(err(with("peer_activation", "tanh")).find("peer_activation"), std::string::npos);
  EXPECT_NE(err(with("peer_top_k", 17)).find("peer_top_k"), std::string::npos);
  EXPECT_NE(err(with("peer_heads", "8")).find("must be an integer"), std::string::npos);
  EXPECT_NE(err(with("peer_key_lr_scale", 0)).find("peer_key_lr_scale"), std::string::npos);
  EXPECT_NE(err(with("peer_key_lr_scale", -1)).find("peer_key_lr_scale"), std::string::npos);
  EXPECT_EQ(err(with("peer_layers", {0, 2})), "(no error)");
  // The multiplier reaches the sub-keys' optimizer step, and only theirs.
  DecoderLM m(ModelConfig::from_json(with("peer_key_lr_scale", 0.5), "cfg.json"));
  for (Param* p : m.params())
    EXPECT_EQ(p->lr_scale, p->name.find(".peer.sub_keys") != std::string::npos ? 0.5f : 1.0f) << p->name;
}

TEST(PEERModel, TrainsThroughRowSparseAdam) {
  DecoderLM m(tiny());
  m.init_weights(3);
  m.set_training(true);
  const auto t = text_tokens(4 * 17);
  AdamW opt(m.params(), {});
  const double first = loss_on(m, t, 4, 16);
  for (int s = 0; s < 30; ++s) {
    m.zero_grad();
    loss_on(m, t, 4, 16);
    m.backward();
    opt.step(3e-3f);
  }
  const double last = loss_on(m, t, 4, 16);
  EXPECT_LT(last, first - 1.0) << first << " -> " << last;
  // The PEER tables moved only in retrieved rows.
  const Param& up = m.layers[1]->peer()->bank.up;
  EXPECT_TRUE(up.row_sparse);
  EXPECT_FALSE(up.rows.empty());
}

TEST(PEERModel, CheckpointRoundTripIsBitExact) {
  for (bool bn : {false, true}) {
    auto j = tiny_json();
    j["peer_batch_norm"] = bn;
    DecoderLM m(ModelConfig::from_json(j, "test"));
    m.init_weights(5);
    const std::string dir = test::fresh_dir(bn ? "peer_ckpt_bn" : "peer_ckpt");
    save_pretrained(dir, m);
    auto back = load_pretrained(dir);
    std::set<std::string> names;
    for (Param* p : back->params()) names.insert(p->name);
    for (const char* n : {"model.layers.1.peer.query.weight", "model.layers.1.peer.sub_keys",
                          "model.layers.1.peer.experts.down.weight", "model.layers.1.peer.experts.up.weight"})
      EXPECT_TRUE(names.count(n)) << n;
    EXPECT_EQ(names.count("model.layers.1.peer.query_norm.running_var"), bn ? 1u : 0u);
    const auto t = text_tokens(2 * 17);
    const double a = loss_on(m, t, 2, 16), b = loss_on(*back, t, 2, 16);
    EXPECT_EQ(a, b);
  }
}

TEST(PEERModel, GrowKeepsExpertsAndLoss) {
  DecoderLM m(tiny());
  m.init_weights(7);
  {  // train a little so the PEER layer matters
    m.set_training(true);
    AdamW opt(m.params(), {});
    const auto t = text_tokens(4 * 17);
    for (int s = 0; s < 20; ++s) {
      m.zero_grad();
      loss_on(m, t, 4, 16);
      m.backward();
      opt.step(3e-3f);
    }
    m.set_training(false);
  }
  auto g = grow_peer(m, {.n_experts = 1024, .seed = 1});
  EXPECT_EQ(g->config().peer_num_experts, 1024);
  const PEERLayer& a = *m.layers[1]->peer();
  const PEERLayer& b = *g->layers[1]->peer();
  // expert (i, j): row i*16 + j before, i*32 + j after; new neurons output nothing
  for (int64_t i : {0, 7, 15})
    for (int64_t j : {0, 3, 15})
      for (int c = 0; c < 16; ++c) {
        EXPECT_EQ(b.bank.down.w[(i * 32 + j) * 16 + c], a.bank.down.w[(i * 16 + j) * 16 + c]);
        EXPECT_EQ(b.bank.up.w[(i * 32 + j) * 16 + c], a.bank.up.w[(i * 16 + j) * 16 + c]);
      }
  for (int c = 0; c < 16; ++c) EXPECT_EQ(b.bank.up.w[(20 * 32 + 3) * 16 + c], 0.0f);
  const auto t = text_tokens(8 * 33);
  const double before = loss_on(m, t, 8, 32), after = loss_on(*g, t, 8, 32);
  EXPECT_LT(std::abs(after - before) / before, 0.01) << before << " -> " << after;
  // errors
  EXPECT_NE(test::error_of([&] { grow_peer(m, {.n_experts = 256}); }).find("must exceed"), std::string::npos);
  EXPECT_NE(test::error_of([&] { grow_peer(m, {.n_experts = 1000}); }).find("perfect square"), std::string::npos);
  auto dense_j = tiny_json();
  dense_j.erase("ffn_type");
  DecoderLM d(ModelConfig::from_json(dense_j, "test"));
  EXPECT_NE(test::error_of([&] { grow_peer(d, {.n_experts = 1024}); }).find("no PEER layer"), std::string::npos);
}

}  // namespace
}  // namespace moe
