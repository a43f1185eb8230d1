#pragma once
// A router maps token features to a routing plan. It owns the gate parameters, never the experts.
#include <functional>
#include <vector>

#include "dist/communicator.h"
#include "moe/routing_plan.h"
#include "nn/param.h"

namespace moe {

class GridLiveness;

class Router {
 public:
  virtual ~Router() = default;
  // x: [n, d] (must stay alive until backward). Fills plan (expert, weight, stats).
  virtual void forward(RoutingPlan& plan, const float* x, int64_t n) = 0;
  // dweight: [n, k] gradient of the objective w.r.t. plan.weight. Adds the auxiliary losses'
  // gradients (with their coefficients), accumulates into the gate's parameters and ADDS the input
  // gradient into dx: [n, d].
  virtual void backward(float* dx, const float* dweight) = 0;
  virtual void params(ParamList& out) = 0;
  // Training and evaluation may route differently (e.g. capacity factors).
  virtual void set_training(bool training) { training_ = training; }
  bool training() const { return training_; }
  // Tokens per sequence of the next forward (the n tokens are n / T sequences, one after another);
  // 0: one sequence. Used by the sequence-wise balancing loss.
  void set_sequence_length(int64_t T) { seq_len_ = T; }
  // Called once after each optimizer step of training (e.g. to update a balancing bias).
  virtual void after_step() {}
  // A resumed run: the state after_step() keeps that is not a parameter (a step counter), as after
  // `steps` steps.
  virtual void restore_steps(int64_t /*steps*/) {}
  // Whether a token's routing depends only on that token (false for expert choice, where experts
  // pick among all tokens of the batch): such routers cannot generate text autoregressively.
  virtual bool causal() const { return true; }
  // Weighted auxiliary objective of the last forward (coefficients applied), added to the loss.
  virtual double aux_objective() const = 0;
  // The ranks that split each batch between them (data parallelism), this process's tokens coming
  // after those of lower ranks. Balancing losses, capacities, bias updates and the statistics are
  // computed over all their tokens, as one process holding the whole batch would compute them, and
  // backward gives this rank's share of the gradient of that global objective. Default: this
  // process alone.
  virtual void set_data_group(const dist::Communicator& group) { group_ = group; }
  // Experts known to be unreachable before the next forward (remote experts without a live
  // server): [E], 1 = available; nullptr: all. Routers that support it (top-k softmax, switch)
  // route each token to its best available experts; the others route as usual and the MoE layer
  // masks the experts that do not answer.
  void set_available(const std::vector<uint8_t>* available) { available_ = available; }
  // Which cells of an expert grid are live, asked one prefix at a time (remote experts on a grid);
  // only the grid router uses it. nullptr: all (or those of set_available).
  virtual void set_liveness(GridLiveness* live) {}

 protected:
  // Sizes plan for n tokens with k slots each over E experts (expert and weight resized).
  static void prepare_plan(RoutingPlan& plan, int64_t n, int k, int E);
  // The gate's backward from logit gradients dl [n, E]: dx [n, d] += dl W, W.g += dl^T x.
  static void gate_backward(float* dx, Param& gate, const float* dl, const float* x, int64_t n);
  // Loss-free balancing (DeepSeek-V3): bias_i += speed * sign(mean load - load_i); clears load.
  static void update_balance_bias(Param& bias, std::vector<int64_t>& load, float speed);
  // Sums this rank's per-expert counts (st.tokens_per_expert) and the extra sums over the data
  // group, in place (one exact all-reduce); returns the batch's token count (counts / k).
  int64_t reduce_over_group(RouterStats& st, std::vector<double>& sums, int k) const;
  // For routers whose weights are the chosen experts' scores s [n, E] (>= 0; plan.expert filled):
  // weight = s_e * scale(sum of the token's chosen scores). Counts the tokens per expert into
  // plan.stats (from zero) and adds to sums[0..E) the scores normalised over all E experts, to
  // sums[E] their entropy.
  static void weigh_chosen_scores(RoutingPlan& plan, const float* s, int64_t n, int k, int E,
                                  const std::function<float(float)>& scale, std::vector<double>& sums);

  bool training_ = false;
  int64_t seq_len_ = 0;
  dist::Communicator group_;
  const std::vector<uint8_t>* available_ = nullptr;
};

}  // namespace moe
