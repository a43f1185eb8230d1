#include "net/expert_directory.h"

#include <algorithm>
#include <future>
#include <utility>

#include "core/error.h"

namespace moe::net {
namespace {

// Records still live at now_ms.
std::vector<ExpertRecord> live(const std::vector<ExpertRecord>& recs, int64_t now_ms) {
  std::vector<ExpertRecord> out;
  for (const auto& r : recs)
    if (r.expires_ms > now_ms) out.push_back(r);
  return out;
}

int64_t earliest_expiry(const std::vector<ExpertRecord>& recs, int64_t bound) {
  for (const auto& r : recs) bound = std::min(bound, r.expires_ms);
  return bound;
}

}  // namespace

ExpertDirectory::ExpertDirectory(DhtNode& node, const ExpertDirectoryConfig& cfg) : node_(node), cfg_(cfg), started_ms_(now_unix_ms()) {
  if (!(cfg.cache_s >= 0)) throw Error("[net] expert directory: cache_s must be >= 0");
  if (!(cfg.timeout_s > 0)) throw Error("[net] expert directory: timeout_s must be > 0");
}

std::vector<ExpertRecord> ExpertDirectory::lookup(const std::string& uid) { return lookup(std::vector{uid})[0]; }

std::vector<std::vector<ExpertRecord>> ExpertDirectory::lookup(const std::vector<std::string>& uids) {
  std::vector<std::vector<ExpertRecord>> out(uids.size());
  std::vector<std::string> missing;
  std::vector<size_t> where;
  {
    std::lock_guard<std::mutex> lk(mu_);
    const int64_t now = now_unix_ms();
    for (size_t i = 0; i < uids.size(); ++i) {
      auto it = records_.find(uids[i]);
      if (it != records_.end() && it->second.valid_until_ms > now) {
        out[i] = live(it->second.value, now);
      } else {
        missing.push_back(uids[i]);
        where.push_back(i);
      }
    }
  }
  if (missing.empty()) return out;
  auto got = node_.get(missing, cfg_.timeout_s);
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = now_unix_ms();
  const int64_t until = now + static_cast<int64_t>(cfg_.cache_s * 1000);
  const int64_t until_missing = now + static_cast<int64_t>(cfg_.negative_cache_s * 1000);
  for (size_t m = 0; m < missing.size(); ++m) {
    records_[missing[m]] = {got[m], got[m].empty() ? until_missing : earliest_expiry(got[m], until)};
    out[where[m]] = live(got[m], now);
  }
  return out;
}

std::map<int, std::vector<ExpertRecord>> ExpertDirectory::children(const std::string& prefix) {
  auto live_children = [](const std::map<int, std::vector<ExpertRecord>>& kids, int64_t now) {
    std::map<int, std::vector<ExpertRecord>> out;
    for (const auto& [c, recs] : kids) {
      auto l = live(recs, now);
      if (recs.empty() || !l.empty()) out[c] = std::move(l);  // prefix children carry no records
    }
    return out;
  };
  {
    std::lock_guard<std::mutex> lk(mu_);
    auto it = children_.find(prefix);
    const int64_t now = now_unix_ms();
    if (it != children_.end() && it->second.valid_until_ms > now) return live_children(it->second.value, now);
  }
  auto kids = node_.children(prefix, cfg_.timeout_s);
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = now_unix_ms();
  // Children that are experts are kept until their first record expires. Children that are
  // prefixes carry no expiry, and a lookup that timed out may have seen only some of them (a fresh
  // client's first lookups do): those are asked again as soon as "not found" is. Cached for
  // cache_s, a partial first answer hid a live grid row from a whole evaluation.
  bool any_expert = false;
  for (const auto& [c, recs] : kids) any_expert = any_expert || !recs.empty();
  int64_t until = now + static_cast<int64_t>((any_expert ? cfg_.cache_s : cfg_.negative_cache_s) * 1000);
  for (const auto& [c, recs] : kids) until = earliest_expiry(recs, until);
  children_[prefix] = {kids, until};
  return live_children(kids, now);
}

void ExpertDirectory::forget(const std::string& uid) {
  std::lock_guard<std::mutex> lk(mu_);
  records_.erase(uid);
  const auto dot = uid.rfind('.');
  if (dot != std::string::npos) children_.erase(uid.substr(0, dot));
}

bool ExpertDirectory::refresh_children(const std::string& prefix) {
  std::lock_guard<std::mutex> lk(mu_);
  const int64_t now = now_unix_ms();
  if (now - started_ms_ > static_cast<int64_t>(cfg_.warmup_s * 1000)) return false;
  auto [last, first] = refreshed_ms_.try_emplace(prefix, now);
  if (!first && now - last->second < static_cast<int64_t>(cfg_.negative_cache_s * 1000)) return false;
  last->second = now;
  return children_.erase(prefix) > 0;
}

std::vector<ExpertRecord> ExpertDirectory::beam_search(const std::string& prefix,
                                                       const std::vector<std::vector<float>>& dim_scores, int k,
                                                       int beam_size) {
  if (prefix.empty()) throw Error("[net] beam search: empty prefix");
  if (dim_scores.empty()) throw Error("[net] beam search: no grid dimensions (dim_scores is empty)");
  for (size_t d = 0; d < dim_scores.size(); ++d)
    if (dim_scores[d].empty()) throw Error("[net] beam search: grid dimension " + std::to_string(d) + " has no scores");
  if (k < 1 || beam_size < 1)
    throw Error("[net] beam search: k and beam_size must be >= 1 (got " + std::to_string(k) + ", " +
                std::to_string(beam_size) + ")");

  struct Candidate {
    std::string uid;
    double score;
    std::vector<ExpertRecord> records;  // at the last dimension: the expert's live records
  };
  auto better = [](const Candidate& a, const Candidate& b) {
    return a.score != b.score ? a.score > b.score : a.uid < b.uid;  // ties: deterministic order
  };
  std::vector<Candidate> beam{{prefix, 0.0, {}}};
  for (size_t d = 0; d < dim_scores.size() && !beam.empty(); ++d) {
    const bool last = d + 1 == dim_scores.size();
    // The beam's children, fetched concurrently (each is a DHT round trip unless cached).
    std::vector<std::future<std::map<int, std::vector<ExpertRecord>>>> pending;
    for (size_t b = 1; b < beam.size(); ++b)
      pending.push_back(std::async(std::launch::async, [this, &beam, b] { return children(beam[b].uid); }));
    std::vector<std::map<int, std::vector<ExpertRecord>>> kids;
    kids.push_back(children(beam[0].uid));
    for (auto& f : pending) kids.push_back(f.get());

    std::vector<Candidate> next;
    const auto& scores = dim_scores[d];
    for (size_t b = 0; b < beam.size(); ++b) {
      for (auto& [c, recs] : kids[b]) {
        if (c < 0 || static_cast<size_t>(c) >= scores.size()) continue;  // outside the gate's grid
        if (last && recs.empty()) continue;                               // a prefix, not an expert
        next.push_back({beam[b].uid + "." + std::to_string(c), beam[b].score + scores[c],
                        last ? std::move(recs) : std::vector<ExpertRecord>{}});
      }
    }
    const size_t keep = std::min(next.size(), static_cast<size_t>(last ? k : beam_size));
    std::partial_sort(next.begin(), next.begin() + static_cast<std::ptrdiff_t>(keep), next.end(), better);
    next.resize(keep);
    beam = std::move(next);
  }
  std::vector<ExpertRecord> out;
  for (auto& c : beam) out.push_back(std::move(c.records.front()));  // lowest load first
  return out;
}

}  // namespace moe::net
