#include "moe/peer_layer.h"

#include <algorithm>
#include <cmath>

namespace moe {

double PEERUsage::fraction_used() const {
  if (count.empty()) return 0.0;
  int64_t used = 0;
  for (int64_t c : count) used += c > 0;
  return double(used) / double(count.size());
}

double PEERUsage::kl_from_uniform() const {
  if (retrievals == 0) return 0.0;
  const double N = double(count.size()), R = double(retrievals);
  double kl = 0;
  for (int64_t c : count)
    if (c > 0) kl += (c / R) * std::log((c / R) * N);
  return kl;
}

double PEERUsage::head_overlap() const { return head_pairs ? double(overlapping_pairs) / head_pairs : 0.0; }
double PEERUsage::duplicate_fraction() const { return retrievals ? double(duplicate_slots) / retrievals : 0.0; }

void PEERUsage::merge(const PEERUsage& o) {
  if (count.empty()) count.assign(o.count.size(), 0);
  for (size_t i = 0; i < o.count.size() && i < count.size(); ++i) count[i] += o.count[i];
  tokens += o.tokens;
  retrievals += o.retrievals;
  duplicate_slots += o.duplicate_slots;
  head_pairs += o.head_pairs;
  overlapping_pairs += o.overlapping_pairs;
}

PEERLayer::PEERLayer(const std::string& prefix, const PEERConfig& cfg) : router(prefix, cfg), bank(prefix, cfg) {}

void PEERLayer::params(ParamList& out) {
  router.params(out);
  bank.params(out);
}

void PEERLayer::forward(float* y, const float* x, int64_t n) {
  router.forward(plan_, x, n);
  bank.forward(y, x, plan_);
  if (usage_) record_usage();
}

void PEERLayer::backward(float* dx, const float* dy) {
  dweight_.resize({plan_.n_tok, plan_.k});
  bank.backward(dx, dweight_.data(), dy);
  router.backward(dx, dweight_.data());
}

void PEERLayer::record_usage() {
  PEERUsage& u = *usage_;
  const PEERConfig& c = config();
  const int h = c.heads, k = c.top_k, S = c.slots();
  if (u.count.empty()) u.count.assign(c.n_experts, 0);
  std::vector<std::pair<int32_t, int>> ids(S);  // (expert, head) of one token
  std::vector<char> pair_hit(size_t(h) * h);
  for (int64_t t = 0; t < plan_.n_tok; ++t) {
    for (int s = 0; s < S; ++s) {
      ids[s] = {plan_.expert[t * S + s], s / k};
      ++u.count[ids[s].first];
    }
    std::sort(ids.begin(), ids.end());
    std::fill(pair_hit.begin(), pair_hit.end(), 0);
    for (int s = 1; s < S; ++s)
      if (ids[s].first == ids[s - 1].first) {
        ++u.duplicate_slots;
        // every head retrieving this expert overlaps with the previous ones that did
        for (int r = s - 1; r >= 0 && ids[r].first == ids[s].first; --r)
          pair_hit[size_t(ids[r].second) * h + ids[s].second] = 1;
      }
    for (int a = 0; a < h; ++a)
      for (int b = a + 1; b < h; ++b) u.overlapping_pairs += pair_hit[size_t(a) * h + b] | pair_hit[size_t(b) * h + a];
    u.head_pairs += int64_t(h) * (h - 1) / 2;
    u.tokens += 1;
    u.retrievals += S;
  }
}

}  // namespace moe
