#pragma once
// PEER's product-key router (He 2024): per head, q = BN?(x W_q^T) split in halves, each half scored
// against sqrt(N) sub-keys, the exact top-k of all N product keys from the two top-k lists
// (kernels/product_keys.h), and weights softmax (or sigmoid) over the k retrieved scores. The plan
// holds h*k slots per token, slot = head * k + i, expert ids global in [0, N). No auxiliary loss.
#include <string>
#include <vector>

#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/product_keys.h"
#include "moe/peer_config.h"
#include "moe/router.h"

namespace moe {

class PEERRouter final : public Router {
 public:
  // prefix: e.g. "model.layers.2.peer"
  PEERRouter(const std::string& prefix, const PEERConfig& cfg);
  Param query;     // [h * dk, d]
  Param sub_keys;  // [2, h, sqrt(N), dk / 2]: the first and the second half's sub-keys per head
  // Batch normalisation of the query (cfg.batch_norm): scale, shift, running statistics.
  Param bn_weight, bn_bias, bn_mean, bn_var;  // [h * dk]

  void forward(RoutingPlan& plan, const float* x, int64_t n) override;
  void backward(float* dx, const float* dweight) override;
  void params(ParamList& out) override;
  double aux_objective() const override { return 0.0; }
  // Batch statistics during training would make a token's routing depend on the batch, but
  // generation uses running statistics (eval mode), where each token is routed on its own.
  bool causal() const override { return true; }
  // Sets the running variance to 1 (after a generic initialisation has set it to 0).
  void reset_running_stats();
  // Sub-keys as product-key memories draw theirs (Lample et al. 2019): uniform in +-1/sqrt(dk/2).
  void init_sub_keys(Rng& rng);

  const PEERConfig& config() const { return c_; }

 private:
  void normalize_query(int64_t n);
  void normalize_query_backward(float* dqraw, int64_t n);

  PEERConfig c_;
  const float* x_ = nullptr;
  int64_t n_ = 0;
  const RoutingPlan* plan_ = nullptr;
  Tensor qraw_;     // [n, h*dk] x W_q^T
  Tensor q_;        // [n, h*dk] after batch normalisation (= qraw_ without it)
  Tensor xhat_;     // [n, h*dk] normalised query before scale and shift
  Tensor inv_std_;  // [h*dk] of the statistics used by the last forward
  bool batch_stats_ = false;  // the last forward normalised with batch statistics
  Tensor ds_;       // [n, h*k] score gradients
  Tensor dq_;       // [n, h*dk]
  std::vector<Tensor> sub_scores_;  // per thread: [2, chunk, sqrt(N)]
  std::vector<kernels::ProductKeyScratch> scratch_;  // per thread
};

}  // namespace moe
