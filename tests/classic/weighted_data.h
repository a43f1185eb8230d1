#pragma once
// Test data for "integer weights act as repeated samples": a weighted fit must equal the unweighted
// fit on the data with row i repeated w_i times.
#include <cstdint>
#include <functional>

#include "classic/expert.h"
#include "core/rng.h"

namespace moe::classic::test {

struct RepeatedRows {
  Mat X, Y;    // [n, d], [n, 1]: y = f(x0, x1) + N(0, 0.1^2)
  Vec w;       // [n]: 0, 1 or 2
  Mat Xr, Yr;  // [sum w, d], [sum w, 1]: row i repeated w_i times
};

inline RepeatedRows repeated_rows(uint64_t seed, int64_t n, const std::function<double(double, double)>& f) {
  Rng rng(seed);
  RepeatedRows r{Mat(n, 2), Mat(n, 1), Vec(n), {}, {}};
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) {
    r.X(i, 0) = rng.normal(), r.X(i, 1) = rng.normal();
    r.Y(i, 0) = f(r.X(i, 0), r.X(i, 1)) + 0.1 * rng.normal();
    r.w[i] = double(rng.next_u64() % 3);
    total += int64_t(r.w[i]);
  }
  r.Xr.resize(total, 2), r.Yr.resize(total, 1);
  for (int64_t i = 0, k = 0; i < n; ++i)
    for (int c = 0; c < int(r.w[i]); ++c, ++k) r.Xr.row(k) = r.X.row(i), r.Yr.row(k) = r.Y.row(i);
  return r;
}

}  // namespace moe::classic::test
