#pragma once
// N experts computing outputs for rows already grouped by expert (see Dispatch), and the backward.
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "moe/routing_plan.h"
#include "nn/param.h"

namespace moe {

class GridLiveness;

class ExpertBank {
 public:
  virtual ~ExpertBank() = default;
  virtual int n_experts() const = 0;
  // xs, ys: [M, d]; offsets: [E+1]. xs must stay alive until backward.
  virtual void forward(float* ys, const float* xs, const std::vector<int64_t>& offsets) = 0;
  // dxs: [M, d] assigned; parameter gradients accumulate. Runs at most once per forward. dxs may
  // alias the forward's xs (the MoE layer reuses that buffer): a bank reads an expert's rows of xs
  // before it writes that expert's rows of dxs.
  virtual void backward(float* dxs, const float* dys) = 0;
  virtual void params(ParamList& out) = 0;

  // Layout-exact mode (core/exact_sums.h), before each forward: how many of each expert's rows fall
  // in each block of the batch ([E, blocks], expert-major; rows are in token order within an
  // expert), so that the backward sums weight gradients block by block.
  virtual void set_row_blocks(const std::vector<int64_t>& counts, int blocks) {
    (void)counts, (void)blocks;
    throw Error("[moe] --exact-blocks: this kind of expert (remote or PEER) does not support layout-exact sums");
  }

  // Banks whose experts can fail (remote experts) use the routing of the coming forward (which
  // tokens wait for which experts) and report the experts that gave no answer: [E], 1 = failed,
  // their rows of ys zero. nullptr: every expert always answers.
  virtual void observe_plan(const RoutingPlan& plan) {}
  virtual const std::vector<uint8_t>* failed_experts() const { return nullptr; }
  // Experts reachable for the coming forward ([E], 1 = yes), for the router to route around the
  // others; nullptr: all.
  virtual const std::vector<uint8_t>* available_experts() { return nullptr; }
  // Banks whose experts sit on a grid and may be down (remote experts on a grid): which cells are
  // live, for the grid router's beam search; nullptr: the router's own view stands.
  virtual GridLiveness* grid_liveness() { return nullptr; }
  // The learning rate of the current training step, for banks whose experts step their own
  // optimizer (remote experts); local banks' parameters are stepped by the trainer.
  virtual void set_learning_rate(float lr) {}
};

}  // namespace moe
