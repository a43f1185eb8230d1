#pragma once
// Learning-rate schedule: linear warm-up to max_lr, then cosine decay to min_lr at total_steps.
#include <cmath>
#include <cstdint>

namespace moe {

struct LRSchedule {
  float max_lr = 3e-3f;
  float min_lr = 3e-4f;
  int64_t warmup_steps = 50;
  int64_t total_steps = 1000;

  // step counts from 1.
  float at(int64_t step) const {
    if (warmup_steps > 0 && step <= warmup_steps) return max_lr * float(step) / float(warmup_steps);
    if (step >= total_steps) return min_lr;
    const double p = double(step - warmup_steps) / double(std::max<int64_t>(1, total_steps - warmup_steps));
    return float(min_lr + 0.5 * (max_lr - min_lr) * (1.0 + std::cos(M_PI * p)));
  }
};

}  // namespace moe
