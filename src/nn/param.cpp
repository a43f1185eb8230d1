#include "nn/param.h"

#include <cstring>

namespace moe {

namespace {
thread_local bool t_gradients = true;
thread_local bool t_deferred = false;
}  // namespace

NoGradients::NoGradients() : ThreadFlagScope(t_gradients, false) {}
bool params_get_gradients() { return t_gradients; }

DeferredWeights::DeferredWeights() : ThreadFlagScope(t_deferred, true) {}
bool params_deferred() { return t_deferred; }

void Param::add_row_grads(const std::vector<int64_t>& new_rows, const float* grad) {
  MOE_ASSERT(row_sparse);
  const int64_t c = cols();
  if (rows.empty()) {  // the common case: one backward per step
    rows = new_rows;
    g.resize({int64_t(rows.size()), c});
    if (!rows.empty()) std::memcpy(g.data(), grad, rows.size() * c * sizeof(float));
    return;
  }
  // Merge two sorted row lists (gradient accumulation over several backward passes).
  std::vector<int64_t> merged;
  merged.reserve(rows.size() + new_rows.size());
  Tensor out({int64_t(rows.size() + new_rows.size()), c});
  size_t a = 0, b = 0;
  while (a < rows.size() || b < new_rows.size()) {
    float* dst = out.data() + merged.size() * c;
    if (b == new_rows.size() || (a < rows.size() && rows[a] < new_rows[b])) {
      std::memcpy(dst, g.data() + a * c, c * sizeof(float));
      merged.push_back(rows[a++]);
    } else if (a == rows.size() || new_rows[b] < rows[a]) {
      std::memcpy(dst, grad + b * c, c * sizeof(float));
      merged.push_back(new_rows[b++]);
    } else {
      for (int64_t i = 0; i < c; ++i) dst[i] = g[a * c + i] + grad[b * c + i];
      merged.push_back(rows[a]);
      ++a, ++b;
    }
  }
  out.resize({int64_t(merged.size()), c});
  rows = std::move(merged);
  g = std::move(out);
}

}  // namespace moe
