#include "net/remote_expert_bank.h"

#include <algorithm>
#include <condition_variable>
#include <cstring>

namespace moe::net {
namespace {

using Clock = std::chrono::steady_clock;

Clock::duration seconds(double s) {
  return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
}

enum class Status { Pending, Ok, Failed };

// One layer's calls of one forward or backward. Shared with the gRPC callbacks, which may finish
// after the round has closed (cancelled calls): they then only drop their result.
struct Round {
  struct Expert {
    int e = 0;
    int64_t r0 = 0, m = 0;
    std::vector<std::string> addrs;  // replicas, best first
    size_t next = 0;                 // next replica to try
    int in_flight = 0;
    Status status = Status::Pending;
    std::vector<float> out;
    std::string by;                  // the replica that answered
    Clock::time_point last_launch{};
    std::vector<std::shared_ptr<PendingCall>> calls;
  };
  std::mutex mu;
  std::condition_variable cv;
  bool closed = false;
  int launching = 0;  // launches in progress outside the lock (they read the caller's rows)
  std::vector<Expert> ex;
};

}  // namespace

bool BanList::banned(const std::string& address) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = entries_.find(address);
  return it != entries_.end() && Clock::now() < it->second.until;
}

void BanList::record(Entry& e, bool failed) {
  e.recent.push_back(failed);
  if (int(e.recent.size()) > c_.ban_window) e.recent.erase(e.recent.begin());
  int f = 0;
  for (uint8_t x : e.recent) f += x;
  if (failed && f >= c_.ban_failures) {
    e.bans = std::min(e.bans + 1, 30);
    e.until = Clock::now() + seconds(std::min(c_.ban_max_s, c_.ban_base_s * double(int64_t{1} << (e.bans - 1))));
    e.recent.clear();  // judged afresh after the ban
  } else if (!failed && f == 0 && int(e.recent.size()) == c_.ban_window) {
    e.bans = 0;
  }
}

void BanList::failure(const std::string& address) {
  std::lock_guard<std::mutex> lk(mu_);
  record(entries_[address], true);
}

void BanList::success(const std::string& address) {
  std::lock_guard<std::mutex> lk(mu_);
  record(entries_[address], false);
}

RemoteExpertBank::RemoteExpertBank(std::shared_ptr<RemoteContext> ctx, std::string prefix, int n_experts, int d_model)
    : ctx_(std::move(ctx)), prefix_(std::move(prefix)), E_(n_experts), d_(d_model),
      failed_(n_experts, 0), answered_by_(n_experts) {}

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
  for (int e = 0; e < E_; ++e) {
    const int64_t m = offsets[e + 1] - offsets[e];
    if (m == 0) continue;
    Round::Expert x;
    x.e = e;
    x.r0 = offsets[e];
    x.m = m;
    for (const std::string& a : ctx_->locator->addresses(uid(e)))
      if (!ctx_->bans.banned(a)) x.addrs.push_back(a);
    if (x.addrs.empty()) {  // no live, unbanned server: a failed call that costs nothing
      x.status = Status::Failed;
      ctx_->stats.call(false, false, 0);
    }
    slot_of[e] = int(round->ex.size());
    round->ex.push_back(std::move(x));
  }

  const Clock::time_point start = Clock::now(), deadline = start + seconds(c.forward_timeout_s);
  auto ctx = ctx_;
  const std::string pre = prefix_;
  // Sends expert i's rows to its next replica. Called with round->launching held (not the lock).
  auto launch = [round, ctx, xs, d, pre, deadline](size_t i, const std::string& addr) {
    Round::Expert& x = round->ex[i];
    const double left = std::max(0.001, std::chrono::duration<double>(deadline - Clock::now()).count());
    auto call = ctx->client.forward(
        addr, pre + "." + std::to_string(x.e), xs + x.r0 * d, x.m, int(d), left,
        [round, ctx, i, addr, pre](CallResult&& r) {
          ctx->stats.call(r.ok, r.timeout, r.latency_ms);
          if (r.ok) ctx->bans.success(addr);
          else {
            ctx->bans.failure(addr);
            ctx->locator->failed(pre + "." + std::to_string(round->ex[i].e), addr);
          }
          std::lock_guard<std::mutex> lk(round->mu);
          Round::Expert& y = round->ex[i];
          --y.in_flight;
          if (round->closed || y.status != Status::Pending) return;
          if (r.ok) {
            y.status = Status::Ok;
            y.out = std::move(r.out);
            y.by = addr;
          } else if (y.in_flight == 0 && y.next >= y.addrs.size()) {
            y.status = Status::Failed;
          }
          // A failure with replicas left is retried by the waiting thread (it owns the rows).
          round->cv.notify_all();
        });
    std::lock_guard<std::mutex> lk(round->mu);
    x.calls.push_back(std::move(call));
  };

  std::unique_lock<std::mutex> lk(round->mu);
  // Launches replica `next` of expert i (lock held on entry and exit).
  auto send = [&](size_t i) {
    Round::Expert& x = round->ex[i];
    const std::string addr = x.addrs[x.next++];
    ++x.in_flight;
    x.last_launch = Clock::now();
    ++round->launching;
    lk.unlock();
    launch(i, addr);
    lk.lock();
    --round->launching;
  };
  for (size_t i = 0; i < round->ex.size(); ++i)
    if (round->ex[i].status == Status::Pending) send(i);

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
    bool any_pending = false, sent = false;
    for (size_t i = 0; i < round->ex.size(); ++i) {
      Round::Expert& x = round->ex[i];
      if (x.status != Status::Pending) continue;
      any_pending = true;
      // Retry a failed call on the next replica; hedge a slow one.
      const bool retry = x.in_flight == 0 && x.next < x.addrs.size();
      const bool hedge = x.in_flight > 0 && x.next < x.addrs.size() && Clock::now() - x.last_launch >= seconds(c.hedge_after_s);
      if (retry || hedge) {
        send(i);  // unlocks: answers may have come meanwhile, so look again before waiting
        sent = true;
      } else if (x.in_flight == 0) {
        x.status = Status::Failed;
      }
    }
    if (!any_pending) break;
    if (sent) continue;
    const Clock::time_point now = Clock::now();
    if (now >= deadline || now >= grace_end) break;
    if (grace_end == Clock::time_point::max() && plan && settled()) grace_end = now + seconds(c.grace_s);
    Clock::time_point wake = std::min(deadline, grace_end);
    for (const Round::Expert& x : round->ex)
      if (x.status == Status::Pending && x.next < x.addrs.size()) wake = std::min(wake, x.last_launch + seconds(c.hedge_after_s));
    round->cv.wait_until(lk, wake);
  }
  round->closed = true;
  round->cv.wait(lk, [&] { return round->launching == 0; });
  std::vector<std::shared_ptr<PendingCall>> to_cancel;
  for (Round::Expert& x : round->ex) {
    if (x.status == Status::Ok) {
      std::memcpy(ys + x.r0 * d, x.out.data(), sizeof(float) * size_t(x.m * d));
      answered_by_[x.e] = x.by;
    } else {
      failed_[x.e] = 1;
    }
    for (auto& p : x.calls) to_cancel.push_back(p);  // slow ones, and hedged duplicates
  }
  lk.unlock();
  for (auto& p : to_cancel) p->cancel();

  // Tokens short of k_min, and tokens with no answer at all (they keep only the residual).
  int64_t below = 0, none = 0;
  for (int64_t t = 0; t < n_tok; ++t) {
    int answered = 0, valid = 0;
    for (int j = 0; j < k; ++j) {
      const int e = plan->expert[t * k + j];
      if (e < 0) continue;
      ++valid;
      answered += !failed_[e];
    }
    below += answered < std::min(c.k_min, valid);
    none += valid > 0 && answered == 0;
  }
  ctx_->stats.tokens(below, none);
}

void RemoteExpertBank::backward(float* dxs, const float* dys) {
  const RemoteCallConfig& c = ctx_->cfg;
  const int64_t d = d_, M = offsets_.back();
  auto round = std::make_shared<Round>();
  for (int e = 0; e < E_; ++e) {
    const int64_t m = offsets_[e + 1] - offsets_[e];
    if (m == 0 || failed_[e]) continue;
    Round::Expert x;
    x.e = e;
    x.r0 = offsets_[e];
    x.m = m;
    x.addrs = {answered_by_[e]};  // the weights that made the forward
    round->ex.push_back(std::move(x));
  }
  // Every request is serialised before any row of dxs is written (dxs may alias xs).
  std::vector<std::shared_ptr<PendingCall>> calls;
  auto ctx = ctx_;
  const std::string pre = prefix_;
  for (size_t i = 0; i < round->ex.size(); ++i) {
    Round::Expert& x = round->ex[i];
    const std::string addr = x.addrs[0];
    {
      std::lock_guard<std::mutex> lk(round->mu);
      x.in_flight = 1;
    }
    calls.push_back(ctx_->client.backward(
        addr, uid(x.e), xs_ + x.r0 * d, dys + x.r0 * d, x.m, int(d), lr_, c.backward_timeout_s,
        [round, ctx, i, addr, pre](CallResult&& r) {
          ctx->stats.call(r.ok, r.timeout, r.latency_ms);
          if (r.ok) ctx->bans.success(addr);
          else ctx->bans.failure(addr);
          std::lock_guard<std::mutex> lk(round->mu);
          Round::Expert& y = round->ex[i];
          y.in_flight = 0;
          if (round->closed) return;
          y.status = r.ok ? Status::Ok : Status::Failed;
          if (r.ok) y.out = std::move(r.out);
          round->cv.notify_all();
        }));
  }
  std::memset(dxs, 0, sizeof(float) * size_t(M * d));
  const Clock::time_point deadline = Clock::now() + seconds(c.backward_timeout_s);
  std::unique_lock<std::mutex> lk(round->mu);
  round->cv.wait_until(lk, deadline, [&] {
    for (const Round::Expert& x : round->ex)
      if (x.status == Status::Pending) return false;
    return true;
  });
  round->closed = true;
  // An expert that failed in backward gives no input gradient (and its server took no step).
  for (Round::Expert& x : round->ex)
    if (x.status == Status::Ok) std::memcpy(dxs + x.r0 * d, x.out.data(), sizeof(float) * size_t(x.m * d));
  lk.unlock();
  for (auto& p : calls) p->cancel();
}

}  // namespace moe::net
