#include "nn/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace moe {

namespace {

// A tensor like t with `rows` positions, the first `keep` copied from t.
Tensor resized_rows(const Tensor& t, int64_t rows, int64_t keep) {
  Shape s = t.shape();
  const int64_t row = t.numel() / s[0];
  s[0] = rows;
  Tensor out(s);
  std::memcpy(out.data(), t.data(), size_t(keep * row) * sizeof(float));
  return out;
}

}  // namespace

void set_capacity(LayerKVCache& cache, int64_t capacity) {
  MOE_ASSERT(!cache.k.empty() && !cache.v.empty() && capacity > 0);
  cache.len = std::min(cache.len, capacity);
  cache.k = resized_rows(cache.k, capacity, cache.len);
  cache.v = resized_rows(cache.v, capacity, cache.len);
}

void copy_positions(LayerKVCache& dst, const LayerKVCache& src, int64_t n) {
  MOE_ASSERT(n <= src.len && n <= dst.capacity());
  MOE_ASSERT(dst.k.numel() / dst.k.dim(0) == src.k.numel() / src.k.dim(0));
  MOE_ASSERT(dst.v.numel() / dst.v.dim(0) == src.v.numel() / src.v.dim(0));
  std::memcpy(dst.k.data(), src.k.data(), size_t(n * (src.k.numel() / src.k.dim(0))) * sizeof(float));
  std::memcpy(dst.v.data(), src.v.data(), size_t(n * (src.v.numel() / src.v.dim(0))) * sizeof(float));
  dst.len = n;
}

}  // namespace moe
