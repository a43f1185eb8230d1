#pragma once
// The attention of a decoder block, whatever its kind: grouped-query attention (nn/attention.h) or
// DeepSeek's multi-head latent attention (nn/mla_attention.h). The architecture (model/arch/)
// picks it per layer; the block only calls this interface.
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
};

}  // namespace moe
