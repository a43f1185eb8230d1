#pragma once
// Keys and values of the positions a layer has already seen, so that decoding a new token costs one
// position, not the whole prefix.
#include <vector>

#include "core/tensor.h"

namespace moe {

struct LayerKVCache {
  Tensor k;         // [capacity, n_kv_heads, head_dim] (post-rotary keys)
  Tensor v;         // [capacity, n_kv_heads, head_dim]
  int64_t len = 0;  // positions filled
  int64_t capacity() const { return k.empty() ? 0 : k.dim(0); }
  int64_t bytes() const { return int64_t(sizeof(float)) * (k.numel() + v.numel()); }
};

// Reallocates to room for `capacity` positions, keeping the first min(len, capacity).
void set_capacity(LayerKVCache& cache, int64_t capacity);
// dst's first n positions := src's (both made by the same layer's init_cache); dst.len = n.
void copy_positions(LayerKVCache& dst, const LayerKVCache& src, int64_t n);

// One decode step of S sequences after their projections: row s of k and v ([S, Hkv*D]) is
// appended to *caches[s], then row s of q ([S, Hq*D]) attends over that cache into row s of att
// ([S, Hq*D]). The sequences spread over the threads.
void append_and_attend(float* att, const float* q, const float* k, const float* v,
                       const std::vector<LayerKVCache*>& caches, int64_t Hq, int64_t Hkv, int64_t D);

}  // namespace moe
