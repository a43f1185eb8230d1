#pragma once
// Keys and values of the positions a layer has already seen, so that decoding a new token costs one
// position, not the whole prefix.
#include "core/tensor.h"

namespace moe {

struct LayerKVCache {
  Tensor k;         // [capacity, n_kv_heads, head_dim] (post-rotary keys)
  Tensor v;         // [capacity, n_kv_heads, head_dim]
  int64_t len = 0;  // positions filled
  int64_t capacity() const { return k.empty() ? 0 : k.dim(0); }
};

}  // namespace moe
