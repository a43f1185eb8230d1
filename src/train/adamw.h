#pragma once
// AdamW (decoupled weight decay, Loshchilov & Hutter) with bias correction. Parameters whose
// Param::decay is false (norm scales) get no weight decay.
// Row-sparse parameters (Param::row_sparse, e.g. PEER's expert tables) use lazy Adam, the
// semantics of PyTorch's SparseAdam: a step updates the moments and weights of the rows that have a
// gradient and leaves every other row as it is; bias correction uses the global step count. Dense
// Adam would decay the moments of all 10^6 rows every step, reading and writing ~3 GB per step for
// rows the step never touched; lazy Adam costs O(rows touched). Weight decay, when a row-sparse
// parameter asks for it, applies to the touched rows only.
#include <map>
#include <string>
#include <vector>

#include "nn/param.h"

namespace moe {

struct AdamWConfig {
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.1f;
};

class AdamW {
 public:
  AdamW(ParamList params, const AdamWConfig& cfg);
  // One update with learning rate lr; increments step().
  void step(float lr);
  int64_t steps_done() const { return t_; }

  // State as named tensors ("adam.m.<param>", "adam.v.<param>") for checkpoints.
  std::vector<std::pair<std::string, const Tensor*>> state_tensors() const;
  // Restores m and v from a lookup; throws moe::Error naming the tensor on a missing or mis-shaped one.
  template <class Lookup>
  void load_state(Lookup&& read_into, int64_t steps_done) {
    for (size_t i = 0; i < params_.size(); ++i) {
      read_into("adam.m." + params_[i]->name, m_[i]);
      read_into("adam.v." + params_[i]->name, v_[i]);
    }
    t_ = steps_done;
  }

 private:
  ParamList params_;
  AdamWConfig c_;
  std::vector<Tensor> m_, v_;
  int64_t t_ = 0;
};

// Scales all gradients so that their global L2 norm is at most max_norm; returns the norm before.
double clip_grad_norm(const ParamList& params, double max_norm);

}  // namespace moe
