#include "classic/lbfgs.h"

#include <cmath>
#include <deque>

namespace moe::classic {

double lbfgs_maximize(const Objective& f, Vec& theta, const LbfgsConfig& cfg) {
  Vec g(theta.size());
  double fx = f(theta, &g);
  if (!std::isfinite(fx)) return fx;
  std::deque<std::pair<Vec, Vec>> mem;  // (s, y) of the minimised -f
  for (int it = 0; it < cfg.max_iterations; ++it) {
    // Two-loop recursion on the minimised function: q = grad(-f) = -g.
    Vec q = -g;
    std::vector<double> alpha(mem.size());
    for (size_t k = mem.size(); k-- > 0;) {
      const auto& [s, y] = mem[k];
      alpha[k] = s.dot(q) / y.dot(s);
      q -= alpha[k] * y;
    }
    if (!mem.empty()) q *= mem.back().first.dot(mem.back().second) / mem.back().second.squaredNorm();
    else q /= std::max(1.0, q.norm());  // first step: at most unit length
    for (size_t k = 0; k < mem.size(); ++k) {
      const auto& [s, y] = mem[k];
      q += s * (alpha[k] - y.dot(q) / y.dot(s));
    }
    Vec dir = -q;  // ascent direction for f
    if (!(dir.dot(g) > 0)) {  // curvature pairs gone bad: restart from the gradient
      mem.clear();
      dir = g / std::max(1.0, g.norm());
    }
    const double slope = dir.dot(g);
    if (!(slope > 0)) break;
    Vec g_new(theta.size()), next;
    double f_new = fx, t = 1.0;
    bool accepted = false;
    for (int ls = 0; ls < 30; ++ls, t *= 0.5) {
      next = theta + t * dir;
      f_new = f(next, &g_new);
      if (std::isfinite(f_new) && f_new >= fx + 1e-4 * t * slope) {
        accepted = true;
        break;
      }
    }
    if (!accepted) break;
    const Vec s = next - theta, y = g - g_new;  // y of -f: grad(-f)_new - grad(-f)_old
    const double gain = f_new - fx;
    theta = next, fx = f_new, g = g_new;
    if (s.dot(y) > 1e-12 * s.norm() * y.norm()) {
      mem.emplace_back(s, y);
      if (int(mem.size()) > cfg.memory) mem.pop_front();
    }
    if (gain <= cfg.tolerance * (std::abs(fx) + 1)) break;
  }
  return fx;
}

}  // namespace moe::classic
