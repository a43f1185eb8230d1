#include "net/expert_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>

#include "core/error.h"
#include "expert.grpc.pb.h"
#include "net/protocol.h"
#include "net/identity.h"
#include "net/tls.h"
#include "net/quiet_logs.h"

namespace moe::net {
namespace {

using Clock = std::chrono::steady_clock;

template <class Req, class Rep>
struct Call final : PendingCall {
  grpc::ClientContext ctx;
  Req req;
  Rep rep;
  Clock::time_point start = Clock::now();
  void cancel() override { ctx.TryCancel(); }
};

std::chrono::system_clock::time_point deadline_after(double s) {
  return std::chrono::system_clock::now() +
         std::chrono::duration_cast<std::chrono::system_clock::duration>(std::chrono::duration<double>(s));
}

// The reply's matrix checked like a server checks a request: a lying or broken server is a failure.
CallResult finish(const grpc::Status& s, uint32_t version, const pb::Matrix& m, int64_t n, int d,
                  Clock::time_point start) {
  CallResult r;
  r.latency_ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (!s.ok()) {
    r.timeout = s.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED || s.error_code() == grpc::StatusCode::CANCELLED;
    r.error = s.error_message().empty() ? "gRPC status " + std::to_string(int(s.error_code())) : s.error_message();
    return r;
  }
  if (auto v = check_version(version); !v.empty()) {
    r.error = "reply: " + v;
    return r;
  }
  if (auto c = check_matrix(m, d, n, "reply"); !c.empty()) {
    r.error = c;
    return r;
  }
  if (m.rows() != n) {
    r.error = "reply has " + std::to_string(m.rows()) + " rows, sent " + std::to_string(n);
    return r;
  }
  r.out.resize(static_cast<size_t>(n) * d);
  from_matrix(r.out.data(), m);
  r.ok = true;
  return r;
}

}  // namespace

ExpertClient::ExpertClient() { quiet_third_party_logs(); }

ExpertClient::~ExpertClient() {
  std::unique_lock<std::mutex> lk(mu_);
  for (auto& [p, c] : in_flight_) c->cancel();
  cv_.wait(lk, [&] { return in_flight_.empty(); });
  std::vector<std::shared_ptr<PendingCall>> done;
  done.swap(finished_);
  lk.unlock();  // calls are destroyed here, on this thread, before the channels
}

void ExpertClient::track(const std::shared_ptr<PendingCall>& call) {
  std::vector<std::shared_ptr<PendingCall>> done;
  {
    std::lock_guard<std::mutex> lk(mu_);
    in_flight_.emplace(call.get(), call);
    done.swap(finished_);
  }
}

void ExpertClient::finished(PendingCall* call) {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = in_flight_.find(call);
  if (it == in_flight_.end()) return;
  finished_.push_back(std::move(it->second));
  in_flight_.erase(it);
  cv_.notify_all();
}

size_t ExpertClient::in_flight() {
  std::lock_guard<std::mutex> lk(mu_);
  return in_flight_.size();
}

struct ExpertClient::Server {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<pb::Expert::Stub> stub;
  std::string key;  // the key the channel's TLS is pinned to ("": plain)
};

void ExpertClient::set_identity(std::shared_ptr<const NodeIdentity> id) {
  std::lock_guard<std::mutex> lk(mu_);
  identity_ = std::move(id);
}

void ExpertClient::set_pins(std::shared_ptr<const ServerPins> pins) {
  std::lock_guard<std::mutex> lk(mu_);
  pins_ = std::move(pins);
}

ExpertClient::Server& ExpertClient::server(const std::string& address) {
  std::lock_guard<std::mutex> lk(mu_);
  auto& s = servers_[address];
  const std::string key = pins_ ? pins_->key(address) : "";
  if (s && s->key != key) {
    retired_.push_back(std::move(s));  // calls in flight may still use its stub
    s.reset();
  }
  if (!s) {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(-1);
    args.SetMaxSendMessageSize(-1);
    // Reconnect to a restarted server quickly instead of gRPC's default backoff of up to 2 min.
    // Its own connection, not one shared with other clients of this process: a server tells
    // clients without a TLS client key apart by connection (gradient guard, rate limit).
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 1000);
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    s = std::make_unique<Server>();
    s->key = key;
    s->channel = grpc::CreateCustomChannel(
        address, key.empty() ? grpc::InsecureChannelCredentials() : pinned_channel_credentials(key, identity_.get()), args);
    s->stub = pb::Expert::NewStub(s->channel);
  }
  return *s;
}

template <class C, class Rpc, class Pick>
std::shared_ptr<PendingCall> ExpertClient::start(std::shared_ptr<C> call, const std::string& address,
                                                 const std::string& uid, int64_t n, int d, double timeout_s,
                                                 Done done, Rpc rpc, Pick reply_matrix) {
  call->req.set_version(kProtocolVersion);
  call->req.set_uid(uid);
  call->ctx.set_deadline(deadline_after(timeout_s));
  pb::Expert::Stub* stub = server(address).stub.get();
  track(call);
  C* raw = call.get();
  rpc(stub, raw, [this, raw, n, d, done, reply_matrix](grpc::Status s) {
    done(finish(s, raw->rep.version(), reply_matrix(raw->rep), n, d, raw->start));
    finished(raw);
  });
  return call;
}

std::shared_ptr<PendingCall> ExpertClient::forward(const std::string& address, const std::string& uid,
                                                   const float* x, int64_t n, int d, double timeout_s, Done done) {
  using C = Call<pb::ForwardRequest, pb::ForwardReply>;
  auto call = std::make_shared<C>();
  if (!canary_) {
    to_matrix(*call->req.mutable_input(), x, n, d);
  } else {
    // A copy of row 0 rides at the end: an honest expert is a function of its input, so the two
    // answers agree (to rounding: the rows may sit in different GEMM tiles); noise does not.
    pb::Matrix& m = *call->req.mutable_input();
    to_matrix(m, x, n, d);
    m.mutable_data()->append(reinterpret_cast<const char*>(x), sizeof(float) * size_t(d));
    m.set_rows(n + 1);
    done = [done = std::move(done), n, d](CallResult&& r) {
      if (r.ok) {
        const float* a = r.out.data();
        const float* b = r.out.data() + n * d;
        double diff = 0, norm = 0;
        for (int i = 0; i < d; ++i) diff += double(a[i] - b[i]) * (a[i] - b[i]), norm += double(a[i]) * a[i];
        if (!(diff <= 1e-6 * norm + 1e-12)) {
          r.ok = false;
          r.lie = true;
          r.error = "the answers to two copies of a row differ: not a function of the input";
        }
        r.out.resize(size_t(n) * d);
      }
      done(std::move(r));
    };
    ++n;
  }
  return start(
      call, address, uid, n, d, timeout_s, std::move(done),
      [](pb::Expert::Stub* s, C* c, auto cb) { s->async()->Forward(&c->ctx, &c->req, &c->rep, std::move(cb)); },
      [](const pb::ForwardReply& r) -> const pb::Matrix& { return r.output(); });
}

std::shared_ptr<PendingCall> ExpertClient::backward(const std::string& address, const std::string& uid,
                                                    const float* x, const float* dy, int64_t n, int d, float lr,
                                                    double timeout_s, uint64_t request_id, Done done) {
  using C = Call<pb::BackwardRequest, pb::BackwardReply>;
  auto call = std::make_shared<C>();
  call->req.set_lr(lr);
  call->req.set_request_id(request_id);
  to_matrix(*call->req.mutable_input(), x, n, d);
  to_matrix(*call->req.mutable_grad_output(), dy, n, d);
  return start(
      call, address, uid, n, d, timeout_s, std::move(done),
      [](pb::Expert::Stub* s, C* c, auto cb) { s->async()->Backward(&c->ctx, &c->req, &c->rep, std::move(cb)); },
      [](const pb::BackwardReply& r) -> const pb::Matrix& { return r.grad_input(); });
}

ExpertClient::Info ExpertClient::info(const std::string& address, const std::string& uid, double timeout_s) {
  grpc::ClientContext ctx;
  ctx.set_deadline(deadline_after(timeout_s));
  pb::InfoRequest req;
  req.set_version(kProtocolVersion);
  req.set_uid(uid);
  pb::InfoReply rep;
  const grpc::Status s = server(address).stub->Info(&ctx, req, &rep);
  if (!s.ok()) throw Error("[net] " + address + " " + uid + ": " + s.error_message());
  if (auto v = check_version(rep.version()); !v.empty()) throw Error("[net] " + address + ": " + v);
  return {.d_model = rep.d_model(), .d_ff = rep.d_ff(), .steps = rep.steps(), .load = rep.load(),
          .version = rep.version(), .rejected = rep.rejected(), .gradients_rejected = rep.gradients_rejected(),
          .refused_calls = rep.refused_calls(),
          .rate_limited_calls = rep.rate_limited_calls()};
}

}  // namespace moe::net
