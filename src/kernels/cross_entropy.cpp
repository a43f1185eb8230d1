#include "kernels/cross_entropy.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/softmax.h"

namespace moe::kernels {

namespace {
constexpr int64_t kParallelMin = 1 << 15;  // elements below which one thread is faster

void check_targets(const int32_t* targets, int64_t n, int64_t V) {
  bool ok = true;
  for (int64_t i = 0; i < n; ++i) ok &= targets[i] < V;
  MOE_ASSERT(ok);  // targets in [0, V); any negative target (-1, or PyTorch's -100) is ignored
}
}  // namespace

// nll = logsumexp(row - row[t]), i.e. log sum_c exp(a_c - a_t), through logsumexp_rows (max
// subtraction). Shifting by the target logit first keeps the float rounding relative to the loss
// and to the logit gaps, not to the logits' magnitude: with every logit 1e4, logsumexp(row) - a_t
// would lose the answer to the rounding of 1e4 (~5e-4), while the shifted row gives log(V) to float precision.
double cross_entropy_forward(float* nll, const float* logits, const int32_t* targets, int64_t n,
                             int64_t V) {
  check_targets(targets, n, V);
#pragma omp parallel if (n > 1 && n * V >= kParallelMin)
  {
    std::vector<float> shifted(V);  // [V]
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      const int32_t t = targets[i];
      if (t < 0) {
        nll[i] = 0.0f;
        continue;
      }
      const float* a = logits + i * V;
      const float at = a[t];
#pragma omp simd
      for (int64_t c = 0; c < V; ++c) shifted[c] = a[c] - at;
      logsumexp_rows(&nll[i], shifted.data(), 1, V);
    }
  }
  // Summed in row order after the parallel part: the total does not depend on the thread count.
  double total = 0.0;
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
