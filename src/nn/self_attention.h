#pragma once
// The attention of a decoder block, whatever its kind: grouped-query attention (nn/attention.h) or
// DeepSeek's multi-head latent attention (nn/mla_attention.h). The architecture (model/arch/)
// picks it per layer; the block only calls this interface.
#include <vector>

#include "nn/kv_cache.h"
#include "nn/param.h"

namespace moe {

class SelfAttention {
 public:
  virtual ~SelfAttention() = default;
  virtual void params(ParamList& out) = 0;
  // Training forward over B sequences of T tokens, positions 0..T-1 each.
  // x: [B*T, d] (must stay alive until backward), y: [B*T, d] assigned.
  virtual void forward(float* y, const float* x, int64_t B, int64_t T) = 0;
  // dx: [B*T, d] assigned; parameter gradients accumulate.
  virtual void backward(float* dx, const float* dy) = 0;
  // Inference: n new tokens at positions cache.len .. cache.len+n-1, appended to the cache.
  // x, y: [n, d]. The cache must have room (the caller manages the window).
  virtual void forward_cached(float* y, const float* x, int64_t n, LayerKVCache& cache) = 0;
  virtual void init_cache(LayerKVCache& cache, int64_t capacity) const = 0;
  // Inference: one new token for each of S sequences, row s appended to *caches[s].
  // x, y: [S, d]. By default one forward_cached per sequence; a kind that can batches its
  // projections over the S rows, so that a decode step reads each weight once, not S times.
  virtual void decode_batch(float* y, const float* x, const std::vector<LayerKVCache*>& caches) {
    const int64_t d = d_model();
    for (size_t s = 0; s < caches.size(); ++s) forward_cached(y + int64_t(s) * d, x + int64_t(s) * d, 1, *caches[s]);
  }
  virtual int64_t d_model() const = 0;
};

}  // namespace moe
