#pragma once
// Client-side view of the experts announced in the DHT: a cache over a DhtNode (entries live until
// a record in them expires or cache_s passes), and the beam search of hivemind's
// RemoteMixtureOfExperts for experts on a grid ("PREFIX.i.j"), which finds the best live experts
// by asking for the live children of a few prefixes per grid dimension instead of every uid.
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "net/dht_node.h"

namespace moe::net {

struct ExpertDirectoryConfig {
  double cache_s = 10;    // an entry is fetched again after this long (sooner if a record in it expires)
  double timeout_s = 5;   // bound on each DHT lookup
  double negative_cache_s = 2;  // "no live record" is asked again this soon: a (re)started server's
                                // first announcement is seen within it
  double warmup_s = 10;  // refresh_children works this long after the directory starts
};

class ExpertDirectory {
 public:
  // The node must outlive the directory. Thread-safe: the remote expert bank calls it from
  // several threads (DHT lookups run outside the lock).
  explicit ExpertDirectory(DhtNode& node, const ExpertDirectoryConfig& cfg = {});

  // The live records of a uid (lowest load first; empty: none live). Not-found is cached too.
  std::vector<ExpertRecord> lookup(const std::string& uid);
  // The same for several uids, the missing ones fetched in one concurrent DHT round.
  std::vector<std::vector<ExpertRecord>> lookup(const std::vector<std::string>& uids);

  // Live children of a prefix, as DhtNode::children (coordinate -> the expert's records, empty
  // for a child that is itself a prefix).
  std::map<int, std::vector<ExpertRecord>> children(const std::string& prefix);

  // Drops the cached records of uid and the cached children of its parent prefix (e.g. after a
  // failed call), so that the next lookup or beam search asks the DHT again.
  void forget(const std::string& uid);

  // Drops the cached children of prefix so that the next children() asks the DHT again, for a
  // caller that found experts missing from them: a fresh node's first lookups can return part of
  // the records while its routing table fills. Only in the first warmup_s and at most once per
  // negative_cache_s per prefix: later, missing experts are gone servers, whose lookups can wait
  // for dead DHT nodes (the churn run in docs/decentralized.md), and their records are asked
  // again on the normal schedule. True when the entry was dropped.
  bool refresh_children(const std::string& prefix);

  // The top-k live experts "prefix.i0.i1...": dim_scores[d][i] ([D][grid size of d]) is the gate's
  // score of coordinate i in grid dimension d, an expert's score is the sum over its coordinates.
  // Keeps the best beam_size live prefixes per dimension; returns up to k experts, best first,
  // one record each (the least loaded server). Exact when beam_size covers every live prefix, or
  // when beam_size >= k and the grid has no dead experts. moe::Error on bad arguments.
  std::vector<ExpertRecord> beam_search(const std::string& prefix, const std::vector<std::vector<float>>& dim_scores,
                                        int k, int beam_size);

 private:
  template <class V>
  struct Entry {
    V value;
    int64_t valid_until_ms;  // unix ms
  };
  DhtNode& node_;
  ExpertDirectoryConfig cfg_;
  std::mutex mu_;
  std::map<std::string, Entry<std::vector<ExpertRecord>>> records_;
  std::map<std::string, Entry<std::map<int, std::vector<ExpertRecord>>>> children_;
  int64_t started_ms_;
  std::map<std::string, int64_t> refreshed_ms_;  // prefix -> last refresh_children that dropped it
};

}  // namespace moe::net
