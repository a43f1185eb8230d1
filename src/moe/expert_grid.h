#pragma once
// Experts on a grid (Learning@home): expert e of a layer sits at coordinates (i0, i1, ...) of a
// D-dimensional grid, row-major (e = i0 * G1 + i1 for D = 2), so that a gate can score each
// coordinate separately and find its best experts without scoring every expert. GridLiveness tells
// which cells can be called, one prefix at a time: for remote experts each question is one (cached)
// DHT lookup of a prefix record, so a beam search asks about a few prefixes instead of listing the
// whole grid.
#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"

namespace moe {

struct GridShape {
  std::vector<int> dims;  // [D]: G_0, G_1, ...

  int64_t size() const {
    int64_t n = 1;
    for (int g : dims) n *= g;
    return n;
  }
  // Coordinates of expert e: [D].
  std::vector<int> coords(int64_t e) const {
    std::vector<int> c(dims.size());
    for (size_t d = dims.size(); d-- > 0;) {
      c[d] = int(e % dims[d]);
      e /= dims[d];
    }
    return c;
  }
  int64_t index(const std::vector<int>& c) const {
    int64_t e = 0;
    for (size_t d = 0; d < dims.size(); ++d) e = e * dims[d] + c[d];
    return e;
  }
  // moe::Error unless every dimension is >= 1 and the grid holds exactly n_experts cells.
  void check(int64_t n_experts, const std::string& where) const {
    if (dims.empty()) throw Error(where + ": the expert grid has no dimensions");
    for (int g : dims)
      if (g < 1) throw Error(where + ": expert grid dimensions must be >= 1, got " + std::to_string(g));
    if (size() != n_experts)
      throw Error(where + ": an expert grid of " + std::to_string(size()) + " cells for " + std::to_string(n_experts) +
                  " experts (the product of the grid dimensions must equal the expert count)");
  }
};

class GridLiveness {
 public:
  virtual ~GridLiveness() = default;
  // The coordinates c of dimension prefix.size() such that some live expert's coordinates start
  // with prefix + c, ascending. Called by one thread at a time.
  virtual std::vector<int> live_children(const std::vector<int>& prefix) = 0;
};

}  // namespace moe
