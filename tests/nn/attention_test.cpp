// The attention layer (projections + rotary + causal GQA) and the dense SwiGLU FFN against finite
// differences.
#include "nn/attention.h"

#include <gtest/gtest.h>

#include "nn/dense_ffn.h"
#include "../test_util.h"
#include "decode_batch_check.h"
#include "layer_grad_check.h"

namespace moe {
namespace {

TEST(AttentionLayer, GradientsGQA) {
  Attention a("attn", {.d_model = 16, .n_heads = 4, .n_kv_heads = 2, .head_dim = 4, .rope_theta = 10000.0f});
  ParamList ps;
  a.params(ps);
  test::check(a, ps, [&](float* y, const float* x) { a.forward(y, x, 2, 5); }, 10, 16, 3);
}

// q/k RMSNorm before the rotation, per head (Qwen3; head_dim 6, not d / heads) and over the whole
// projection (OLMoE).
TEST(AttentionLayer, GradientsWithQKNorm) {
  for (QKNorm kind : {QKNorm::per_head, QKNorm::whole}) {
    SCOPED_TRACE(kind == QKNorm::per_head ? "per head" : "whole");
    Attention a("attn", {.d_model = 16, .n_heads = 4, .n_kv_heads = 2, .head_dim = 6, .rope_theta = 10000.0f,
                         .qk_norm = kind, .norm_eps = 1e-6f});
    ASSERT_TRUE(a.q_norm && a.k_norm);
    EXPECT_EQ(a.q_norm->weight.w.numel(), kind == QKNorm::per_head ? 6 : 24);
    EXPECT_EQ(a.k_norm->weight.w.numel(), kind == QKNorm::per_head ? 6 : 12);
    EXPECT_EQ(a.q_norm->weight.name, "attn.q_norm.weight");
    ParamList ps;
    a.params(ps);
    EXPECT_EQ(ps.size(), 6u);
    test::check(a, ps, [&](float* y, const float* x) { a.forward(y, x, 2, 5); }, 10, 16, 7);
  }
}

// The KV-cached path (a prefill of 3, then one token at a time) gives the full forward's outputs,
// with and without q/k norms.
TEST(AttentionLayer, CachedForwardMatchesFullForward) {
  for (QKNorm kind : {QKNorm::none, QKNorm::per_head, QKNorm::whole}) {
    SCOPED_TRACE(int(kind));
    Attention a("attn", {.d_model = 8, .n_heads = 2, .n_kv_heads = 1, .head_dim = kind == QKNorm::none ? 4 : 6,
                         .rope_theta = 100.0f, .qk_norm = kind});
    Rng rng(4);
    ParamList ps;
    a.params(ps);
    for (Param* p : ps) test::fill_normal(p->w, rng, 0.5f);
    const int64_t T = 7;
    Tensor x({T, 8}), y({T, 8}), yc({T, 8});
    test::fill_normal(x, rng);
    a.forward(y.data(), x.data(), 1, T);
    LayerKVCache cache;
    a.init_cache(cache, T);
    a.forward_cached(yc.data(), x.data(), 3, cache);
    for (int64_t t = 3; t < T; ++t) a.forward_cached(yc.data() + t * 8, x.data() + t * 8, 1, cache);
    for (int64_t i = 0; i < T * 8; ++i) EXPECT_NEAR(y[i], yc[i], 1e-5) << i;
  }
}

// A decode step of several sequences at once (projections over all rows, attention per sequence)
// gives each sequence what one token at a time gives it, caches included, whatever their lengths;
// with and without q/k norms and biases.
TEST(AttentionLayer, DecodeBatchMatchesOneSequenceAtATime) {
  for (QKNorm kind : {QKNorm::none, QKNorm::per_head, QKNorm::whole}) {
    SCOPED_TRACE(int(kind));
    Attention a("attn", {.d_model = 8, .n_heads = 2, .n_kv_heads = 1, .head_dim = 6, .rope_theta = 100.0f,
                         .qkv_bias = kind == QKNorm::none, .qk_norm = kind});
    Rng rng(5);
    ParamList ps;
    a.params(ps);
    for (Param* p : ps) test::fill_normal(p->w, rng, 0.5f);
    test::check_decode_batch(a, 6);
  }
}

TEST(DenseFFN, Gradients) {
  DenseFFN f("mlp", 8, 12);
  ParamList ps;
  f.params(ps);
  test::check(f, ps, [&](float* y, const float* x) { f.forward(y, x, 6); }, 6, 8, 5);
}

}  // namespace
}  // namespace moe
