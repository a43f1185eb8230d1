// Continuous batching: one batched decode step equals each sequence's own cached forward, and the
// engine's greedy outputs equal the single-request generator's, whatever joins or leaves the batch.
#include "serve/batch_engine.h"

#include <gtest/gtest.h>

#include "infer/generator.h"
#include "io/safetensors.h"
#include "model/checkpoint.h"
#include "../test_util.h"
#include "tiny_decoders.h"

namespace moe::serve {
namespace {

ModelConfig config(const std::string& type) { return test::tiny_decoder(type, 48); }

TEST(BatchedDecode, OneStepEqualsEachSequencesOwnForward) {
  for (const char* type : {"mixtral", "deepseek_v3"}) {
    SCOPED_TRACE(type);
    DecoderLM m(config(type));
    m.init_weights(3, 0.3f);
    const int64_t V = 256;
    // Three sequences with prompts of different lengths, so their positions differ.
    const std::vector<std::vector<int32_t>> prompts = {{1, 2, 3}, {40, 41, 42, 43, 44, 45}, {200}};
    std::vector<std::vector<LayerKVCache>> batched(3), alone(3);
    std::vector<float> logits(V);
    for (int s = 0; s < 3; ++s) {
      m.init_cache(batched[s], 16);
      m.init_cache(alone[s], 16);
      m.forward_cached(logits.data(), prompts[s].data(), int64_t(prompts[s].size()), batched[s]);
      m.forward_cached(logits.data(), prompts[s].data(), int64_t(prompts[s].size()), alone[s]);
    }
    for (int step = 0; step < 3; ++step) {
      const std::vector<int32_t> next = {int32_t(7 + step), int32_t(90 + step), int32_t(150 + step)};
      std::vector<float> out(3 * V);
      m.decode_step(out.data(), next.data(), {&batched[0], &batched[1], &batched[2]});
      for (int s = 0; s < 3; ++s) {
        m.forward_cached(logits.data(), &next[s], 1, alone[s]);
        for (int64_t v = 0; v < V; ++v) ASSERT_NEAR(out[s * V + v], logits[v], 1e-4) << "step " << step << " seq " << s;
        EXPECT_EQ(batched[s][0].len, alone[s][0].len);
      }
    }
  }
}

// Five requests through an engine of max_batch 3: each one's greedy tokens equal the generator's.
void expect_generators_outputs(DecoderLM& m) {
  struct Want {
    std::vector<int32_t> prompt;
    int64_t max_tokens;
  };
  const std::vector<Want> reqs = {{{10, 20, 30}, 12}, {{5}, 3}, {{100, 101}, 20}, {{7, 7, 7, 7}, 1}, {{64, 65}, 9}};
  std::vector<std::vector<int32_t>> want;
  for (const Want& w : reqs) {
    Generator g(m);
    want.push_back(g.generate(w.prompt, GenerateConfig{.max_tokens = w.max_tokens, .sampler = {.temperature = 0}}));
  }
  BatchEngine e(m, {.max_batch = 3});
  std::vector<std::vector<int32_t>> got(reqs.size());
  std::vector<FinishReason> why(reqs.size(), FinishReason::error);
  for (size_t i = 0; i < reqs.size(); ++i) {
    auto r = std::make_shared<GenerationRequest>();
    r->prompt = reqs[i].prompt;
    r->max_tokens = reqs[i].max_tokens;
    r->sampler.temperature = 0;
    r->on_token = [&got, i](int32_t t) { return got[i].push_back(t), true; };
    r->on_finish = [&why, i](FinishReason f, const std::string&) { why[i] = f; };
    e.submit(r);
  }
  while (e.step()) {
  }
  for (size_t i = 0; i < reqs.size(); ++i) {
    EXPECT_EQ(got[i], want[i]) << "request " << i;
    EXPECT_EQ(why[i], FinishReason::length) << i;
  }
  const BatchEngineStats st = e.stats();
  EXPECT_EQ(st.max_rows, 3);  // the batch was full ...
  EXPECT_LT(st.steps, 12 + 3 + 20 + 1 + 9);  // ... so steps were shared
  EXPECT_EQ(st.completed, 5);
  EXPECT_EQ(st.tokens, 12 + 3 + 20 + 1 + 9);
  EXPECT_EQ(st.active + st.queued, 0);
}

TEST(BatchEngine, GreedyOutputsEqualTheGeneratorsWhateverJoinsOrLeaves) {
  DecoderLM m(config("mixtral"));
  m.init_weights(5, 0.3f);
  expect_generators_outputs(m);
}

// The same with a bf16 checkpoint run as stored: a decode step's products of 1-3 rows take the
// matrix-vector loop (in bf16 pairs where the CPU has AVX512-BF16), whose sums do not depend on the
// rows beside them (Gemm16 checks that bit for bit), prompts the block path. Widths of 96 and 80:
// whole steps of the loop and a ragged tail.
TEST(BatchEngine, Bf16WeightsKeptAsStoredGiveTheGeneratorsOutputsToo) {
  ModelConfig c = config("mixtral");
  c.hidden_size = 96;
  c.intermediate_size = 80;
  DecoderLM m(c);
  m.init_weights(5, 0.3f);
  const std::string dir = test::fresh_dir("batch_engine_bf16");
  save_pretrained(dir, m);
  NamedTensors ts;
  for (Param* p : m.params()) ts.emplace_back(p->name, &p->w);
  write_safetensors_as(dir + "/model.safetensors", ts, DType::BF16);
  auto kept = load_pretrained(dir, nullptr, {}, {.for_training = false});
  int kept_16bit = 0;
  for (Param* p : kept->params()) kept_16bit += p->half.data != nullptr;
  ASSERT_GT(kept_16bit, 0);
  expect_generators_outputs(*kept);
}

// Prompts prefilled a few tokens per step give the same greedy outputs as whole prompts, and the
// running requests keep decoding while a long prompt is prefilled: each step of its prefill is also
// a decode step for them.
TEST(BatchEngine, ChunkedPrefillKeepsOutputsAndDoesNotStallTheRunningRequests) {
  for (const char* type : {"mixtral", "deepseek_v3"}) {
    SCOPED_TRACE(type);
    DecoderLM m(config(type));
    m.init_weights(6, 0.3f);
    std::vector<int32_t> longp;
    for (int i = 0; i < 30; ++i) longp.push_back(int32_t((i * 37 + 11) % 256));
    const std::vector<std::vector<int32_t>> prompts = {{10, 20, 30}, longp, {5, 6}};
    auto run = [&](int64_t chunk, std::vector<int64_t>* steps_of_first) {
      BatchEngine e(m, {.max_batch = 3, .prefill_chunk = chunk});
      std::vector<std::vector<int32_t>> got(prompts.size());
      int64_t step = 0;
      for (size_t i = 0; i < prompts.size(); ++i) {
        auto r = std::make_shared<GenerationRequest>();
        r->prompt = prompts[i];
        r->max_tokens = 12;
        r->sampler.temperature = 0;
        r->on_token = [&got, &step, steps_of_first, i](int32_t t) {
          if (i == 0 && steps_of_first) steps_of_first->push_back(step);
          return got[i].push_back(t), true;
        };
        e.submit(r);
        // The first request starts alone; the others join while it decodes.
        if (i == 0)
          for (int k = 0; k < 2; ++k) e.step(), ++step;
      }
      // No step prefills more than the chunk: that bounds how long a step keeps the others waiting.
      int64_t prefilled = e.stats().prefill_tokens;
      while (e.step()) {
        ++step;
        const BatchEngineStats st = e.stats();
        EXPECT_LE(st.active + st.prefilling, 3);
        if (chunk > 0) {
          EXPECT_LE(st.prefill_tokens - prefilled, chunk) << "step " << step;
        }
        prefilled = st.prefill_tokens;
      }
      EXPECT_EQ(prefilled, 3 + 30 + 2);
      return got;
    };
    const auto whole = run(0, nullptr);
    std::vector<int64_t> first_steps;
    const auto chunked = run(4, &first_steps);
    EXPECT_EQ(chunked, whole);
    for (size_t i = 0; i < prompts.size(); ++i) {
      ASSERT_EQ(whole[i].size(), 12u) << i;
      Generator g(m);
      EXPECT_EQ(whole[i], g.generate(prompts[i], GenerateConfig{.max_tokens = 12, .sampler = {.temperature = 0}})) << i;
    }
    // The 30-token prompt takes 8 steps of 4 tokens (the 2-token one waits behind it) while the
    // first request gets a token at every step: its first two in step 0 (the prompt's last logits,
    // then that step's decode), then one per step in the 10 steps after.
    ASSERT_EQ(first_steps.size(), 12u);
    EXPECT_EQ(first_steps[0], 0);
    EXPECT_EQ(first_steps[1], 0);
    for (size_t k = 2; k < first_steps.size(); ++k) EXPECT_EQ(first_steps[k], first_steps[k - 1] + 1) << k;
  }
}

// A request cancelled while its prompt is being prefilled ends there, aborted, and frees its slot.
TEST(BatchEngine, CancelledDuringChunkedPrefillEndsThere) {
  DecoderLM m(config("mixtral"));
  m.init_weights(7, 0.3f);
  BatchEngine e(m, {.max_batch = 1, .prefill_chunk = 4});
  bool cancel = false;
  FinishReason why = FinishReason::error;
  int tokens = 0;
  auto r = std::make_shared<GenerationRequest>();
  for (int i = 0; i < 20; ++i) r->prompt.push_back(int32_t(i + 1));
  r->max_tokens = 5;
  r->on_token = [&tokens](int32_t) { return ++tokens, true; };
  r->on_finish = [&why](FinishReason f, const std::string&) { why = f; };
  r->cancelled = [&cancel] { return cancel; };
  e.submit(r);
  e.step();
  EXPECT_EQ(e.stats().prefilling, 1);
  EXPECT_EQ(e.stats().prefill_tokens, 4);
  cancel = true;
  e.step();
  EXPECT_EQ(why, FinishReason::aborted);
  EXPECT_EQ(tokens, 0);
  EXPECT_EQ(e.stats().prefilling, 0);
  EXPECT_EQ(e.stats().prefill_tokens, 4);
  // The slot is free again: the next request runs.
  auto r2 = std::make_shared<GenerationRequest>();
  r2->prompt = {1, 2};
  r2->max_tokens = 3;
  int n2 = 0;
  r2->on_token = [&n2](int32_t) { return ++n2, true; };
  e.submit(r2);
  while (e.step()) {
  }
  EXPECT_EQ(n2, 3);
}

TEST(BatchEngine, StopIdsAbortsAndBadRequests) {
  DecoderLM m(config("mixtral"));
  m.init_weights(5, 0.3f);
  BatchEngine e(m, {.max_batch = 2, .window = 16});
  Generator g(m);
  const std::vector<int32_t> greedy = g.generate(std::vector<int32_t>{1, 2}, GenerateConfig{.max_tokens = 4, .sampler = {.temperature = 0}});
  FinishReason a = FinishReason::error, b = FinishReason::error;
  int b_tokens = 0;
  auto r1 = std::make_shared<GenerationRequest>();
  r1->prompt = {1, 2};
  r1->max_tokens = 10;
  r1->sampler.temperature = 0;
  r1->stop_ids = {greedy[2]};  // ends on the third token
  r1->on_finish = [&](FinishReason f, const std::string&) { a = f; };
  auto r2 = std::make_shared<GenerationRequest>();
  r2->prompt = {3};
  r2->max_tokens = 10;
  r2->on_token = [&](int32_t) { return ++b_tokens < 2; };  // the client goes away after 2 tokens
  r2->on_finish = [&](FinishReason f, const std::string&) { b = f; };
  FinishReason c = FinishReason::error;
  auto r3 = std::make_shared<GenerationRequest>();  // its client left while it waited
  r3->prompt = {4};
  r3->max_tokens = 5;
  r3->cancelled = [] { return true; };
  r3->on_token = [](int32_t) { ADD_FAILURE() << "a cancelled request was run"; return true; };
  r3->on_finish = [&](FinishReason f, const std::string&) { c = f; };
  e.submit(r1);
  e.submit(r2);
  e.submit(r3);
  while (e.step()) {
  }
  EXPECT_EQ(c, FinishReason::aborted);
  EXPECT_EQ(a, FinishReason::stop);
  EXPECT_EQ(b, FinishReason::aborted);
  EXPECT_EQ(b_tokens, 2);
  EXPECT_EQ(e.stats().aborted, 2);
  auto bad = std::make_shared<GenerationRequest>();
  EXPECT_NE(test::error_of([&] { e.submit(bad); }).find("the prompt has no tokens"), std::string::npos);
  bad->prompt = {300};
  EXPECT_NE(test::error_of([&] { e.submit(bad); }).find("outside the model's vocabulary of 256"), std::string::npos);
  bad->prompt = {1, 2, 3};
  bad->max_tokens = 14;
  EXPECT_NE(test::error_of([&] { e.submit(bad); }).find("exceed the context of 16 tokens"), std::string::npos);
  EXPECT_FALSE(e.step());  // nothing was queued
}

}  // namespace
}  // namespace moe::serve
