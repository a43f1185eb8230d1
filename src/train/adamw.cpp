#include "train/adamw.h"

#include <cmath>

#include "dist/gradient_sync.h"

namespace moe {

AdamW::AdamW(ParamList params, const AdamWConfig& cfg) : params_(std::move(params)), c_(cfg) {
  for (Param* p : params_) {
    m_.emplace_back(p->w.shape());
    v_.emplace_back(p->w.shape());
  }
}

void AdamW::step(float lr) {
  ++t_;
  const float b1 = c_.beta1, b2 = c_.beta2;
  const float bc1 = 1.0f - float(std::pow(double(b1), double(t_)));
  const float bc2 = 1.0f - float(std::pow(double(b2), double(t_)));
  const float step_size = lr / bc1;
  const float inv_sqrt_bc2 = 1.0f / std::sqrt(bc2);
  for (size_t i = 0; i < params_.size(); ++i) {
    Param& p = *params_[i];
    if (!p.trainable) continue;
    float* w = p.w.data();
    const float* g = p.g.data();
    float* m = m_[i].data();
    float* v = v_[i].data();
    const float decay = p.decay ? 1.0f - lr * c_.weight_decay : 1.0f;
    const float ss = step_size * p.lr_scale;
    auto update = [&](int64_t wj, int64_t gj) {
      m[wj] = b1 * m[wj] + (1.0f - b1) * g[gj];
      v[wj] = b2 * v[wj] + (1.0f - b2) * g[gj] * g[gj];
      const float denom = std::sqrt(v[wj]) * inv_sqrt_bc2 + c_.eps;
      w[wj] = w[wj] * decay - ss * m[wj] / denom;
    };
    if (p.row_sparse) {
      // Lazy Adam: only the rows with a gradient this step move (see adamw.h).
      const int64_t c = p.cols(), nr = int64_t(p.rows.size());
#pragma omp parallel for schedule(static)
      for (int64_t r = 0; r < nr; ++r) {
        const int64_t w0 = p.rows[r] * c, g0 = r * c;
#pragma omp simd
        for (int64_t j = 0; j < c; ++j) update(w0 + j, g0 + j);
      }
      continue;
    }
    const int64_t n = p.w.numel();
#pragma omp parallel for simd schedule(static)
    for (int64_t j = 0; j < n; ++j) update(j, j);
  }
}

std::vector<std::pair<std::string, const Tensor*>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, const Tensor*>> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.emplace_back("adam.m." + params_[i]->name, &m_[i]);
    out.emplace_back("adam.v." + params_[i]->name, &v_[i]);
  }
  return out;
}

double clip_grad_norm(const ParamList& params, double max_norm) {
  return dist::clip_grad_norm(params, max_norm, dist::ParallelLayout{});
}

}  // namespace moe
