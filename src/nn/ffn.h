#pragma once
// The feed-forward half of a decoder block, whatever its kind: a dense SwiGLU MLP (nn/dense_ffn.h),
// routed experts with optional shared ones (moe/routed_ffn.h) or a PEER layer (moe/peer_layer.h).
// The block calls only this interface; which kind each layer gets is the architecture's choice
// (model/arch/).
#include <cstdint>

#include "dist/communicator.h"
#include "nn/param.h"

namespace moe {

class MoELayer;
class PEERLayer;

class FFN {
 public:
  virtual ~FFN() = default;
  virtual void params(ParamList& out) = 0;
  // x, y: [n, d], n = B * T tokens in sequences of T (routers that balance per sequence read T);
  // x must stay alive until backward.
  virtual void forward(float* y, const float* x, int64_t n, int64_t T) = 0;
  // dx: [n, d] assigned. At most once per forward.
  virtual void backward(float* dx, const float* dy) = 0;

  // Training state of routers; no-ops for FFNs without one.
  virtual void set_training(bool) {}
  virtual void after_step() {}                    // after each optimizer step (router bias updates)
  virtual void restore_steps(int64_t) {}          // a resumed run: routers' step counters (noise)
  virtual void set_learning_rate(float) {}        // experts that step their own optimizer (remote)
  virtual void set_data_group(const dist::Communicator&) {}
  virtual bool causal() const { return true; }    // false: routing looks at later tokens
  virtual double aux_objective() const { return 0.0; }  // weighted router losses of the last forward

  // The routed experts or PEER layer inside, for statistics and growth; nullptr for other kinds.
  virtual MoELayer* routed() { return nullptr; }
  virtual PEERLayer* peer() { return nullptr; }
};

}  // namespace moe
