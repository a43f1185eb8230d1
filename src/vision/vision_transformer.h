#pragma once
// A patch-based Transformer classifier (ViT without a class token) whose MLP blocks are sparse MoE
// layers, or dense for its twin: the language models' decoder blocks with bidirectional attention.
//   x0[b, t] = W_p patch[b, t] + b_p + pos[t]           [B*N, d]   (N patches of P*P*C pixels)
//   x_l      = block_l(x_{l-1})                          [B*N, d]
//   pooled   = mean_t rmsnorm(x_L)[b, t]                 [B, d]
//   logits   = W_h pooled + b_h                          [B, labels]
// Names: "vit.patch_embed.weight" [d, P*P*C], ".bias" [d], "vit.pos_embed" [N, d], the blocks'
// "model.layers.{i}..." as in a Mixtral checkpoint, "model.norm.weight", "classifier.weight" [labels, d]
// and ".bias".
#include <memory>
#include <vector>

#include "model/decoder_block.h"
#include "nn/rmsnorm.h"
#include "vision/vision_config.h"

namespace moe::vision {

struct ClassifyResult {
  double nll_sum = 0;        // summed over counted images
  int64_t correct = 0, count = 0;
  double aux_objective = 0;  // the routers' weighted balancing losses, summed over the MoE layers
  double mean_nll() const { return count ? nll_sum / double(count) : 0.0; }
};

class VisionTransformer {
 public:
  explicit VisionTransformer(const VisionConfig& c);
  const VisionConfig& config() const { return cfg_; }

  Param patch_embed, patch_bias, pos_embed;
  std::vector<std::unique_ptr<DecoderBlock>> layers;
  RMSNorm norm;
  Param head, head_bias;

  ParamList params();
  void init_weights(uint64_t seed, float std = 0.02f);
  void zero_grad();
  void set_training(bool training);  // routers: training capacity and noise
  void after_step();                 // routers' bias updates
  void restore_steps(int64_t steps);  // a resumed run: as after `steps` steps (routers' noise)

  // patches: [B, N, P*P*C] (normalised pixels, see patchify); labels: [B], -1 not counted (may be
  // null: no loss). Keeps what backward() needs. logits(): [B, labels], until backward() overwrites
  // them with their gradient.
  ClassifyResult forward(const float* patches, const int32_t* labels, int64_t B);
  // Gradients of mean NLL + the routers' losses of the last forward, accumulated into every Param::g.
  void backward();
  const Tensor& logits() const { return logits_; }

 private:
  VisionConfig cfg_;
  int64_t B_ = 0, count_ = 0;
  const float* patches_ = nullptr;
  std::vector<int32_t> labels_;
  std::vector<Tensor> acts_;  // L + 1 of [B*N, d]
  Tensor normed_, pooled_, logits_, dcur_, dprev_, dpooled_;
};

// One image [rows, cols, channels] of bytes into its N patches [N, P*P*C], each pixel mapped to
// (p / 255 - mean) / std. Augmentation: the image shifted by (dy, dx) pixels (zeros enter) and
// mirrored left to right when flip.
void patchify(float* out, const uint8_t* image, const VisionConfig& c, float mean, float std, int dy = 0, int dx = 0,
              bool flip = false);

}  // namespace moe::vision
