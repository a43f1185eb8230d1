#include "kernels/cross_entropy.h"

#include <algorithm>

#include "core/error.h"
#include "kernels/softmax.h"

namespace moe::kernels {

namespace {
constexpr int64_t kParallelMin = 1 << 15;  // elements below which one thread is faster

void check_targets(const int32_t* targets, int64_t n, int64_t V) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) ok &= targets[i] >= -1 && targets[i] < V;
  MOE_ASSERT(ok);  // targets in [0, V) or -1
}
}  // namespace

// nll = logsumexp(row) - row[t], the logsumexp with max subtraction (softmax.h). Its float
// rounding is within an ulp of the largest logit, the same order as the logits' own rounding.
double cross_entropy_forward(float* nll, const float* logits, const int32_t* targets, int64_t n,
                             int64_t V) {
  check_targets(targets, n, V);
  double total = 0.0;
  // Rows are summed in a fixed order after the parallel part: the total is deterministic.
#pragma omp parallel for schedule(static) if (n > 1 && n * V >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const int32_t t = targets[i];
    if (t < 0) {
      nll[i] = 0.0f;
      continue;
    }
    float lse;
    logsumexp_rows(&lse, logits + i * V, 1, V);
    nll[i] = lse - logits[i * V + t];
  }
  for (int64_t i = 0; i < n; ++i)
    if (targets[i] >= 0) total += nll[i];
  return total;
}

// softmax_forward reads the whole row (max, then exp) before it writes an element it has read,
// so dlogits may alias logits.
void cross_entropy_backward(float* dlogits, const float* logits, const int32_t* targets, int64_t n,
                            int64_t V, float scale) {
  check_targets(targets, n, V);
#pragma omp parallel for schedule(static) if (n > 1 && n * V >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    float* o = dlogits + i * V;
    const int32_t t = targets[i];
    if (t < 0) {
      std::fill(o, o + V, 0.0f);
      continue;
    }
    softmax_forward(o, logits + i * V, 1, V);
#pragma omp simd
    for (int64_t c = 0; c < V; ++c) o[c] *= scale;
    o[t] -= scale;
  }
}

}  // namespace moe::kernels
