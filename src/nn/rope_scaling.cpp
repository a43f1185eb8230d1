#include "nn/rope_scaling.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "kernels/rope.h"

namespace moe {

namespace {

float yarn_mscale(float scale, float m) { return scale <= 1.0f ? 1.0f : 0.1f * m * std::log(scale) + 1.0f; }

// The (fractional) dimension whose wavelength turns n times over the original context.
double correction_dim(double n, int dim, double base, int max_pos) {
  return dim * std::log(max_pos / (n * 2 * M_PI)) / (2 * std::log(base));
}

}  // namespace

std::vector<float> RopeScaling::inv_freq(int D, float theta) const {
  std::vector<float> extra = kernels::rope_inv_freq(D, theta);
  if (!yarn) return extra;
  const int half = D / 2;
  const int low = std::max(0, int(std::floor(correction_dim(beta_fast, D, theta, original_max_position_embeddings))));
  const int high = std::min(D - 1, int(std::ceil(correction_dim(beta_slow, D, theta, original_max_position_embeddings))));
  const float hi = high == low ? float(high) + 0.001f : float(high);
  std::vector<float> f(half);
  for (int i = 0; i < half; ++i) {
    const float ramp = std::clamp((float(i) - float(low)) / (hi - float(low)), 0.0f, 1.0f);
    const float m = 1.0f - ramp;  // 1: keep the original frequency (high-frequency dimensions)
    // freq_inter = 1 / (factor * theta^(2i/D)): the float32 product, then the reciprocal.
    const float inter = 1.0f / (factor * std::pow(theta, float(2 * i) / float(D)));
    f[i] = inter * (1.0f - m) + extra[i] * m;
  }
  return f;
}

float RopeScaling::cos_sin_scale() const {
  return yarn ? yarn_mscale(factor, mscale) / yarn_mscale(factor, mscale_all_dim) : 1.0f;
}

float RopeScaling::softmax_scale() const {
  if (!yarn || mscale_all_dim == 0.0f) return 1.0f;
  const float m = yarn_mscale(factor, mscale_all_dim);
  return m * m;
}

RopeScaling RopeScaling::from_json(const nlohmann::json& j, const std::string& src) {
  RopeScaling s;
  if (j.is_null()) return s;
  auto fail = [&](const std::string& what) { throw Error("[config] " + src + ": rope_scaling " + what); };
  if (!j.is_object()) fail("must be null or an object, got " + j.dump());
  const std::string type = j.contains("type") ? j.value("type", "") : j.value("rope_type", "");
  if (type != "yarn") fail("type " + nlohmann::json(type).dump() + " is not implemented (supported: \"yarn\")");
  s.yarn = true;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& k = it.key();
    if (k == "type" || k == "rope_type") continue;
    if (!it.value().is_number()) fail("'" + k + "' must be a number, got " + it.value().dump());
    const double v = it.value().get<double>();
    if (k == "factor") s.factor = float(v);
    else if (k == "original_max_position_embeddings") s.original_max_position_embeddings = int(v);
    else if (k == "beta_fast") s.beta_fast = float(v);
    else if (k == "beta_slow") s.beta_slow = float(v);
    else if (k == "mscale") s.mscale = float(v);
    else if (k == "mscale_all_dim") s.mscale_all_dim = float(v);
    else fail("key '" + k + "' is not implemented for yarn");
  }
  if (!(s.factor >= 1.0f)) fail("factor must be >= 1");
  if (s.original_max_position_embeddings < 1) fail("original_max_position_embeddings must be >= 1");
  if (!(s.beta_fast > 0 && s.beta_slow > 0)) fail("beta_fast and beta_slow must be > 0");
  return s;
}

nlohmann::json RopeScaling::to_json() const {
  if (!yarn) return nullptr;
  return {{"type", "yarn"}, {"factor", factor}, {"original_max_position_embeddings", original_max_position_embeddings},
          {"beta_fast", beta_fast}, {"beta_slow", beta_slow}, {"mscale", mscale}, {"mscale_all_dim", mscale_all_dim}};
}

}  // namespace moe
