#include "nn/kv_cache.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/attention.h"

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

void append_and_attend(float* att, const float* q, const float* k, const float* v,
                       const std::vector<LayerKVCache*>& caches, int64_t Hq, int64_t Hkv, int64_t D) {
  const int64_t S = int64_t(caches.size()), qd = Hq * D, kvd = Hkv * D;
  for (const LayerKVCache* c : caches) MOE_ASSERT(c->len + 1 <= c->capacity() && c->k.numel() / c->capacity() == kvd);
#pragma omp parallel for schedule(dynamic) if (S > 1)
  for (int64_t s = 0; s < S; ++s) {
    LayerKVCache& c = *caches[s];
    std::copy_n(k + s * kvd, kvd, c.k.data() + c.len * kvd);
    std::copy_n(v + s * kvd, kvd, c.v.data() + c.len * kvd);
    static thread_local std::vector<float> scratch;  // [context]: one head's scores
    if (int64_t(scratch.size()) < c.len + 1) scratch.resize(size_t(c.len + 1));
    kernels::attention_decode(att + s * qd, q + s * qd, c.k.data(), c.v.data(), c.len + 1, Hq, Hkv, D, scratch.data());
    c.len += 1;
  }
}

}  // namespace moe
