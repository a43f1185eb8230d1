#pragma once
// What a router hands to the rest of the MoE layer: for each token its k chosen experts and their
// combine weights, plus the statistics and auxiliary losses of this routing.
#include <cstdint>
#include <vector>

namespace moe {

struct RouterStats {
  std::vector<int64_t> tokens_per_expert;  // [E]: all k choices counted
  int64_t dropped = 0;                     // (token, expert) pairs dropped by capacity
  int64_t batch_tokens = 0;                // tokens these statistics cover: the whole batch over
                                           // the data group's ranks (0: the plan's own n_tok)
  double aux_loss = 0;                     // load-balancing loss value (before its coefficient)
  double z_loss = 0;                       // router z-loss value (before its coefficient)
  double seq_aux_loss = 0;                 // sequence-wise balancing loss (before its coefficient)
  double entropy = 0;                      // mean router entropy over tokens (nats)
};

struct RoutingPlan {
  int64_t n_tok = 0;
  int k = 0;
  int n_expert = 0;
  std::vector<int32_t> expert;  // [n_tok, k]; -1 marks a dropped slot
  std::vector<float> weight;    // [n_tok, k]
  RouterStats stats;
};

}  // namespace moe
