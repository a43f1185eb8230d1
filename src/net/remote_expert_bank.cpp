#include "net/remote_expert_bank.h"

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <random>

namespace moe::net {
namespace {

using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

enum class Status { Pending, Ok, Failed };

// One layer's calls of one forward or backward. gRPC callbacks only append their result here (they
// may come after the round closed, and may hold its last reference: it owns no gRPC objects);
// the waiting thread applies them, keeps the statistics and the ban list, and launches retries.
struct Round {
  struct Expert {
    int e = 0;
    int64_t r0 = 0, m = 0;
    std::vector<std::string> addrs;  // replicas, best first
    size_t next = 0;                 // next replica to try
    int in_flight = 0;
    int retries = 0;                 // same-server retries after a transient failure
    std::string retry_addr;          // a server whose last answer was a transient failure
    Status status = Status::Pending;
    std::vector<float> out;
    std::string by;                  // the replica that answered
    Clock::time_point last_launch{};
  };
  struct Result {
    size_t i;
    std::string addr;
    CallResult r;
  };
  std::mutex mu;
  std::condition_variable cv;
  std::vector<Expert> ex;
  std::vector<Result> results;  // arrived, not yet applied
};

}  // namespace

std::chrono::steady_clock::duration BanList::ban_length(int n) const {
  return seconds(std::min(c_.ban_max_s, c_.ban_base_s * double(int64_t{1} << (n - 1))));
}

bool BanList::banned(const std::string& address) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(address);
  return it != entries_.end() && Clock::now() < it->second.until;
}

void BanList::failure(const std::string& address) {
  std::lock_guard<std::mutex> lk(mu_);
  Entry& e = entries_[address];
  if (++e.in_a_row < c_.ban_after) return;
  e.in_a_row = 0;  // judged afresh after the ban
  e.bans = std::min(e.bans + 1, 30);
  e.until = Clock::now() + ban_length(e.bans);
}

int BanList::banned_now() {
  std::lock_guard<std::mutex> lk(mu_);
  const auto now = Clock::now();
  int n = 0;
  for (const auto& [a, e] : entries_) n += now < e.until;
  return n;
}

void BanList::lie(const std::string& address) {
  std::lock_guard<std::mutex> lk(mu_);
  Entry& e = entries_[address];
  e.lies = std::min(e.lies + 1, 30);
  e.until = std::max(e.until, Clock::now() + ban_length(e.lies));
}

void BanList::success(const std::string& address) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(address);
  if (it == entries_.end()) return;
  if (it->second.lies == 0) entries_.erase(it);
  else it->second.in_a_row = 0;
}

RemoteExpertBank::RemoteExpertBank(std::shared_ptr<RemoteContext> ctx, std::string prefix, int n_experts, int d_model,
                                   std::vector<int> grid)
    : ctx_(std::move(ctx)), prefix_(std::move(prefix)), E_(n_experts), d_(d_model),
      failed_(n_experts, 0), answered_by_(n_experts), output_rms_(n_experts, ScaleWindow(16)) {
  grid_.dims = std::move(grid);
  if (!grid_.dims.empty()) grid_.check(n_experts, "[remote] layer " + prefix_);
}

std::string RemoteExpertBank::uid(int e) const {
  if (grid_.dims.empty()) return prefix_ + "." + std::to_string(e);
  std::string u = prefix_;
  for (int c : grid_.coords(e)) u.append(".").append(std::to_string(c));
  return u;
}

std::vector<int> RemoteExpertBank::live_children(const std::vector<int>& prefix) {
  const size_t d = prefix.size();
  const int G = grid_.dims.at(d);
  std::string p = prefix_;
  for (int c : prefix) p.append(".").append(std::to_string(c));
  std::vector<int> out;
  auto kids = ctx_->locator->live_children(p);
  if (!kids) {  // the locator cannot tell: every child, each looked up by the forward
    for (int c = 0; c < G; ++c) out.push_back(c);
    return out;
  }
  const bool leaf = d + 1 == grid_.dims.size();
  std::vector<int> cell = prefix;
  cell.push_back(0);
  for (auto& [c, addrs] : *kids) {
    if (c < 0 || c >= G) continue;
    if (leaf) {
      cell.back() = c;
      const int64_t e = grid_.index(cell);
      if (std::none_of(addrs.begin(), addrs.end(), [&](const std::string& a) { return !ctx_->bans.banned(a); })) continue;
      servers_[e] = std::move(addrs);
      seen_[e] = 1;
    }
    out.push_back(c);
  }
  return out;
}

const std::vector<uint8_t>* RemoteExpertBank::available_experts() {
  if (!grid_.dims.empty()) {
    // A grid is searched prefix by prefix (live_children) while the router routes.
    servers_.assign(E_, {});
    seen_.assign(E_, 0);
    have_servers_ = true;
    return nullptr;
  }
  // The layer's live experts and their servers from its prefix records (one cached DHT lookup;
  // the forward then calls those servers), or per uid from a locator without prefix records.
  auto find = [&] {
    available_.assign(E_, 0);
    servers_.assign(E_, {});
    if (auto kids = ctx_->locator->live_children(prefix_)) {
      for (auto& [e, addrs] : *kids)
        if (e >= 0 && e < E_) servers_[e] = std::move(addrs);
    } else {
      std::vector<std::string> uids;
      for (int e = 0; e < E_; ++e) uids.push_back(uid(e));
      servers_ = ctx_->locator->addresses(uids);
    }
    bool all = true;
    for (int e = 0; e < E_; ++e) {
      for (const std::string& a : servers_[e])
        if (!ctx_->bans.banned(a)) available_[e] = 1;
      all = all && available_[e];
    }
    return all;
  };
  have_servers_ = true;
  // An expert with no usable server may be one a partial lookup missed (a fresh client's first
  // answers can be) or whose only known server was just banned: ask once more before routing
  // around it (the locator rate-limits this for experts that are really gone).
  bool all = find();
  if (!all && ctx_->locator->refresh(prefix_)) all = find();
  if (!all) ctx_->stats.unavailable(std::count(available_.begin(), available_.end(), uint8_t{0}));
  return all ? nullptr : &available_;
}

void RemoteExpertBank::forward(float* ys, const float* xs, const std::vector<int64_t>& offsets) {
  const RemoteCallConfig& c = ctx_->cfg;
  const int64_t M = offsets.back(), d = d_;
  xs_ = xs;
  offsets_ = offsets;
  std::fill(failed_.begin(), failed_.end(), 0);
  std::fill(answered_by_.begin(), answered_by_.end(), std::string());
  std::memset(ys, 0, sizeof(float) * size_t(M * d));

  auto round = std::make_shared<Round>();
  std::vector<int> slot_of(E_, -1);  // expert -> index in round->ex
  // The servers found when the gate asked which experts are live, else a lookup now.
  // On a grid, only the experts the beam search saw are known; the others are looked up.
  std::vector<std::vector<std::string>> where;
  std::vector<std::string> uids;
  std::vector<size_t> looked_up;  // their places in where
  for (int e = 0; e < E_; ++e) {
    if (offsets[e + 1] == offsets[e]) continue;
    if (have_servers_ && (grid_.dims.empty() || seen_[e])) {
      where.push_back(servers_[e]);
    } else {
      looked_up.push_back(where.size());
      where.emplace_back();
      uids.push_back(uid(e));
    }
  }
  if (!uids.empty()) {
    std::vector<std::vector<std::string>> found = ctx_->locator->addresses(uids);
    for (size_t i = 0; i < looked_up.size(); ++i) where[looked_up[i]] = std::move(found.at(i));
  }
  have_servers_ = false;
  size_t next_uid = 0;
  for (int e = 0; e < E_; ++e) {
    const int64_t m = offsets[e + 1] - offsets[e];
    if (m == 0) continue;
    Round::Expert x;
    x.e = e;
    x.r0 = offsets[e];
    x.m = m;
    for (const std::string& a : where.at(next_uid++))
      if (!ctx_->bans.banned(a)) x.addrs.push_back(a);
    if (x.addrs.empty()) {  // no live, unbanned server: a failed call that costs nothing
      x.status = Status::Failed;
      ctx_->stats.call(false, false, 0);
    }
    slot_of[e] = int(round->ex.size());
    round->ex.push_back(std::move(x));
  }

  // Output validation (RemoteCallConfig): once at least 3 experts of the layer have output_warmup
  // accepted answers, each answer is judged as it arrives against the layer's typical expert (the
  // median of those experts' own medians); before that, with all of the round's answers at its
  // end. Not against the expert's own history: a liar whose first lies slipped through would then
  // be judged by its lies (the x100 attack run of docs/security.md lost 3.5% that way). Only too
  // large is a lie worth catching: a far smaller answer weighs like an expert that says little,
  // and honest experts of a layer differ by 30x (the tiny model of tests/cli/decentralized.sh;
  // its largest is 5x the median).
  double typical = 0;
  if (c.validate_outputs) {
    ScaleWindow medians(E_);
    for (int e = 0; e < E_; ++e)
      if (int(output_rms_[e].size()) >= c.output_warmup) medians.add(output_rms_[e].median());
    if (medians.size() >= 3) typical = medians.median();
  }
  // typical == 0: not enough history, answers are judged at the round's end
  auto plausible = [&](double r, double ref) { return r <= c.output_factor * ref; };
  const Clock::time_point start = Clock::now(), deadline = start + seconds(c.forward_timeout_s);
  std::vector<std::shared_ptr<PendingCall>> handles;  // dropped on this thread, never on gRPC's
  std::unique_lock<std::mutex> lk(round->mu);
  // Sends expert i's rows to its next replica (the lock is released meanwhile: an immediate
  // callback must be able to take it).
  auto send = [&](size_t i, std::string addr) {
    Round::Expert& x = round->ex[i];
    ++x.in_flight;
    x.last_launch = Clock::now();
    const int e = x.e;
    const int64_t r0 = x.r0, m = x.m;
    lk.unlock();
    const double left = std::max(0.001, std::chrono::duration<double>(deadline - Clock::now()).count());
    handles.push_back(ctx_->client.forward(addr, uid(e), xs + r0 * d, m, d_, left, [round, i, addr](CallResult&& r) {
      std::lock_guard<std::mutex> g(round->mu);
      round->results.push_back({i, addr, std::move(r)});
      round->cv.notify_all();
    }));
    lk.lock();
  };
  // Applies the answers that came in.
  auto apply = [&] {
    std::vector<Round::Result> res;
    res.swap(round->results);
    for (Round::Result& a : res) {
      Round::Expert& x = round->ex[a.i];
      --x.in_flight;
      if (a.r.ok && c.validate_outputs && x.m >= c.output_min_rows && typical > 0 &&
          !plausible(rms(a.r.out.data(), a.r.out.size()), typical)) {
        // A lie is not retried on the same server; a replica may still answer.
        ctx_->stats.call(false, false, a.r.latency_ms);
        ctx_->stats.invalid();
        ctx_->bans.lie(a.addr);
        continue;
      }
      ctx_->stats.call(a.r.ok, a.r.timeout, a.r.latency_ms);
      if (a.r.ok) {
        // An answer judged at the round's end clears its server's record only if it passes.
        if (!c.validate_outputs || typical > 0) ctx_->bans.success(a.addr);
      } else if (a.r.lie) {
        ctx_->stats.invalid();
        ctx_->bans.lie(a.addr);  // no retry on a server that contradicts itself
      } else {
        ctx_->bans.failure(a.addr);
        if (!a.r.timeout && x.retries < c.retries) x.retry_addr = a.addr;  // an error, not silence
      }
      if (x.status != Status::Pending) continue;
      if (a.r.ok) {
        x.status = Status::Ok;
        x.out = std::move(a.r.out);
        x.by = a.addr;
      }
    }
  };
  for (size_t i = 0; i < round->ex.size(); ++i)
    if (round->ex[i].status == Status::Pending) send(i, round->ex[i].addrs[round->ex[i].next++]);

  const RoutingPlan* plan = plan_;
  const int k = plan ? plan->k : 0;
  const int64_t n_tok = plan ? plan->n_tok : 0;
  // Whether every token has its k_min answers, or can get no more.
  auto settled = [&]() {
    for (int64_t t = 0; t < n_tok; ++t) {
      int answered = 0, pending = 0, valid = 0;
      for (int j = 0; j < k; ++j) {
        const int e = plan->expert[t * k + j];
        if (e < 0) continue;
        ++valid;
        const Status s = round->ex[slot_of[e]].status;
        answered += s == Status::Ok;
        pending += s == Status::Pending;
      }
      if (answered < std::min(c.k_min, valid) && pending > 0) return false;
    }
    return true;
  };
  Clock::time_point grace_end = Clock::time_point::max();
  for (;;) {
    apply();
    bool any_pending = false, sent = false;
    for (size_t i = 0; i < round->ex.size(); ++i) {
      Round::Expert& x = round->ex[i];
      if (x.status != Status::Pending) continue;
      // Retry a transient failure on the same server, then the next replica; hedge a slow call.
      const bool again = x.in_flight == 0 && !x.retry_addr.empty() && !ctx_->bans.banned(x.retry_addr) &&
                         Clock::now() < deadline;
      const bool retry = x.in_flight == 0 && x.next < x.addrs.size();
      const bool hedge = x.in_flight > 0 && x.next < x.addrs.size() && Clock::now() - x.last_launch >= seconds(c.hedge_after_s);
      if (again) {
        ++x.retries;
        std::string a = std::move(x.retry_addr);
        x.retry_addr.clear();
        send(i, std::move(a));  // unlocks: answers may have come meanwhile, so look again before waiting
        sent = true;
      } else if (retry || hedge) {
        x.retry_addr.clear();
        send(i, x.addrs[x.next++]);
        sent = true;
      } else if (x.in_flight == 0) {
        x.status = Status::Failed;  // nothing left to try: no reason to wait for the deadline
        continue;
      }
      any_pending = true;
    }
    if (!any_pending) break;
    if (sent) continue;
    const Clock::time_point now = Clock::now();
    if (now >= deadline || now >= grace_end) break;
    if (grace_end == Clock::time_point::max() && plan && settled()) grace_end = now + seconds(c.grace_s);
    Clock::time_point wake = std::min(deadline, grace_end);
    for (const Round::Expert& x : round->ex)
      if (x.status == Status::Pending && x.next < x.addrs.size()) wake = std::min(wake, x.last_launch + seconds(c.hedge_after_s));
    if (round->results.empty()) round->cv.wait_until(lk, wake);
  }
  if (c.validate_outputs) {
    std::vector<double> r(round->ex.size(), 0.0);
    ScaleWindow round_rms(round->ex.size());
    for (size_t i = 0; i < round->ex.size(); ++i)
      if (round->ex[i].status == Status::Ok && round->ex[i].m >= c.output_min_rows) {
        r[i] = rms(round->ex[i].out.data(), round->ex[i].out.size());
        round_rms.add(r[i]);
      }
    // Answers not judged on arrival, by the round's median (robust while fewer than half lie).
    const double ref = round_rms.median();
    for (size_t i = 0; i < round->ex.size(); ++i) {
      Round::Expert& x = round->ex[i];
      if (x.status != Status::Ok) continue;
      if (x.m < c.output_min_rows) {  // too few rows to judge their size (the canary still did)
        if (typical == 0) ctx_->bans.success(x.by);
        continue;
      }
      if (typical == 0) {
        if (round_rms.size() >= 3 && !plausible(r[i], ref)) {
          x.status = Status::Failed;
          ctx_->stats.invalid(/*was_counted_ok=*/true);
          ctx_->bans.lie(x.by);
          continue;
        }
        ctx_->bans.success(x.by);
      }
      output_rms_[x.e].add(r[i]);
    }
  }
  // Experts still pending ran out of time: one timeout each, charged to the servers still owing.
  for (Round::Expert& x : round->ex) {
    if (x.status == Status::Ok) {
      std::memcpy(ys + x.r0 * d, x.out.data(), sizeof(float) * size_t(x.m * d));
      answered_by_[x.e] = x.by;
      continue;
    }
    failed_[x.e] = 1;
    if (x.status == Status::Pending) {
      ctx_->stats.call(false, true, 0);
      if (x.in_flight > 0) ctx_->bans.failure(x.addrs[x.next - 1]);
    }
  }
  lk.unlock();
  for (auto& h : handles) h->cancel();  // late answers only land in the closed round
  if (c.compare_fraction > 0) compare_replicas(round->ex, ys);

  // Tokens short of k_min answers, and tokens with no answer at all (they keep only the residual),
  // whether their experts failed or the gate found too few live ones (a grid with dead rows).
  int64_t below = 0, none = 0;
  for (int64_t t = 0; t < n_tok; ++t) {
    int answered = 0;
    for (int j = 0; j < k; ++j) {
      const int e = plan->expert[t * k + j];
      answered += e >= 0 && !failed_[e];
    }
    below += answered < std::min(c.k_min, k);
    none += answered == 0;
  }
  ctx_->stats.tokens(below, none);
}

// Sends a sample of this forward's answers to a second replica (replica_check.h) and acts on the
// verdicts: a liar is banned for good measure, and an answer it gave is replaced by the majority's.
template <class Experts>
void RemoteExpertBank::compare_replicas(Experts& ex, float* ys) {
  const RemoteCallConfig& c = ctx_->cfg;
  thread_local std::mt19937_64 coin{std::random_device{}()};
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<ReplicaQuestion> qs;
  std::vector<size_t> which;
  for (size_t i = 0; i < ex.size(); ++i) {
    auto& x = ex[i];
    if (x.status != Status::Ok || u(coin) >= c.compare_fraction) continue;
    ReplicaQuestion q{.uid = uid(x.e), .x = xs_ + x.r0 * d_, .m = x.m, .d = d_, .by = x.by, .answer = &x.out, .others = {}};
    for (const std::string& a : x.addrs)
      if (a != x.by && !ctx_->bans.banned(a)) q.others.push_back(a);
    if (q.others.empty()) continue;
    std::shuffle(q.others.begin(), q.others.end(), coin);  // every replica gets checked, not just the second best
    qs.push_back(std::move(q));
    which.push_back(i);
  }
  if (qs.empty()) return;
  const std::vector<ReplicaVerdict> vs =
      check_replicas(ctx_->client, qs, ReplicaCheckConfig{.timeout_s = c.forward_timeout_s, .tolerance = c.compare_tolerance});
  int64_t checks = 0, lies = 0, undecided = 0;
  for (size_t j = 0; j < vs.size(); ++j) {
    const ReplicaVerdict& v = vs[j];
    auto& x = ex[which[j]];
    checks += v.kind != ReplicaVerdict::Unchecked;
    if (v.kind == ReplicaVerdict::Agree || v.kind == ReplicaVerdict::Unchecked) continue;
    if (v.kind == ReplicaVerdict::Undecided) ++undecided;
    for (const std::string& a : v.liars) {
      ++lies;
      ctx_->stats.invalid();
      ctx_->bans.lie(a);
    }
    if (!v.truth_by.empty()) {  // the answer used was the lie
      std::memcpy(ys + x.r0 * d_, v.truth.data(), sizeof(float) * size_t(x.m * d_));
      answered_by_[x.e] = v.truth_by;
    }
    ctx_->evidence.add(ReplicaEvidence{.uid = qs[j].uid, .rows = x.m, .verdict = v});
  }
  ctx_->stats.replicas(checks, lies, undecided);
}

void RemoteExpertBank::backward(float* dxs, const float* dys) {
  const RemoteCallConfig& c = ctx_->cfg;
  const int64_t d = d_;
  thread_local std::mt19937_64 ids{std::random_device{}()};
  auto round = std::make_shared<Round>();
  std::vector<uint64_t> request_id;
  for (int e = 0; e < E_; ++e) {
    const int64_t m = offsets_[e + 1] - offsets_[e];
    if (m == 0 || failed_[e]) continue;
    Round::Expert x;
    x.e = e;
    x.r0 = offsets_[e];
    x.m = m;
    x.addrs = {answered_by_[e]};  // the weights that made the forward
    round->ex.push_back(std::move(x));
    request_id.push_back(ids() | 1);
  }
  if (!c.poison_gradients.empty()) {  // an attacker's gradients (experiments only)
    poisoned_.assign(dys, dys + offsets_.back() * d);
    for (float& v : poisoned_) v = c.poison_gradients == "nan" ? std::nanf("") : v * 1e6f;
    dys = poisoned_.data();
  }
  const Clock::time_point deadline = Clock::now() + seconds(c.backward_timeout_s);
  std::vector<std::shared_ptr<PendingCall>> handles;
  std::unique_lock<std::mutex> lk(round->mu);
  // Reads expert i's rows of xs and dys: those rows of dxs (which may alias xs) are written only
  // once the expert's answer is final.
  auto send = [&](size_t i) {
    Round::Expert& x = round->ex[i];
    x.in_flight = 1;
    const std::string addr = x.addrs[0];
    const int e = x.e;
    const int64_t r0 = x.r0, m = x.m;
    lk.unlock();
    const double left = std::max(0.001, std::chrono::duration<double>(deadline - Clock::now()).count());
    handles.push_back(ctx_->client.backward(addr, uid(e), xs_ + r0 * d, dys + r0 * d, m, d_, lr_, left, request_id[i],
                                            [round, i, addr](CallResult&& r) {
                                              std::lock_guard<std::mutex> g(round->mu);
                                              round->results.push_back({i, addr, std::move(r)});
                                              round->cv.notify_all();
                                            }));
    lk.lock();
  };
  for (size_t i = 0; i < round->ex.size(); ++i) send(i);
  size_t done = 0;
  while (done < round->ex.size()) {
    if (round->results.empty() && round->cv.wait_until(lk, deadline) == std::cv_status::timeout && round->results.empty()) break;
    std::vector<Round::Result> res;
    res.swap(round->results);
    for (Round::Result& a : res) {
      Round::Expert& x = round->ex[a.i];
      x.in_flight = 0;
      ctx_->stats.call(a.r.ok, a.r.timeout, a.r.latency_ms);
      if (a.r.ok) ctx_->bans.success(a.addr);
      else ctx_->bans.failure(a.addr);
      if (!a.r.ok && !a.r.timeout && x.retries < c.retries && Clock::now() < deadline) {
        ++x.retries;  // the same request id: a server that did step answers from memory
        send(a.i);
        continue;
      }
      ++done;
      // An expert that failed in backward gives no input gradient (and its server took no step).
      x.status = a.r.ok ? Status::Ok : Status::Failed;
      if (a.r.ok) std::memcpy(dxs + x.r0 * d, a.r.out.data(), sizeof(float) * size_t(x.m * d));
    }
  }
  for (Round::Expert& x : round->ex)
    if (x.in_flight) {
      ctx_->stats.call(false, true, 0);
      x.status = Status::Failed;
    }
  lk.unlock();
  for (auto& h : handles) h->cancel();
  // Rows without an answer (failed now, or in the forward) get no gradient.
  std::vector<uint8_t> ok(E_, 0);
  for (const Round::Expert& x : round->ex) ok[x.e] = x.status == Status::Ok;
  for (int e = 0; e < E_; ++e)
    if (!ok[e]) std::memset(dxs + offsets_[e] * d, 0, sizeof(float) * size_t((offsets_[e + 1] - offsets_[e]) * d));
}

}  // namespace moe::net
