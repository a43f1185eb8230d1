#pragma once
// Replica comparison, for evaluation and serving, where experts do not change: some answered
// forward calls are sent again to another replica of the same expert (the same weights, started
// from one checkpoint) and the two answers compared. Honest replicas agree to rounding; a
// disagreement is settled by a third replica when there is one (the answer two of them share is
// the truth, the odd one is a lie), else it stays undecided. This catches what output-size checks
// and canary rows cannot: a server that answers consistently but wrongly (sign flips, another
// model's weights, noise seeded by the input).
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "net/expert_client.h"

namespace moe::net {

// One answered call to check: expert uid on rows x [m, d], answered by `by` with `answer` [m, d];
// `others`: its other unbanned replicas, best first.
struct ReplicaQuestion {
  std::string uid;
  const float* x = nullptr;
  int64_t m = 0;
  int d = 0;
  std::string by;
  const std::vector<float>* answer = nullptr;
  std::vector<std::string> others;
};

// What was found, with the evidence: every server asked and how far its answer was from the
// first answer (RMS of the difference over RMS of the first answer).
struct ReplicaVerdict {
  enum Kind { Agree, Unchecked, Lie, Undecided } kind = Unchecked;  // Unchecked: no replica answered
  std::vector<std::string> servers;  // servers[0] == by
  std::vector<double> distance;      // [servers]: to servers[0]'s answer
  std::vector<std::string> liars;    // Lie: the servers outvoted
  // Lie by `by`: the majority's answer and one server that gave it (the caller uses it instead).
  std::vector<float> truth;
  std::string truth_by;
};

struct ReplicaCheckConfig {
  double timeout_s = 5;
  // Honest replicas differ by float rounding only (batching changes the GEMM's row count): a
  // relative RMS distance above this is a disagreement.
  double tolerance = 1e-3;
};

// Asks the replicas, in parallel (a second replica each, then a third where two disagree); one
// verdict per question. Never throws for a failed call: a replica that does not answer is not asked
// again and gives no evidence.
std::vector<ReplicaVerdict> check_replicas(ExpertClient& client, const std::vector<ReplicaQuestion>& qs,
                                           const ReplicaCheckConfig& cfg);

// Relative RMS distance of b from a: RMS(a - b) / RMS(a) (RMS(a - b) when a is all zeros).
double relative_distance(const float* a, const float* b, size_t n);

// The evidence of lies and undecided disagreements, kept for the caller to log (the library
// never prints).
struct ReplicaEvidence {
  std::string uid;
  int64_t rows = 0;
  ReplicaVerdict verdict;
};

class EvidenceLog {
 public:
  void add(ReplicaEvidence e);
  std::vector<ReplicaEvidence> take();  // and clear

 private:
  std::mutex mu_;
  std::vector<ReplicaEvidence> items_;
};

}  // namespace moe::net
