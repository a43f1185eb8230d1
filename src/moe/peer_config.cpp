#include "moe/peer_config.h"

#include <cmath>

#include "core/error.h"

namespace moe {

int64_t PEERConfig::n_sub() const {
  int64_t s = int64_t(std::llround(std::sqrt(double(n_experts))));
  while (s * s > n_experts) --s;
  while ((s + 1) * (s + 1) <= n_experts) ++s;
  return s;
}

void PEERConfig::validate(const std::string& prefix) const {
  auto fail = [&](const std::string& m) { throw Error(prefix + m); };
  if (n_experts < 4 || n_sub() * n_sub() != n_experts)
    fail("peer_num_experts must be a perfect square >= 4 (product keys: sqrt(N) x sqrt(N)), got " + std::to_string(n_experts));
  if (n_experts > (int64_t(1) << 30)) fail("peer_num_experts must be at most 2^30, got " + std::to_string(n_experts));
  if (heads < 1) fail("peer_heads must be >= 1, got " + std::to_string(heads));
  if (top_k < 1 || top_k > n_sub())
    fail("peer_top_k must be in [1, sqrt(peer_num_experts) = " + std::to_string(n_sub()) + "], got " + std::to_string(top_k));
  if (key_dim < 2 || key_dim % 2 != 0) fail("peer_key_dim must be even and >= 2, got " + std::to_string(key_dim));
  if (d_model < 1) fail("d_model must be >= 1");
  if (!(key_lr_scale > 0.0f) || !(key_lr_scale <= 1e3f))
    fail("peer_key_lr_scale must be in (0, 1000], got " + std::to_string(key_lr_scale));
}

}  // namespace moe
