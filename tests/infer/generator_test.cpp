// Generation: the KV-cached logits equal the full forward's, each new token costs one position,
// and sampling is deterministic for a seed.
#include "infer/generator.h"

#include <gtest/gtest.h>

#include "infer/sampler.h"

namespace moe {
namespace {

ModelConfig tiny() {
  ModelConfig c;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 32;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  return c;
}

TEST(Generator, CachedLogitsMatchFullForward) {
  DecoderLM m(tiny());
  m.init_weights(3, 0.3f);
  std::vector<int32_t> toks = {72, 101, 108, 108, 111, 32, 119, 111, 114};
  const int64_t T = int64_t(toks.size()), V = 256;
  std::vector<int32_t> tgt(T, -1);
  m.forward(toks.data(), tgt.data(), 1, T);
  Tensor full = m.logits();
  std::vector<LayerKVCache> caches;
  m.init_cache(caches, 32);
  std::vector<float> logits(V);
  m.forward_cached(logits.data(), toks.data(), 4, caches);  // prefill
  for (int64_t v = 0; v < V; ++v) EXPECT_NEAR(logits[v], full[3 * V + v], 1e-4);
  for (int64_t t = 4; t < T; ++t) {
    m.forward_cached(logits.data(), &toks[t], 1, caches);
    for (int64_t v = 0; v < V; ++v) EXPECT_NEAR(logits[v], full[t * V + v], 1e-4) << "t=" << t;
  }
}

TEST(Generator, OnePositionPerNewToken) {
  DecoderLM m(tiny());
  m.init_weights(3, 0.3f);
  Generator g(m);
  const std::string out = g.generate("abcde", {.max_tokens = 10, .sampler = {.temperature = 0}});
  EXPECT_EQ(out.size(), 10u);
  EXPECT_EQ(g.positions_computed(), 5 + 9);  // prompt once, then one position per further token
}

TEST(Generator, SeededSamplingIsDeterministicAndWindowSlides) {
  DecoderLM m(tiny());
  m.init_weights(4, 0.3f);
  Generator g(m);
  GenerateConfig c{.max_tokens = 80, .sampler = {.temperature = 1.0f, .top_k = 5}, .seed = 7};
  const std::string a = g.generate("x", c), b = g.generate("x", c);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.size(), 80u);  // longer than the 32-position window: the cache was rebuilt
}

TEST(Generator, ExpertChoiceModelsRefuseToGenerate) {
  ModelConfig c = tiny();
  c.router = "expert_choice";
  DecoderLM m(c);
  m.init_weights(1, 0.3f);
  Generator g(m);
  try {
    g.generate("abc", {.max_tokens = 3, .sampler = {}});
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("not causal"), std::string::npos) << e.what();
  }
}

TEST(Sampler, GreedyTopKAndErrors) {
  const float logits[] = {0.1f, 3.0f, 2.9f, -1.0f};
  Rng rng(1);
  EXPECT_EQ(sample_token(logits, 4, {.temperature = 0}, rng), 1);
  for (int i = 0; i < 50; ++i) {
    const int t = sample_token(logits, 4, {.temperature = 1.0f, .top_k = 2}, rng);
    EXPECT_TRUE(t == 1 || t == 2);
  }
  EXPECT_THROW(sample_token(logits, 4, {.temperature = -1}, rng), Error);
}

}  // namespace
}  // namespace moe
