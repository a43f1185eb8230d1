#include "nn/embedding.h"

#include <cstring>

#include "core/exact_sums.h"

namespace moe {

void Embedding::forward(float* out, const int32_t* tokens, int64_t n) const {
  for (int64_t i = 0; i < n; ++i) {
    MOE_ASSERT(tokens[i] >= 0 && tokens[i] < vocab_);
    kernels::matrix_rows(out + i * dim_, weight.matrix(), dim_, int64_t(tokens[i]), 1);
  }
}

void Embedding::backward(const float* dout, const int32_t* tokens, int64_t n) {
  // Layout-exact mode (core/exact_sums.h): the rows add up in double, in the gradient's accumulator.
  if (double* acc = exact::enabled() ? exact::accumulator(weight.g.data()) : nullptr) {
    for (int64_t i = 0; i < n; ++i) {
      double* row = acc + int64_t(tokens[i]) * dim_;
      const float* d = dout + i * dim_;
      for (int j = 0; j < dim_; ++j) row[j] += d[j];
    }
    return;
  }
  // Sequential over tokens: repeated tokens add in a fixed order (deterministic).
  float* g = weight.g.data();
  for (int64_t i = 0; i < n; ++i) {
    float* row = g + int64_t(tokens[i]) * dim_;
    const float* d = dout + i * dim_;
    for (int j = 0; j < dim_; ++j) row[j] += d[j];
  }
}

}  // namespace moe
