#pragma once
// The synthetic problems of the 1991/1994 demonstrations (tests and bench/classic_regions.cpp):
// piecewise-linear regressions on [-1, 1]^2 whose pieces the gates should find.
#include <vector>

#include "classic/expert.h"

namespace moe::classic {

struct RegionProblem {
  Mat X;                    // [n, 2], uniform on [-1, 1]^2
  Mat Y;                    // [n, 1]: the piece's linear function + N(0, noise^2)
  std::vector<int> region;  // [n]: which piece made each row
};

// Four pieces, one per quadrant, joined continuously (a jump at an edge would put the error of any
// estimate of that edge, not the mixture's, into the test MSE).
RegionProblem quadrant_problem(int64_t n, double noise, uint64_t seed);

// Nested pieces for a 2-level hierarchy: x1 < 0 or not first, then x2 split at 0.4 on the left and
// at -0.3 on the right (continuous within each half; the halves meet with a jump).
RegionProblem nested_problem(int64_t n, double noise, uint64_t seed);

// Share of rows whose most-gated expert (argmax of gate [n, E]) is their region's expert, under the
// best one-to-one map from regions to experts (brute force: at most 6 regions).
double region_accuracy(const Mat& gate, const std::vector<int>& region);

}  // namespace moe::classic
