// Checkpoints: bit-exact round trip, other dtypes and shards, and clear errors on bad checkpoints.
#include "model/checkpoint.h"
#include "core/error.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "io/atomic_file.h"
#include "kernels/gemm_16bit.h"
#include "io/safetensors.h"
#include "../test_util.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

std::string ckpt_dir(const std::string& name) { return test::fresh_dir("ckpt_" + name); }

ModelConfig tiny() { return test::tiny_moe_config(); }

TEST(Checkpoint, RoundTripIsBitExact) {
  const std::string dir = ckpt_dir("rt");
  DecoderLM m(tiny());
  m.init_weights(1);
  save_pretrained(dir, m, {{"step", "42"}});
  std::map<std::string, std::string> meta;
  auto back = load_pretrained(dir, &meta);
  EXPECT_EQ(meta["step"], "42");
  auto a = m.params(), b = back->params();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_EQ(a[i]->name, b[i]->name);
    ASSERT_EQ(a[i]->w.shape(), b[i]->w.shape());
    EXPECT_EQ(0, std::memcmp(a[i]->w.data(), b[i]->w.data(), a[i]->w.numel() * sizeof(float))) << a[i]->name;
  }
  EXPECT_EQ(back->config().to_json(), m.config().to_json());
  EXPECT_TRUE(fs::exists(dir + "/config.json"));
  // No temporary files are left behind.
  for (auto& e : fs::directory_iterator(dir)) EXPECT_EQ(e.path().string().find(".tmp"), std::string::npos);
}

// Loaded to run only: no gradient storage, the same logits, and a training step is a clear error.
TEST(Checkpoint, LoadedToRunOnlyHoldsNoGradients) {
  const std::string dir = ckpt_dir("run_only");
  DecoderLM m(tiny());
  m.init_weights(2);
  save_pretrained(dir, m);
  auto run = load_pretrained(dir, nullptr, {}, {.for_training = false});
  for (Param* p : run->params()) EXPECT_EQ(p->g.numel(), 0) << p->name;
  EXPECT_TRUE(params_get_gradients());  // the scope ended with the load
  std::vector<int32_t> tok = {1, 2, 3, 4}, tgt = {2, 3, 4, -1};
  const double a = m.forward(tok.data(), tgt.data(), 1, 4).mean_nll();
  const double b = run->forward(tok.data(), tgt.data(), 1, 4).mean_nll();
  EXPECT_EQ(a, b);
  EXPECT_NE(test::error_of([&] { run->backward(); }).find("loaded to run only"), std::string::npos);
}

TEST(Checkpoint, EveryRouterVariantRoundTripsAndPredictsTheSame) {
  for (std::string router : {"topk_softmax", "switch", "noisy_topk", "sigmoid_bias", "expert_choice"}) {
    ModelConfig c = tiny();
    c.router = router;
    c.n_shared_experts = router == "sigmoid_bias" ? 1 : 0;
    if (router == "switch") c.num_experts_per_tok = 1, c.norm_topk_prob = false, c.capacity_factor = 1.25f, c.eval_capacity_factor = 2.0f;
    DecoderLM m(c);
    m.init_weights(3, 0.2f);
    for (Param* p : m.params())
      if (!p->trainable) p->w[0] = 0.125f;  // a non-zero router bias must survive too
    const std::string dir = ckpt_dir("variant_" + router);
    save_pretrained(dir, m);
    auto back = load_pretrained(dir);
    EXPECT_EQ(back->config().to_json(), m.config().to_json()) << router;
    auto a = m.params(), b = back->params();
    ASSERT_EQ(a.size(), b.size()) << router;
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_EQ(0, std::memcmp(a[i]->w.data(), b[i]->w.data(), a[i]->w.numel() * sizeof(float))) << router << " " << a[i]->name;
    std::vector<int32_t> tok = {1, 50, 100, 150, 200, 250}, tgt(6, -1);
    m.forward(tok.data(), tgt.data(), 1, 6);
    back->forward(tok.data(), tgt.data(), 1, 6);
    for (int64_t i = 0; i < m.logits().numel(); ++i) ASSERT_EQ(m.logits()[i], back->logits()[i]) << router;
  }
}

TEST(Checkpoint, UsesMixtralTensorNames) {
  DecoderLM m(tiny());
  std::set<std::string> names;
  for (Param* p : m.params()) names.insert(p->name);
  for (const char* n : {"model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
                        "model.layers.1.self_attn.o_proj.weight", "model.layers.0.input_layernorm.weight",
                        "model.layers.0.post_attention_layernorm.weight", "model.layers.0.block_sparse_moe.gate.weight",
                        "model.layers.1.block_sparse_moe.experts.3.w1.weight", "model.layers.1.block_sparse_moe.experts.3.w2.weight",
                        "model.layers.1.block_sparse_moe.experts.3.w3.weight", "model.norm.weight", "lm_head.weight"})
    EXPECT_TRUE(names.count(n)) << n;
}

TEST(Checkpoint, ReadsBf16AndF16) {
  DecoderLM m(tiny());
  m.init_weights(2);
  for (DType dt : {DType::BF16, DType::F16}) {
    const std::string dir = ckpt_dir(dt == DType::BF16 ? "bf16" : "f16");
    save_pretrained(dir, m);
    std::vector<std::pair<std::string, const Tensor*>> ts;
    for (Param* p : m.params()) ts.emplace_back(p->name, &p->w);
    write_safetensors_as(dir + "/model.safetensors", ts, dt);
    auto back = load_pretrained(dir);
    auto a = m.params(), b = back->params();
    for (size_t i = 0; i < a.size(); ++i)
      for (int64_t j = 0; j < a[i]->w.numel(); ++j)
        ASSERT_NEAR(a[i]->w[j], b[i]->w[j], std::abs(a[i]->w[j]) * (dt == DType::BF16 ? 8e-3 : 1e-3) + 1e-6) << a[i]->name;
  }
}

// Loaded to run, a 16-bit checkpoint's matrices stay as stored, in place in the mapped file; the
// norms and router gates are widened. The f32 widening (keep_16bit false) is the same model: its
// logits agree to f32 rounding for f16 (products in f32 by blocks) and to bf16 arithmetic for bf16.
TEST(Checkpoint, RunOnlyKeeps16BitMatricesInPlace) {
  ModelConfig c = tiny();
  c.tie_word_embeddings = false;
  DecoderLM m(c);
  m.init_weights(4);
  for (DType dt : {DType::BF16, DType::F16}) {
    const std::string dir = ckpt_dir(dt == DType::BF16 ? "keep_bf16" : "keep_f16");
    save_pretrained(dir, m);
    std::vector<std::pair<std::string, const Tensor*>> ts;
    for (Param* p : m.params()) ts.emplace_back(p->name, &p->w);
    write_safetensors_as(dir + "/model.safetensors", ts, dt);
    auto kept = load_pretrained(dir, nullptr, {}, {.for_training = false});
    auto wide = load_pretrained(dir, nullptr, {}, {.for_training = false, .keep_16bit = false});
    auto a = kept->params(), b = wide->params();
    int n_kept = 0;
    for (size_t i = 0; i < a.size(); ++i) {
      EXPECT_EQ(a[i]->half.data != nullptr, a[i]->may_stay_16bit) << a[i]->name;
      EXPECT_EQ(b[i]->half.data, nullptr) << b[i]->name;
      if (!a[i]->half.data) continue;
      ++n_kept;
      EXPECT_EQ(a[i]->half.dtype, dt);
      EXPECT_FALSE(a[i]->w.has_storage()) << a[i]->name;  // no f32 copy
      EXPECT_EQ(a[i]->w.shape(), b[i]->w.shape());
      const float first = dt == DType::BF16 ? bf16_to_f32(a[i]->half.data[0]) : f16_to_f32(a[i]->half.data[0]);
      EXPECT_EQ(first, b[i]->w[0]) << a[i]->name;
    }
    // embed, lm_head, and per layer q/k/v/o and every expert's three matrices
    EXPECT_EQ(n_kept, 2 + c.num_hidden_layers * (4 + 3 * c.num_local_experts));
    std::vector<int32_t> tok = {1, 2, 3, 4, 5, 6, 7, 8}, tgt = {2, 3, 4, 5, 6, 7, 8, -1};
    const double x = kept->forward(tok.data(), tgt.data(), 1, 8).mean_nll();
    const double y = wide->forward(tok.data(), tgt.data(), 1, 8).mean_nll();
    const bool bf16_arithmetic =
        dt == DType::BF16 && (kernels::bf16_matmul_available() || kernels::gemv_bf16_rounds_x());
    EXPECT_NEAR(x, y, std::abs(y) * (bf16_arithmetic ? 1e-2 : 1e-5)) << dtype_name(dt);
    // Training needs f32 weights: a load for training widens everything.
    auto train = load_pretrained(dir);
    for (Param* p : train->params()) EXPECT_EQ(p->half.data, nullptr) << p->name;
  }
}

// An f32 checkpoint has nothing to keep: every weight is read into f32.
TEST(Checkpoint, RunOnlyF32CheckpointHasNo16BitWeights) {
  const std::string dir = ckpt_dir("keep_f32");
  DecoderLM m(tiny());
  m.init_weights(5);
  save_pretrained(dir, m);
  auto run = load_pretrained(dir, nullptr, {}, {.for_training = false});
  for (Param* p : run->params()) {
    EXPECT_EQ(p->half.data, nullptr) << p->name;
    EXPECT_TRUE(p->w.has_storage()) << p->name;
  }
}

TEST(Checkpoint, MissingTensorNamesFileAndTensor) {
  const std::string dir = ckpt_dir("missing");
  DecoderLM m(tiny());
  std::vector<std::pair<std::string, const Tensor*>> ts;
  for (Param* p : m.params())
    if (p->name != "model.layers.1.block_sparse_moe.experts.2.w3.weight") ts.emplace_back(p->name, &p->w);
  write_safetensors(dir + "/model.safetensors", ts);
  atomic_write_file(dir + "/config.json", m.config().to_json().dump());
  const std::string msg = test::error_of([&] { load_pretrained(dir); });
  EXPECT_NE(msg.find("model.layers.1.block_sparse_moe.experts.2.w3.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find(dir), std::string::npos) << msg;
}

TEST(Checkpoint, WrongShapeNamesTensorAndShapes) {
  const std::string dir = ckpt_dir("shape");
  DecoderLM m(tiny());
  save_pretrained(dir, m);
  ModelConfig c = tiny();
  c.intermediate_size = 20;  // config disagrees with the weights
  atomic_write_file(dir + "/config.json", c.to_json().dump());
  const std::string msg = test::error_of([&] { load_pretrained(dir); });
  EXPECT_NE(msg.find("experts.0.w1.weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[24, 16]"), std::string::npos) << msg;
}

TEST(Checkpoint, TruncatedFileIsAClearError) {
  const std::string dir = ckpt_dir("trunc");
  DecoderLM m(tiny());
  save_pretrained(dir, m);
  const auto size = fs::file_size(dir + "/model.safetensors");
  fs::resize_file(dir + "/model.safetensors", size - 100);
  const std::string msg = test::error_of([&] { load_pretrained(dir); });
  EXPECT_NE(msg.find("model.safetensors"), std::string::npos) << msg;
}

TEST(Checkpoint, BadConfigIsAClearError) {
  const std::string dir = ckpt_dir("cfg");
  DecoderLM m(tiny());
  save_pretrained(dir, m);
  atomic_write_file(dir + "/config.json", "{\"model_type\": \"mixtral\", \"hidden_size\": 16");
  EXPECT_NE(test::error_of([&] { load_pretrained(dir); }).find("config.json"), std::string::npos);
  atomic_write_file(dir + "/config.json", "{\"model_type\": \"gpt2\"}");
  EXPECT_NE(test::error_of([&] { load_pretrained(dir); }).find("gpt2"), std::string::npos);
  EXPECT_NE(test::error_of([&] { load_pretrained(dir + "/nope"); }).find("nope"), std::string::npos);
}

// The step in a checkpoint's metadata: a number, absent, or a clear error (never std::stoll's
// exceptions: the metadata is in a file anyone can write).
TEST(Checkpoint, StepMetadataIsANumberOrAClearError) {
  EXPECT_EQ(checkpoint_step({{"step", "12"}}, "d"), 12);
  EXPECT_EQ(checkpoint_step({{"step", "0"}}, "d"), 0);
  EXPECT_EQ(checkpoint_step({{"format", "pt"}}, "d"), -1);
  for (const char* bad : {"", "abc", "-1", "1e3", " 5", "999999999999999999999"}) {
    try {
      checkpoint_step({{"step", bad}}, "dir/x");
      ADD_FAILURE() << "no error for step '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("dir/x: the weights' metadata records step"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace moe
