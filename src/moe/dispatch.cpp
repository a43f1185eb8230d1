#include "moe/dispatch.h"

#include <cstring>

#include "core/error.h"

namespace moe {

void Dispatch::build(const RoutingPlan& plan) {
  n_expert = plan.n_expert;
  k = plan.k;
  const int64_t slots = plan.n_tok * plan.k;
  offsets.assign(n_expert + 1, 0);
  for (int64_t s = 0; s < slots; ++s) {
    const int32_t e = plan.expert[s];
    if (e >= 0) offsets[e + 1]++;
  }
  for (int e = 0; e < n_expert; ++e) offsets[e + 1] += offsets[e];
  slot_of_row.resize(offsets.back());
  row_of_slot.assign(slots, -1);
  std::vector<int64_t> next(offsets.begin(), offsets.end() - 1);
  for (int64_t s = 0; s < slots; ++s) {
    const int32_t e = plan.expert[s];
    if (e < 0) continue;
    const int64_t r = next[e]++;
    slot_of_row[r] = int32_t(s);
    row_of_slot[s] = int32_t(r);
  }
}

void Dispatch::gather(float* xs, const float* x, int64_t d) const {
  const int64_t M = rows();
#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < M; ++r)
    std::memcpy(xs + r * d, x + int64_t(slot_of_row[r] / k) * d, d * sizeof(float));
}

void Dispatch::combine(float* y, const float* ys, const RoutingPlan& plan, int64_t d) const {
  const int64_t n = plan.n_tok;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    float* yt = y + t * d;
    std::memset(yt, 0, d * sizeof(float));
    for (int j = 0; j < k; ++j) {
      const int32_t r = row_of_slot[t * k + j];
      if (r < 0) continue;
      const float w = plan.weight[t * k + j];
      const float* src = ys + int64_t(r) * d;
      for (int64_t i = 0; i < d; ++i) yt[i] += w * src[i];
    }
  }
}

void Dispatch::combine_backward(float* dys, float* dweight, const float* dy, const float* ys,
                                const RoutingPlan& plan, int64_t d) const {
  const int64_t n = plan.n_tok;
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    const float* g = dy + t * d;
    for (int j = 0; j < k; ++j) {
      const int32_t r = row_of_slot[t * k + j];
      if (r < 0) {
        dweight[t * k + j] = 0;
        continue;
      }
      const float w = plan.weight[t * k + j];
      const float* src = ys + int64_t(r) * d;
      float* dst = dys + int64_t(r) * d;
      float dot = 0;
      for (int64_t i = 0; i < d; ++i) {
        dot += src[i] * g[i];
        dst[i] = w * g[i];
      }
      dweight[t * k + j] = dot;
    }
  }
}

void Dispatch::gather_backward(float* dx, const float* dxs, int64_t n, int64_t d) const {
#pragma omp parallel for schedule(static)
  for (int64_t t = 0; t < n; ++t) {
    float* out = dx + t * d;
    std::memset(out, 0, d * sizeof(float));
    for (int j = 0; j < k; ++j) {
      const int32_t r = row_of_slot[t * k + j];
      if (r < 0) continue;
      const float* src = dxs + int64_t(r) * d;
      for (int64_t i = 0; i < d; ++i) out[i] += src[i];
    }
  }
}

}  // namespace moe
