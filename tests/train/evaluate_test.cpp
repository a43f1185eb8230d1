// Evaluation under the `moe eval` contract, on bytes and on token ids: both give the same result
// for the same tokens, the windows are those of the contract (checked against a window-by-window
// forward written here), ids beyond 255 work, and an id outside the vocabulary is an error.
#include "train/evaluate.h"

#include <gtest/gtest.h>

#include "../test_util.h"
#include "core/error.h"

namespace moe {
namespace {


TEST(Evaluate, BytesAndTheirIdsGiveTheSameResult) {
  DecoderLM m(test::tiny_moe_config(256));
  m.init_weights(5, 0.3f);
  Rng rng(2);
  std::string text(100, '\0');
  for (auto& ch : text) ch = char(rng.below(256));
  std::vector<int32_t> ids;
  for (unsigned char ch : text) ids.push_back(ch);
  const EvalConfig cfg{.context = 16, .batch = 3};
  const EvalResult a = evaluate_text(m, text, cfg), b = evaluate_tokens(m, ids, cfg);
  EXPECT_EQ(a.tokens, 6 * 15 + 3);  // 6 windows of 16 and one of 4: each predicts all but its last
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.nll_sum, b.nll_sum);
  EXPECT_EQ(a.expert_tokens, b.expert_tokens);
}

// Ids of a 300-token vocabulary, windows of 8 in batches of 2 (the last window shorter), against
// one forward per window; max_tokens counts ids.
TEST(Evaluate, TokenIdsMatchAWindowByWindowForward) {
  DecoderLM m(test::tiny_moe_config(300));
  m.init_weights(7, 0.3f);
  Rng rng(3);
  std::vector<int32_t> ids(45);
  for (auto& id : ids) id = int32_t(rng.below(300));
  const EvalResult r = evaluate_tokens(m, ids, {.context = 8, .batch = 2});
  double nll = 0;
  int64_t count = 0;
  for (size_t s = 0; s < ids.size(); s += 8) {
    const int64_t len = std::min<int64_t>(8, int64_t(ids.size() - s));
    std::vector<int32_t> tok(ids.begin() + s, ids.begin() + s + len), tgt(size_t(len), -1);
    for (int64_t t = 0; t + 1 < len; ++t) tgt[t] = ids[s + t + 1];
    const LossResult lr = m.forward(tok.data(), tgt.data(), 1, len);
    nll += lr.nll_sum;
    count += lr.count;
  }
  EXPECT_EQ(r.tokens, count);
  EXPECT_EQ(r.tokens, 5 * 7 + 4);
  EXPECT_NEAR(r.nll_sum, nll, 1e-5 * nll);
  const EvalResult first = evaluate_tokens(m, ids, {.context = 8, .batch = 2, .max_tokens = 16});
  EXPECT_EQ(first.tokens, 2 * 7);
}

TEST(Evaluate, IdsOutsideTheVocabularyAreErrors) {
  DecoderLM m(test::tiny_moe_config(300));
  m.init_weights(1, 0.3f);
  const std::vector<int32_t> high = {1, 2, 3, 4, 5, 300, 6}, negative = {1, -2, 3};
  EXPECT_NE(test::error_of([&] { evaluate_tokens(m, high, {.context = 4}); }).find("token 5 has id 300, outside the model's vocab_size 300"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { evaluate_tokens(m, negative, {.context = 4}); }).find("token 1 has id -2"), std::string::npos);
}

}  // namespace
}  // namespace moe
