#pragma once
// Sort-based dropless dispatch: the n*k (token, slot) pairs are grouped by expert with a counting
// sort (E is small, so this is O(n*k + E) and stable: within an expert, tokens keep their order,
// which makes every later sum deterministic).
#include <cstdint>
#include <vector>

#include "moe/routing_plan.h"

namespace moe {

struct Dispatch {
  int n_expert = 0;
  int k = 0;
  std::vector<int64_t> offsets;     // [E+1]: rows of expert e are offsets[e] .. offsets[e+1]-1
  std::vector<int32_t> slot_of_row; // [M]: the (token * k + j) slot each grouped row came from
  std::vector<int32_t> row_of_slot; // [n*k]: grouped row of each slot, -1 when dropped
  int64_t rows() const { return offsets.empty() ? 0 : offsets.back(); }

  void build(const RoutingPlan& plan);
  // xs[r] = x[slot_of_row[r] / k]. x: [n, d], xs: [M, d]
  void gather(float* xs, const float* x, int64_t d) const;
  // y[t] = sum_j weight[t, j] * ys[row_of_slot[t*k+j]] (fixed j order). ys: [M, d], y: [n, d]
  void combine(float* y, const float* ys, const RoutingPlan& plan, int64_t d) const;
  // Backward of combine: dys[row] = w * dy[t]; dweight[t, j] = <ys[row], dy[t]> (0 when dropped).
  // dys may alias ys: each row is read, then written, by its one slot.
  void combine_backward(float* dys, float* dweight, const float* dy, const float* ys,
                        const RoutingPlan& plan, int64_t d) const;
  // Backward of gather: dx[t] = sum_j dxs[row_of_slot[t*k+j]] (assigned).
  void gather_backward(float* dx, const float* dxs, int64_t n, int64_t d) const;
};

}  // namespace moe
