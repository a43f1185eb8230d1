// The prefix cache: the longest kept prefix is restored (values copied exactly, at most all but the
// prompt's last token, at least min_tokens), entries it covers and the least recently used are
// dropped to fit its bytes; and the engine with the cache generates what it does without one.
#include "serve/prefix_cache.h"

#include <gtest/gtest.h>

#include <numeric>

#include "serve/batch_engine.h"
#include "../test_util.h"
#include "tiny_decoders.h"

namespace moe::serve {
namespace {

// Two layers of caches holding `len` positions whose values encode (layer, position, element), made
// by a real model's init_cache so the rows have its layout.
std::vector<LayerKVCache> filled(const DecoderLM& m, int64_t capacity, int64_t len, float tag) {
  std::vector<LayerKVCache> c;
  m.init_cache(c, capacity);
  for (size_t l = 0; l < c.size(); ++l) {
    for (int64_t i = 0; i < c[l].k.numel(); ++i) c[l].k[i] = tag + float(l) * 1000 + float(i);
    for (int64_t i = 0; i < c[l].v.numel(); ++i) c[l].v[i] = -tag - float(l) * 1000 - float(i);
    c[l].len = len;
  }
  return c;
}

std::vector<int32_t> iota_ids(int n, int first) {
  std::vector<int32_t> v(static_cast<size_t>(n));
  std::iota(v.begin(), v.end(), first);
  return v;
}

ModelConfig config(const std::string& type) { return test::tiny_decoder(type, 64); }

TEST(PrefixCache, RestoresTheLongestKeptPrefixExactly) {
  DecoderLM m(config("mixtral"));
  PrefixCache pc({.max_bytes = 1 << 20, .min_tokens = 4});
  std::vector<int32_t> a = iota_ids(10, 0), b = iota_ids(6, 0);
  b.push_back(99);  // shares 6 with a
  pc.store(a, filled(m, 12, 10, 0.5f));
  pc.store(b, filled(m, 7, 7, 0.25f));
  EXPECT_EQ(pc.entries(), 2);
  const int64_t row = 2 * 4;  // kv heads x head dim

  std::vector<int32_t> prompt = iota_ids(8, 0);
  prompt.push_back(7);  // 0..7 then 7: a's first 8
  std::vector<LayerKVCache> got;
  m.init_cache(got, 20);
  ASSERT_EQ(pc.restore(prompt, got), 8);
  for (size_t l = 0; l < got.size(); ++l) {
    EXPECT_EQ(got[l].len, 8);
    for (int64_t i = 0; i < 8 * row; ++i) {
      ASSERT_EQ(got[l].k[i], 0.5f + float(l) * 1000 + float(i));
      ASSERT_EQ(got[l].v[i], -0.5f - float(l) * 1000 - float(i));
    }
    EXPECT_EQ(got[l].k[8 * row], 0.0f);  // nothing past the prefix
  }
  // a's own ids: all but the last, which the prompt computes for its logits.
  m.init_cache(got, 20);
  EXPECT_EQ(pc.restore(a, got), 9);
  // Below min_tokens, or no common start, or a one-token prompt: nothing, caches untouched.
  std::vector<int32_t> short_common = {0, 1, 2, 50, 51, 52, 53};
  m.init_cache(got, 20);
  EXPECT_EQ(pc.restore(short_common, got), 0);
  EXPECT_EQ(got[0].len, 0);
  EXPECT_EQ(pc.restore(iota_ids(9, 100), got), 0);
  EXPECT_EQ(pc.restore({0}, got), 0);
}

TEST(PrefixCache, DropsCoveredAndLeastRecentlyUsedEntriesToFitItsBytesAndCount) {
  DecoderLM m(config("mixtral"));
  // One position: 2 layers x (k + v) x 8 floats = 128 bytes, plus 4 bytes of id.
  const int64_t per_position = 2 * 2 * 8 * 4 + 4;
  PrefixCache pc({.max_bytes = 30 * per_position, .min_tokens = 2});
  pc.store(iota_ids(5, 0), filled(m, 40, 5, 1));
  EXPECT_EQ(pc.bytes(), 5 * per_position);  // cut to its 5 positions, not its room for 40
  pc.store(iota_ids(8, 0), filled(m, 8, 8, 2));  // covers the first: it goes
  EXPECT_EQ(pc.entries(), 1);
  EXPECT_EQ(pc.bytes(), 8 * per_position);
  pc.store(iota_ids(10, 100), filled(m, 10, 10, 3));
  pc.store(iota_ids(10, 200), filled(m, 10, 10, 4));
  EXPECT_EQ(pc.entries(), 3);  // 28 positions
  std::vector<LayerKVCache> got;
  m.init_cache(got, 40);
  EXPECT_EQ(pc.restore(iota_ids(9, 0), got), 8);  // the 0.. entry is now the most recent
  pc.store(iota_ids(10, 300), filled(m, 10, 10, 5));  // 38 positions: the 100.. entry, least recent, goes
  EXPECT_EQ(pc.entries(), 3);
  EXPECT_EQ(pc.bytes(), 28 * per_position);
  m.init_cache(got, 40);
  EXPECT_EQ(pc.restore(iota_ids(10, 100), got), 0);
  EXPECT_EQ(pc.restore(iota_ids(10, 200), got), 9);
  // Too large alone, or too short: not kept. Off: nothing kept.
  pc.store(iota_ids(31, 400), filled(m, 31, 31, 6));
  pc.store({7}, filled(m, 1, 1, 7));
  EXPECT_EQ(pc.entries(), 3);
  // Room for a quarter more or less is kept as it is (and counted); more is cut off.
  PrefixCache slack({.max_bytes = 1 << 20, .min_tokens = 2});
  slack.store(iota_ids(8, 0), filled(m, 10, 8, 1));
  EXPECT_EQ(slack.bytes(), 10 * (per_position - 4) + 8 * 4);
  slack.store(iota_ids(8, 50), filled(m, 11, 8, 1));
  EXPECT_EQ(slack.bytes(), 10 * (per_position - 4) + 8 * 4 + 8 * per_position);
  // At most max_entries: the least recently used goes first.
  PrefixCache two({.max_bytes = 1 << 20, .max_entries = 2, .min_tokens = 2});
  two.store(iota_ids(4, 0), filled(m, 4, 4, 1));
  two.store(iota_ids(4, 10), filled(m, 4, 4, 2));
  m.init_cache(got, 40);
  EXPECT_EQ(two.restore(iota_ids(5, 0), got), 4);
  two.store(iota_ids(4, 20), filled(m, 4, 4, 3));
  EXPECT_EQ(two.entries(), 2);
  EXPECT_EQ(two.restore(iota_ids(5, 10), got), 0);
  EXPECT_EQ(two.restore(iota_ids(5, 0), got), 4);
  PrefixCache off({});
  off.store(iota_ids(10, 0), filled(m, 10, 10, 8));
  EXPECT_EQ(off.entries(), 0);
}

// Requests that extend earlier ones (a conversation's turns) and one that shares only a start:
// with the prefix cache the engine computes fewer prompt positions and its greedy tokens are the
// ones it generates without the cache (up to a near-tie in rounding: checked on the logits).
TEST(PrefixCache, EngineGeneratesWhatItDoesWithoutTheCache) {
  for (const char* type : {"mixtral", "deepseek_v3"}) {
    SCOPED_TRACE(type);
    DecoderLM m(config(type));
    m.init_weights(9, 0.3f);
    const int64_t V = 256, N = 8;
    auto run = [&](BatchEngine& e, const std::vector<int32_t>& prompt) {
      std::vector<int32_t> got;
      auto r = std::make_shared<GenerationRequest>();
      r->prompt = prompt;
      r->max_tokens = N;
      r->sampler.temperature = 0;
      r->on_token = [&got](int32_t t) { return got.push_back(t), true; };
      e.submit(r);
      while (e.step()) {
      }
      return got;
    };
    BatchEngine cached(m, {.max_batch = 2, .prefix_cache_bytes = 1 << 20});
    BatchEngine plain(m, {.max_batch = 2, .prefix_cache_bytes = 0});
    std::vector<int32_t> turn = iota_ids(20, 30);
    int64_t computed = 0, reused = 0;
    for (int t = 0; t < 3; ++t) {
      const std::vector<int32_t> got = run(cached, turn);
      ASSERT_EQ(int64_t(got.size()), N);
      EXPECT_EQ(got, run(plain, turn)) << "turn " << t;
      EXPECT_EQ(plain.stats().reused_tokens, 0);
      // Each token is the argmax of a full forward over the context so far.
      std::vector<int32_t> ctx = turn;
      for (int64_t i = 0; i < N; ++i) {
        std::vector<int32_t> tgt(ctx.size(), -1);
        m.forward(ctx.data(), tgt.data(), 1, int64_t(ctx.size()));
        const float* last = m.logits().data() + (int64_t(ctx.size()) - 1) * V;
        EXPECT_GE(last[got[size_t(i)]], *std::max_element(last, last + V) - 1e-4f) << "turn " << t << " token " << i;
        ctx.push_back(got[size_t(i)]);
      }
      const BatchEngineStats st = cached.stats();
      // Turn 0 computes its 20 ids; each later turn reuses the last one's prompt and N - 1 tokens
      // (the last token was sampled, never fed), computing that token and the 5 new ids.
      EXPECT_EQ(st.reused_tokens - reused, t == 0 ? 0 : int64_t(turn.size()) - 6) << "turn " << t;
      EXPECT_EQ(st.prefill_tokens - computed + st.reused_tokens - reused, int64_t(turn.size()));
      reused = st.reused_tokens, computed = st.prefill_tokens;
      EXPECT_GT(st.prefix_cache_bytes, 0);
      // The next turn: this context plus the generated reply and 5 new ids.
      turn = ctx;
      for (int i = 0; i < 5; ++i) turn.push_back(200 + t * 5 + i);
    }
  }
}

}  // namespace
}  // namespace moe::serve
