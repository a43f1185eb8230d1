#pragma once
// The client side of moe.expert.v1: asynchronous Forward / Backward calls to one remote expert, each
// with a deadline, over one cached channel per server. Any error, timeout or malformed reply comes
// back as a failed CallResult, never as an exception.
#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "net/tls.h"

namespace grpc {
class Channel;
}
namespace moe::expert::v1 {
class Expert;
}

namespace moe::net {

class NodeIdentity;

struct CallResult {
  bool ok = false;
  bool timeout = false;      // the deadline passed (or the call was cancelled)
  std::string error;         // the server's status message, or what was wrong with its reply
  bool lie = false;          // the reply contradicts itself (canary rows): not bad luck
  std::vector<float> out;    // [n, d]: the expert's output, or the input gradient
  double latency_ms = 0;
};

// A call in flight; cancel() makes it finish early as a timeout.
class PendingCall {
 public:
  virtual ~PendingCall() = default;
  virtual void cancel() = 0;
};

// Calls finish on gRPC's threads, which must never destroy gRPC objects (a call's context and stub,
// or the last reference to a channel): the client keeps every call until a later call or its
// destructor frees it on the caller's thread, and its destructor cancels and waits for the calls
// in flight. `done` callbacks must not own the client.
class ExpertClient {
 public:
  using Done = std::function<void(CallResult&&)>;
  ExpertClient();
  ~ExpertClient();

  // x: [n, d]. done runs exactly once, on a gRPC thread; the request is serialised before this
  // returns (x may be overwritten afterwards).
  std::shared_ptr<PendingCall> forward(const std::string& address, const std::string& uid, const float* x,
                                       int64_t n, int d, double timeout_s, Done done);
  // x, dy: [n, d]; the answer is dx. lr: the learning rate the expert's optimizer should use;
  // request_id: the same for a retry of this backward (the server then steps only once).
  std::shared_ptr<PendingCall> backward(const std::string& address, const std::string& uid, const float* x,
                                        const float* dy, int64_t n, int d, float lr, double timeout_s,
                                        uint64_t request_id, Done done);
  // Blocking Info call: (d_model, d_ff, steps) of the expert; moe::Error when it fails.
  struct Info {
    int d_model = 0, d_ff = 0;
    int64_t steps = 0;
    double load = 0;
    uint32_t version = 0;
    int64_t rejected = 0, gradients_rejected = 0, refused_calls = 0, rate_limited_calls = 0;  // the server's defences
  };
  Info info(const std::string& address, const std::string& uid, double timeout_s);

  // Calls in flight (for tests and shutdown).
  size_t in_flight();
  // Servers whose records name a key get a TLS channel pinned to it (tls.h); others a plain one.
  void set_pins(std::shared_ptr<const ServerPins> pins);
  // The identity this client presents on TLS channels (set before the first call): servers limit
  // and judge it by its key, whatever connection it comes from.
  void set_identity(std::shared_ptr<const NodeIdentity> id);
  // Every forward call carries a copy of its first row, and an answer whose two copies differ
  // (beyond rounding) fails: it catches servers that answer noise (docs/security.md).
  void set_canary_rows(bool on) { canary_ = on; }

 private:
  struct Server;
  // The stub of a server's channel, made once (stubs are thread-safe; the client outlives calls).
  Server& server(const std::string& address);
  // Registers a started call; frees finished ones.
  void track(const std::shared_ptr<PendingCall>& call);
  void finished(PendingCall* call);
  // Sets the common fields of a call's request and context, registers it and starts it with
  // rpc(stub, call, on_done); reply_matrix picks the answer out of the reply.
  template <class C, class Rpc, class Pick>
  std::shared_ptr<PendingCall> start(std::shared_ptr<C> call, const std::string& address, const std::string& uid,
                                     int64_t n, int d, double timeout_s, Done done, Rpc rpc, Pick reply_matrix);

  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::unique_ptr<Server>> servers_;
  std::vector<std::unique_ptr<Server>> retired_;  // replaced when a server's pinned key changed
  std::shared_ptr<const ServerPins> pins_;
  std::shared_ptr<const NodeIdentity> identity_;
  bool canary_ = false;
  std::map<PendingCall*, std::shared_ptr<PendingCall>> in_flight_;
  std::vector<std::shared_ptr<PendingCall>> finished_;
};

}  // namespace moe::net
