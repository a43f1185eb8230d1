#include "dist/gradient_sync.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace moe::dist {

namespace {

// One all-reduce over a packed copy of many gradients: per-call latency is paid once, not per
// tensor.
void reduce_packed(const std::vector<Param*>& ps, const Communicator& group) {
  if (group.size() == 1 || ps.empty()) return;
  int64_t n = 0;
  for (Param* p : ps) n += p->g.numel();
  std::vector<float> buf(static_cast<size_t>(n));
  int64_t at = 0;
  for (Param* p : ps) std::memcpy(buf.data() + at, p->g.data(), size_t(p->g.numel()) * 4), at += p->g.numel();
  group.all_reduce_sum(buf.data(), n);
  at = 0;
  for (Param* p : ps) std::memcpy(p->g.data(), buf.data() + at, size_t(p->g.numel()) * 4), at += p->g.numel();
}

void reduce_row_sparse(Param& p, const Communicator& group) {
  if (group.size() == 1) return;
  std::vector<int64_t> counts;
  const std::vector<int64_t> rows = group.all_gather_v(p.rows, &counts);
  const std::vector<float> vals = group.all_gather_v(std::vector<float>(p.g.data(), p.g.data() + p.g.numel()));
  const int64_t c = p.cols();
  p.zero_grad();
  int64_t at = 0;
  for (int64_t k : counts) {
    p.add_row_grads(std::vector<int64_t>(rows.begin() + at, rows.begin() + at + k), vals.data() + at * c);
    at += k;
  }
}

double sum_squares(const Param& p) {
  const float* g = p.g.data();
  const int64_t n = p.g.numel();
  double s = 0;
#pragma omp parallel for reduction(+ : s) schedule(static)
  for (int64_t j = 0; j < n; ++j) s += double(g[j]) * g[j];
  return s;
}

// Layout-exact mode: the double accumulators summed over the group, then rounded to float once.
void reduce_exact(const std::vector<Param*>& ps, const Communicator& group) {
  if (ps.empty()) return;
  int64_t n = 0;
  for (Param* p : ps) n += int64_t(p->g64.size());
  std::vector<double> buf(static_cast<size_t>(n));
  int64_t at = 0;
  for (Param* p : ps) std::copy(p->g64.begin(), p->g64.end(), buf.begin() + at), at += int64_t(p->g64.size());
  if (group.size() > 1) group.all_reduce_sum(buf.data(), n);
  at = 0;
  for (Param* p : ps) {
    float* g = p->g.data();
    for (size_t j = 0; j < p->g64.size(); ++j) g[j] = float(buf[size_t(at) + j]);
    at += int64_t(p->g64.size());
  }
}

}  // namespace

void all_reduce_gradients(const ParamList& params, const ParallelLayout& layout) {
  std::vector<Param*> replicated, sharded, exact_rep, exact_shard;
  const Communicator &world = layout.world, &replica = layout.replica;
  for (Param* p : params) {
    if (!p->trainable) continue;
    if (!p->g64.empty()) {
      (p->sharded ? exact_shard : exact_rep).push_back(p);
      continue;
    }
    if (p->row_sparse) reduce_row_sparse(*p, p->sharded ? replica : world);
    else (p->sharded ? sharded : replicated).push_back(p);
  }
  reduce_packed(replicated, world);
  reduce_packed(sharded, replica);
  reduce_exact(exact_rep, world);
  reduce_exact(exact_shard, replica);
}

double clip_grad_norm(const ParamList& params, double max_norm, const ParallelLayout& layout) {
  double rep = 0, shard = 0;
  for (Param* p : params)
    if (p->trainable) (p->sharded ? shard : rep) += sum_squares(*p);
  if (layout.experts.size() > 1) shard = layout.experts.sum(shard);
  const double norm = std::sqrt(rep + shard);
  if (max_norm > 0 && norm > max_norm) {
    const float scale = float(max_norm / (norm + 1e-6));
    for (Param* p : params) {
      if (!p->trainable) continue;
      float* g = p->g.data();
      const int64_t n = p->g.numel();
#pragma omp parallel for simd schedule(static)
      for (int64_t j = 0; j < n; ++j) g[j] *= scale;
    }
  }
  return norm;
}

}  // namespace moe::dist
