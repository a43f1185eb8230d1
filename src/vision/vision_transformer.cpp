#include "vision/vision_transformer.h"

#include <algorithm>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/cross_entropy.h"
#include "kernels/gemm.h"
#include "nn/init.h"

namespace moe::vision {

VisionTransformer::VisionTransformer(const VisionConfig& c)
    : patch_embed("vit.patch_embed.weight", {c.blocks.hidden_size, c.patch_dim()}),
      patch_bias("vit.patch_embed.bias", {c.blocks.hidden_size}, false),
      pos_embed("vit.pos_embed", {c.num_patches(), c.blocks.hidden_size}),
      norm("model.norm.weight", c.blocks.hidden_size, c.blocks.rms_norm_eps),
      head("classifier.weight", {c.num_labels, c.blocks.hidden_size}),
      head_bias("classifier.bias", {c.num_labels}, false),
      cfg_(c) {
  MOE_ASSERT(!c.blocks.causal);
  for (int i = 0; i < c.blocks.num_hidden_layers; ++i) layers.push_back(std::make_unique<DecoderBlock>(c.blocks, i, dist::ParallelLayout{}));
}

ParamList VisionTransformer::params() {
  ParamList out{&patch_embed, &patch_bias, &pos_embed};
  for (auto& l : layers) l->params(out);
  out.insert(out.end(), {&norm.weight, &head, &head_bias});
  return out;
}

void VisionTransformer::init_weights(uint64_t seed, float std) {
  Rng rng(seed);
  for (Param* p : params()) {
    const bool bias = p->name.size() > 5 && p->name.compare(p->name.size() - 5, 5, ".bias") == 0;
    if (!p->trainable || bias) init_constant(*p, 0.0f);
    else if (p->w.ndim() == 1) init_constant(*p, 1.0f);  // norms
    else init_normal(*p, rng, std);
  }
}

void VisionTransformer::zero_grad() {
  for (Param* p : params()) p->zero_grad();
}

void VisionTransformer::set_training(bool training) {
  for (auto& l : layers) l->ffn->set_training(training);
}

void VisionTransformer::after_step() {
  for (auto& l : layers) l->ffn->after_step();
}

void VisionTransformer::restore_steps(int64_t steps) {
  for (auto& l : layers) l->ffn->restore_steps(steps);
}

ClassifyResult VisionTransformer::forward(const float* patches, const int32_t* labels, int64_t B) {
  const int64_t N = cfg_.num_patches(), n = B * N, d = cfg_.blocks.hidden_size, K = cfg_.num_labels, pd = cfg_.patch_dim();
  const int L = int(layers.size());
  B_ = B;
  patches_ = patches;
  acts_.resize(size_t(L) + 1);
  for (auto& a : acts_) a.resize({n, d});
  float* x0 = acts_[0].data();
  kernels::linear_forward(x0, patches, patch_embed.w.data(), n, pd, d);
  for (int64_t r = 0; r < n; ++r) {
    const float* pos = pos_embed.w.data() + (r % N) * d;
    for (int64_t i = 0; i < d; ++i) x0[r * d + i] += patch_bias.w[i] + pos[i];
  }
  for (int l = 0; l < L; ++l) layers[size_t(l)]->forward(acts_[size_t(l) + 1].data(), acts_[size_t(l)].data(), B, N);
  normed_.resize({n, d});
  norm.forward(normed_.data(), acts_[size_t(L)].data(), n);
  pooled_.resize({B, d});
  pooled_.zero();
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < N; ++t)
      for (int64_t i = 0; i < d; ++i) pooled_[b * d + i] += normed_[(b * N + t) * d + i] / float(N);
  logits_.resize({B, K});
  kernels::linear_forward(logits_.data(), pooled_.data(), head.w.data(), B, d, K);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) logits_[b * K + k] += head_bias.w[k];
  ClassifyResult r;
  labels_.assign(size_t(B), -1);
  if (labels) {
    for (int64_t b = 0; b < B; ++b)
      if (labels[b] >= K) throw Error("[vision] label " + std::to_string(labels[b]) + " outside [0, " + std::to_string(K) + ")");
    labels_.assign(labels, labels + B);
    std::vector<float> nll(static_cast<size_t>(B));
    r.nll_sum = kernels::cross_entropy_forward(nll.data(), logits_.data(), labels, B, K);
    for (int64_t b = 0; b < B; ++b) {
      if (labels[b] < 0) continue;
      ++r.count;
      const float* row = logits_.data() + b * K;
      r.correct += std::max_element(row, row + K) - row == labels[b];
    }
  }
  count_ = r.count;
  for (auto& l : layers) r.aux_objective += l->ffn->aux_objective();
  return r;
}

void VisionTransformer::backward() {
  const int64_t N = cfg_.num_patches(), B = B_, n = B * N, d = cfg_.blocks.hidden_size, K = cfg_.num_labels, pd = cfg_.patch_dim();
  const float scale = count_ ? 1.0f / float(count_) : 0.0f;
  float* dlogits = logits_.data();  // in place: the logits are not needed after this
  kernels::cross_entropy_backward(dlogits, logits_.data(), labels_.data(), B, K, scale);
  // logits = pooled W_h^T + b_h
  kernels::linear_backward_weight(head.g.data(), dlogits, pooled_.data(), B, d, K);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t k = 0; k < K; ++k) head_bias.g[k] += dlogits[b * K + k];
  dpooled_.resize({B, d});
  kernels::linear_backward_input(dpooled_.data(), dlogits, head.w.data(), B, d, K);
  // pooled = mean over the patches
  dprev_.resize({n, d});
  dcur_.resize({n, d});
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < N; ++t)
      for (int64_t i = 0; i < d; ++i) dprev_[(b * N + t) * d + i] = dpooled_[b * d + i] / float(N);
  norm.backward(dcur_.data(), dprev_.data());
  for (int l = int(layers.size()) - 1; l >= 0; --l) {
    layers[size_t(l)]->backward(dprev_.data(), dcur_.data());
    std::swap(dprev_, dcur_);
  }
  // x0 = patches W_p^T + b_p + pos
  const float* dx0 = dcur_.data();
  kernels::linear_backward_weight(patch_embed.g.data(), dx0, patches_, n, pd, d);
  for (int64_t r = 0; r < n; ++r) {
    float* gpos = pos_embed.g.data() + (r % N) * d;
    for (int64_t i = 0; i < d; ++i) patch_bias.g[i] += dx0[r * d + i], gpos[i] += dx0[r * d + i];
  }
}

void patchify(float* out, const uint8_t* image, const VisionConfig& c, float mean, float std, int dy, int dx, bool flip) {
  const int S = c.image_size, P = c.patch_size, C = c.num_channels, side = c.patches_per_side();
  const float a = 1.0f / (255.0f * std), zero = -mean / std;
  for (int py = 0; py < side; ++py)
    for (int px = 0; px < side; ++px) {
      float* o = out + (int64_t(py) * side + px) * c.patch_dim();
      for (int y = 0; y < P; ++y)
        for (int x = 0; x < P; ++x) {
          int sy = py * P + y - dy, sx = px * P + x - dx;
          if (flip) sx = S - 1 - sx;
          const bool inside = sy >= 0 && sy < S && sx >= 0 && sx < S;
          for (int ch = 0; ch < C; ++ch)
            o[(y * P + x) * C + ch] = inside ? float(image[(int64_t(sy) * S + sx) * C + ch]) * a + zero : zero;
        }
    }
}

}  // namespace moe::vision
