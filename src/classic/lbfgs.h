#pragma once
// L-BFGS (Nocedal & Wright, algorithm 7.4) with a backtracking line search, maximising. Used where
// an expert has no closed-form fit (the MLP's M-step). Written here because the problems are tiny
// (hundreds of parameters) and EM needs one property a library would not promise: the returned
// point is never worse than the start (a step is taken only when it raises the objective).
#include <functional>

#include "classic/expert.h"

namespace moe::classic {

struct LbfgsConfig {
  int max_iterations = 50;
  int memory = 8;
  double tolerance = 1e-10;  // stop when a step gains less than this (relative to |f| + 1)
};

// f(theta, grad) returns the objective and, when grad is not null, writes its gradient.
using Objective = std::function<double(const Vec& theta, Vec* grad)>;

// Maximises f from theta (updated in place); returns f(theta) at the end, >= f at the start.
double lbfgs_maximize(const Objective& f, Vec& theta, const LbfgsConfig& cfg = {});

}  // namespace moe::classic
