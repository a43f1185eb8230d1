// The vision MoE classifier: its gradients (MoE with two routers, and the dense twin) against finite
// differences of its objective; patchify's shifts and mirroring against a direct reading of the
// pixels; the config's checks; a short training run that learns a synthetic 4-class task; and a
// save/load round trip that gives the same logits.
#include "vision/vision_transformer.h"

#include <gtest/gtest.h>

#include "../test_util.h"
#include "core/error.h"
#include "quadrant_images.h"
#include "vision/train_classifier.h"

namespace moe::vision {
namespace {

using test::quadrant_images;

using nlohmann::json;

json tiny_json(const std::string& type, const std::string& router = "topk_softmax") {
  json j = {{"model_type", type}, {"image_size", 8}, {"num_channels", 1}, {"patch_size", 4}, {"num_labels", 4},
            {"hidden_size", 16}, {"intermediate_size", 24}, {"num_hidden_layers", 2}, {"num_attention_heads", 4},
            {"num_key_value_heads", 2}};
  if (type == "mixtral")
    j.update({{"num_local_experts", 4}, {"num_experts_per_tok", 2}, {"router", router}, {"router_aux_loss_coef", 0.5}});
  return j;
}

void check_grads(const json& j) {
  const VisionConfig c = VisionConfig::from_json(j, "tiny");
  VisionTransformer m(c);
  m.init_weights(5, 0.3f);
  const int64_t B = 3, N = c.num_patches(), pd = c.patch_dim();
  Rng rng(9);
  std::vector<float> patches(size_t(B * N * pd));
  test::fill_normal(patches.data(), int64_t(patches.size()), rng);
  const std::vector<int32_t> labels = {2, 0, 3};
  auto routes = [&] {
    std::vector<int32_t> all;
    for (auto& l : m.layers)
      if (const MoELayer* moe = l->moe()) all.insert(all.end(), moe->plan().expert.begin(), moe->plan().expert.end());
    return all;
  };
  auto loss = [&] {
    const ClassifyResult r = m.forward(patches.data(), labels.data(), B);
    return r.mean_nll() + r.aux_objective;
  };
  m.zero_grad();
  loss();
  const auto sel = routes();
  m.backward();
  int checked = 0;
  for (Param* p : m.params()) {
    if (!p->trainable) continue;
    for (int i = 0; i < 4; ++i) {
      const int64_t k = int64_t(rng.below(uint64_t(p->w.numel())));
      const auto [num, smooth] = test::finite_diff_where_smooth(&p->w[k], loss, [&] { return routes() == sel; }, 1e-2f);
      if (!smooth) continue;
      ++checked;
      EXPECT_TRUE(test::close(p->g[k], num, 3e-2, 3e-4)) << p->name << "[" << k << "] analytic " << p->g[k] << " numeric " << num;
    }
  }
  EXPECT_GT(checked, int(m.params().size()) * 2);
}

TEST(VisionTransformer, MoEGradientsMatchFiniteDifferences) { check_grads(tiny_json("mixtral")); }
TEST(VisionTransformer, ExpertChoiceGradientsMatchFiniteDifferences) {
  json j = tiny_json("mixtral", "expert_choice");
  j["router_aux_loss_coef"] = 0;
  check_grads(j);
}
TEST(VisionTransformer, DenseTwinGradientsMatchFiniteDifferences) { check_grads(tiny_json("mistral")); }

// Attention sees every patch: a change to the last patch changes the first patch's block output.
TEST(VisionTransformer, AttentionIsBidirectional) {
  const VisionConfig c = VisionConfig::from_json(tiny_json("mistral"), "tiny");
  EXPECT_FALSE(c.blocks.causal);
  VisionTransformer m(c);
  m.init_weights(3, 0.3f);
  const int64_t N = c.num_patches(), pd = c.patch_dim(), d = c.blocks.hidden_size;
  Rng rng(4);
  std::vector<float> x(size_t(N * pd));
  test::fill_normal(x.data(), int64_t(x.size()), rng);
  m.forward(x.data(), nullptr, 1);
  Tensor a({N, d}), b({N, d}), x0({N, d});
  // Run block 0 directly on two inputs that differ in the last position only.
  test::fill_normal(x0, rng);
  m.layers[0]->forward(a.data(), x0.data(), 1, N);
  for (int64_t i = 0; i < d; ++i) x0[(N - 1) * d + i] += 1.0f;
  m.layers[0]->forward(b.data(), x0.data(), 1, N);
  float diff = 0;
  for (int64_t i = 0; i < d; ++i) diff = std::max(diff, std::abs(a[i] - b[i]));
  EXPECT_GT(diff, 1e-4f);
}

TEST(VisionTransformer, PatchifyShiftsAndMirrors) {
  VisionConfig c = VisionConfig::from_json(tiny_json("mistral"), "tiny");  // 8x8, patches 4x4
  std::vector<uint8_t> img(64);
  for (int i = 0; i < 64; ++i) img[size_t(i)] = uint8_t(3 * i + 1);
  const float mean = 0.25f, sd = 0.5f;
  std::vector<float> out(size_t(c.num_patches() * c.patch_dim()));
  for (int dy : {-2, 0, 1})
    for (int dx : {-1, 0, 2})
      for (bool flip : {false, true}) {
        patchify(out.data(), img.data(), c, mean, sd, dy, dx, flip);
        for (int y = 0; y < 8; ++y)
          for (int x = 0; x < 8; ++x) {
            // The output pixel (y, x) shows the source pixel (y - dy, x - dx), mirrored when flip.
            const int sy = y - dy, sx0 = x - dx, sx = flip ? 7 - sx0 : sx0;
            const float want = sy >= 0 && sy < 8 && sx >= 0 && sx < 8 ? (img[size_t(sy * 8 + sx)] / 255.0f - mean) / sd : -mean / sd;
            const float got = out[size_t(((y / 4) * 2 + x / 4) * 16 + (y % 4) * 4 + x % 4)];
            ASSERT_NEAR(got, want, 1e-5f) << dy << "," << dx << "," << flip << " at " << y << "," << x;
          }
      }
}

TEST(VisionConfig, RejectsBadSizes) {
  const struct {
    const char* key;
    json value;
    const char* says;
  } cases[] = {
      {"patch_size", 3, "image_size 8 is not a multiple of patch_size 3"},
      {"num_labels", 0, "'num_labels' must be a positive whole number"},
      {"vocab_size", 4, "'vocab_size' means nothing"},
      {"max_position_embeddings", 3, "below the 4 patches"},
      {"image_size", 2.5, "'image_size' must be a positive whole number"},
  };
  for (const auto& c : cases) {
    json j = tiny_json("mixtral");
    j[c.key] = c.value;
    const std::string err = test::error_of([&] { VisionConfig::from_json(j, "v.json"); });
    EXPECT_NE(err.find(c.says), std::string::npos) << c.key << ": " << err;
  }
}

// 8x8 images, one bright 4x4 quadrant (the label) on noise: learnable in a few epochs. The model
// must reach >= 95% on held-out images, and the saved model must give the same logits.
TEST(VisionTransformer, LearnsQuadrantsAndRoundTrips) {
  const ImageSet train = quadrant_images(512, 1), test_set = quadrant_images(256, 2);
  json j = tiny_json("mixtral");
  j["router_aux_loss_coef"] = 0.01;
  VisionTransformer m(VisionConfig::from_json(j, "tiny"));
  m.init_weights(1);
  const Normalisation norm = pixel_statistics(train);
  ClassifierTrainConfig cfg;
  cfg.epochs = 6, cfg.batch_size = 32, cfg.lr = 3e-3f, cfg.warmup_steps = 10, cfg.max_shift = 0, cfg.flip = false;
  int reports = 0;
  const auto hist = train_classifier(m, train, test_set, cfg, norm, [&](const EpochReport&) { ++reports; });
  EXPECT_EQ(reports, 6);
  EXPECT_GE(hist.back().test_accuracy, 0.95) << "train loss " << hist.back().train_loss;
  EXPECT_LT(hist.back().train_loss, hist.front().train_loss);
  test::ScratchDir dir;
  save_classifier(dir.path, m, norm);
  const Evaluation before = evaluate_classifier(m, test_set, norm);
  LoadedClassifier loaded = load_classifier(dir.path);
  const Evaluation after = evaluate_classifier(*loaded.model, test_set, loaded.norm);
  EXPECT_EQ(before.predictions, after.predictions);
  EXPECT_NEAR(before.loss, after.loss, 1e-5);
  EXPECT_DOUBLE_EQ(before.accuracy, hist.back().test_accuracy);
}

}  // namespace
}  // namespace moe::vision
