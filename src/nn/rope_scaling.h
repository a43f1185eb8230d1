#pragma once
// RoPE frequencies with YaRN context extension (Peng et al. 2023), as DeepSeek-V2/V3 configure it
// in config.json's "rope_scaling": {"type": "yarn", "factor", "original_max_position_embeddings",
// "beta_fast", "beta_slow", "mscale", "mscale_all_dim"}.
//   freq_extra_i = theta^(-2i/D), freq_inter_i = freq_extra_i / factor
//   inv_freq_i   = freq_inter_i (1 - m_i) + freq_extra_i m_i, m = 1 - ramp(low, high) over i < D/2,
//   [low, high]  = the dimensions whose wavelength turns beta_fast .. beta_slow times over the
//                  original context;
//   cos, sin    *= mscale(factor, mscale) / mscale(factor, mscale_all_dim),
//   softmax scale *= mscale(factor, mscale_all_dim)^2,  mscale(s, m) = 0.1 m ln(s) + 1 (s > 1, else 1).
#include <vector>

#include <nlohmann/json.hpp>

namespace moe {

struct RopeScaling {
  bool yarn = false;  // false: plain RoPE, the other fields unused
  float factor = 1.0f;
  int original_max_position_embeddings = 4096;
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  float mscale = 1.0f;
  float mscale_all_dim = 0.0f;

  // [head_dim / 2] frequencies (float32, computed as the Hugging Face code does).
  std::vector<float> inv_freq(int head_dim, float theta) const;
  float cos_sin_scale() const;  // multiplies cos and sin
  float softmax_scale() const;  // multiplies the attention's 1/sqrt(d)

  // "rope_scaling" of config.json: null, or a "yarn" object; src names the file in errors.
  static RopeScaling from_json(const nlohmann::json& j, const std::string& src);
  nlohmann::json to_json() const;
};

}  // namespace moe
