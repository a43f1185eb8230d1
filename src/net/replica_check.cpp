#include "net/replica_check.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <memory>

namespace moe::net {
namespace {

// The answers of one wave of calls; callbacks only store into it (it may outlive the wave).
struct Wave {
  std::mutex mu;
  std::condition_variable cv;
  size_t pending = 0;
  std::vector<CallResult> results;
};

// Calls (question i, server) for every pair, in parallel; waits for all (each has the deadline).
std::vector<CallResult> ask(ExpertClient& client, const std::vector<ReplicaQuestion>& qs,
                            const std::vector<std::pair<size_t, std::string>>& calls, double timeout_s) {
  auto wave = std::make_shared<Wave>();
  wave->results.resize(calls.size());
  wave->pending = calls.size();
  std::vector<std::shared_ptr<PendingCall>> handles;  // dropped here, never on a gRPC thread
  for (size_t j = 0; j < calls.size(); ++j) {
    const ReplicaQuestion& q = qs[calls[j].first];
    handles.push_back(client.forward(calls[j].second, q.uid, q.x, q.m, q.d, timeout_s, [wave, j](CallResult&& r) {
      std::lock_guard<std::mutex> g(wave->mu);
      wave->results[j] = std::move(r);
      --wave->pending;
      wave->cv.notify_all();
    }));
  }
  std::unique_lock<std::mutex> lk(wave->mu);
  wave->cv.wait(lk, [&] { return wave->pending == 0; });
  return std::move(wave->results);
}

}  // namespace

double relative_distance(const float* a, const float* b, size_t n) {
  double diff = 0, ref = 0;
  for (size_t i = 0; i < n; ++i) {
    const double t = double(a[i]) - double(b[i]);
    diff += t * t;
    ref += double(a[i]) * double(a[i]);
  }
  return ref > 0 ? std::sqrt(diff / ref) : std::sqrt(diff / double(n ? n : 1));
}

std::vector<ReplicaVerdict> check_replicas(ExpertClient& client, const std::vector<ReplicaQuestion>& qs,
                                           const ReplicaCheckConfig& cfg) {
  std::vector<ReplicaVerdict> out(qs.size());
  // Wave 1: a second replica for every question.
  std::vector<std::pair<size_t, std::string>> calls;
  for (size_t i = 0; i < qs.size(); ++i) {
    out[i].servers = {qs[i].by};
    out[i].distance = {0.0};
    if (!qs[i].others.empty()) calls.push_back({i, qs[i].others[0]});
  }
  std::vector<CallResult> second = ask(client, qs, calls, cfg.timeout_s);
  std::vector<std::vector<float>> second_out(qs.size());
  std::vector<std::pair<size_t, std::string>> tiebreaks;
  for (size_t j = 0; j < calls.size(); ++j) {
    const size_t i = calls[j].first;
    const ReplicaQuestion& q = qs[i];
    ReplicaVerdict& v = out[i];
    if (!second[j].ok) continue;  // no evidence either way
    const size_t n = size_t(q.m) * size_t(q.d);
    const double dist = relative_distance(q.answer->data(), second[j].out.data(), n);
    v.servers.push_back(calls[j].second);
    v.distance.push_back(dist);
    if (dist <= cfg.tolerance) {
      v.kind = ReplicaVerdict::Agree;
      continue;
    }
    v.kind = ReplicaVerdict::Undecided;
    second_out[i] = std::move(second[j].out);
    if (q.others.size() >= 2) tiebreaks.push_back({i, q.others[1]});
  }
  // Wave 2: a third replica where two disagree; the answer two servers share wins.
  std::vector<CallResult> third = ask(client, qs, tiebreaks, cfg.timeout_s);
  for (size_t j = 0; j < tiebreaks.size(); ++j) {
    const size_t i = tiebreaks[j].first;
    const ReplicaQuestion& q = qs[i];
    ReplicaVerdict& v = out[i];
    if (!third[j].ok) continue;
    const size_t n = size_t(q.m) * size_t(q.d);
    const double d_first = relative_distance(q.answer->data(), third[j].out.data(), n);
    const double d_second = relative_distance(second_out[i].data(), third[j].out.data(), n);
    v.servers.push_back(tiebreaks[j].second);
    v.distance.push_back(d_first);
    if (d_first <= cfg.tolerance) {  // the second replica lied
      v.kind = ReplicaVerdict::Lie;
      v.liars = {v.servers[1]};
    } else if (d_second <= cfg.tolerance) {  // the first answer was the lie
      v.kind = ReplicaVerdict::Lie;
      v.liars = {v.servers[0]};
      v.truth = std::move(second_out[i]);
      v.truth_by = v.servers[1];
    }  // three different answers: undecided
  }
  return out;
}

void EvidenceLog::add(ReplicaEvidence e) {
  std::lock_guard<std::mutex> lk(mu_);
  if (items_.size() < 10000) items_.push_back(std::move(e));  // bounded if nobody drains it
}

std::vector<ReplicaEvidence> EvidenceLog::take() {
  std::lock_guard<std::mutex> lk(mu_);
  std::vector<ReplicaEvidence> r;
  r.swap(items_);
  return r;
}

}  // namespace moe::net
