#include "net/expert_server.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <filesystem>
#include <mutex>
#include <random>
#include <thread>

#include "core/error.h"
#include "core/rng.h"
#include "expert.grpc.pb.h"
#include "io/safetensors.h"
#include "io/weight_store.h"
#include "model/config.h"
#include "moe/expert_grid.h"
#include "moe/expert_bank_swiglu.h"
#include "net/protocol.h"
#include "net/quiet_logs.h"
#include "net/tls.h"
#include "nn/init.h"
#include <nlohmann/json.hpp>

namespace moe::net {
namespace fs = std::filesystem;

namespace {

// One request waiting for its expert: the rows it brings and, once computed, its answer.
struct Job {
  bool backward = false;
  const pb::Matrix* input = nullptr;
  const pb::Matrix* grad_output = nullptr;
  int64_t rows = 0;
  float lr = 0;
  std::vector<float> out;  // [rows, d]
  bool done = false;
};

struct HostedExpert {
  std::string uid;
  std::unique_ptr<SwiGLUExpertBank> bank;  // one expert
  std::unique_ptr<AdamW> opt;
  std::mutex mu;                           // guards queue and running
  std::condition_variable cv;
  std::deque<Job*> queue;
  bool running = false;
};

// "PREFIX.l.c0[.c1...]" -> (l, [c0, c1, ...]); false when the uid has another form.
bool layer_and_coords(const std::string& uid, int& l, std::vector<int>& coords) {
  std::vector<int> v;
  size_t a = uid.find('.');
  if (a == std::string::npos || a == 0) return false;
  while (a != std::string::npos) {
    const size_t b = uid.find('.', a + 1);
    const std::string part = uid.substr(a + 1, b == std::string::npos ? std::string::npos : b - a - 1);
    if (part.empty() || part.size() > 9 || part.find_first_not_of("0123456789") != std::string::npos) return false;
    v.push_back(std::stoi(part));
    a = b;
  }
  if (v.size() < 2) return false;
  l = v[0];
  coords.assign(v.begin() + 1, v.end());
  return true;
}

uint64_t hash_uid(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a: a stable per-uid seed
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

}  // namespace

struct ExpertServer::Impl final : public pb::Expert::Service {
  const ExpertServerConfig& cfg;
  std::map<std::string, std::unique_ptr<HostedExpert>> experts;
  std::mutex compute_mu;  // one batch computes at a time, with all the server's threads
  std::unique_ptr<grpc::Server> server;
  int port = 0;
  std::atomic<int64_t> queued_rows{0};
  mutable std::mutex stats_mu;
  ExpertServerStats st;
  std::mutex rng_mu;
  std::mt19937_64 fault_rng;
  // Answers of recent Backward calls by request id: a retry gets the same answer, and the expert
  // steps once (a reply lost on the way back must not become two updates).
  static constexpr size_t kRememberedBytes = size_t(64) << 20;  // retries come within seconds
  size_t remembered_bytes = 0;
  std::mutex done_mu;
  std::map<std::pair<std::string, uint64_t>, std::vector<float>> done_backward;
  std::deque<std::pair<std::string, uint64_t>> done_order;

  GradientGuard guard;
  RateLimiter limiter;

  explicit Impl(const ExpertServerConfig& c) : cfg(c), fault_rng(c.seed ^ 0x5eedf417ull), guard(c.guard), limiter(c.rate_limit) {}

  // The lie of a server run with --attack (experiments only).
  void lie(std::vector<float>& out) {
    if (cfg.attack == "scale") {
      for (float& v : out) v *= 100.0f;
    } else if (cfg.attack == "nan") {
      std::fill(out.begin(), out.end(), std::nanf(""));
    } else if (cfg.attack == "flip") {  // consistent: passes size checks and canary rows
      for (float& v : out) v = -v;
    } else if (cfg.attack == "random") {
      std::lock_guard<std::mutex> lk(rng_mu);
      std::normal_distribution<float> n(0.0f, 1.0f);
      for (float& v : out) v = n(fault_rng);
    }
  }

  grpc::Status injected() {
    if (cfg.delay_ms > 0) std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(cfg.delay_ms));
    if (cfg.fail_rate > 0) {
      std::lock_guard<std::mutex> lk(rng_mu);
      if (std::uniform_real_distribution<double>(0, 1)(fault_rng) < cfg.fail_rate) {
        std::lock_guard<std::mutex> sl(stats_mu);
        ++st.injected_failures;
        return grpc::Status(grpc::StatusCode::UNAVAILABLE, "injected failure (--fail-rate)");
      }
    }
    return grpc::Status::OK;
  }

  grpc::Status reject(grpc::StatusCode code, const std::string& msg) {
    std::lock_guard<std::mutex> lk(stats_mu);
    ++st.rejected;
    return grpc::Status(code, msg);
  }

  HostedExpert* find(const std::string& uid) {
    auto it = experts.find(uid);
    return it == experts.end() ? nullptr : it->second.get();
  }

  // Computes a batch of same-kind jobs of one expert as one GEMM over their concatenated rows.
  void compute(HostedExpert& e, const std::vector<Job*>& batch) {
    const int64_t d = cfg.d_model;
    int64_t M = 0;
    for (Job* j : batch) M += j->rows;
    std::vector<float> xs(M * d), ys(M * d);
    int64_t r = 0;
    for (Job* j : batch) {
      from_matrix(xs.data() + r * d, *j->input);
      r += j->rows;
    }
    std::lock_guard<std::mutex> lk(compute_mu);
    e.bank->forward(ys.data(), xs.data(), {0, M});
    if (batch.front()->backward) {
      std::vector<float> dys(M * d);
      r = 0;
      float lr = cfg.lr;
      for (Job* j : batch) {
        from_matrix(dys.data() + r * d, *j->grad_output);
        r += j->rows;
        if (j->lr > 0) lr = std::min(lr, j->lr);
      }
      ParamList ps;
      e.bank->params(ps);
      for (Param* p : ps) p->zero_grad();
      e.bank->backward(ys.data(), dys.data());  // ys now holds dxs
      e.opt->step(lr);
    }
    r = 0;
    for (Job* j : batch) {
      j->out.assign(ys.begin() + r * d, ys.begin() + (r + j->rows) * d);
      r += j->rows;
    }
    std::lock_guard<std::mutex> sl(stats_mu);
    (batch.front()->backward ? st.backward_batches : st.forward_batches) += 1;
  }

  // Queues the job; whichever waiting request finds the expert idle computes every queued job of
  // the kind at the queue's head, so concurrent calls share one GEMM.
  void run(HostedExpert& e, Job& job) {
    queued_rows += job.rows;
    std::unique_lock<std::mutex> lk(e.mu);
    e.queue.push_back(&job);
    while (!job.done) {
      if (e.running) {
        e.cv.wait(lk);
        continue;
      }
      e.running = true;
      std::vector<Job*> batch;
      const bool kind = e.queue.front()->backward;
      for (auto it = e.queue.begin(); it != e.queue.end();) {
        if ((*it)->backward == kind) {
          batch.push_back(*it);
          it = e.queue.erase(it);
        } else {
          ++it;
        }
      }
      lk.unlock();
      try {
        compute(e, batch);
      } catch (...) {
        lk.lock();
        e.running = false;
        for (Job* j : batch) j->done = true;  // out stays empty: an internal error
        e.cv.notify_all();
        queued_rows -= job.rows;
        throw;
      }
      lk.lock();
      for (Job* j : batch) j->done = true;
      e.running = false;
      e.cv.notify_all();
    }
    queued_rows -= job.rows;
  }

  grpc::Status Info(grpc::ServerContext*, const pb::InfoRequest* req, pb::InfoReply* rep) override {
    if (auto v = check_version(req->version()); !v.empty()) return reject(grpc::StatusCode::FAILED_PRECONDITION, v);
    HostedExpert* e = find(req->uid());
    if (!e) return reject(grpc::StatusCode::NOT_FOUND, "no expert '" + req->uid().substr(0, 200) + "' on this server");
    rep->set_version(kProtocolVersion);
    rep->set_uid(e->uid);
    rep->set_d_model(cfg.d_model);
    rep->set_d_ff(cfg.d_ff);
    {
      std::lock_guard<std::mutex> lk(compute_mu);
      rep->set_steps(e->opt->steps_done());
    }
    rep->set_load(static_cast<double>(queued_rows.load()));
    const GradientGuardStats g = guard.stats();
    {
      std::lock_guard<std::mutex> lk(stats_mu);
      rep->set_rejected(st.rejected);
    }
    rep->set_gradients_rejected(g.rejected);
    rep->set_refused_calls(g.refused_calls);
    rep->set_rate_limited_calls(limiter.stats().limited_calls);
    return grpc::Status::OK;
  }

  // client: who is calling (its TLS client key, else its connection), for the gradient guard's
  // per-client counts and the rate limit.
  grpc::Status call(bool backward, uint32_t version, const std::string& uid, const pb::Matrix& input,
                    const pb::Matrix* grad_output, float lr, pb::Matrix* out, const std::string& client) {
    if (auto v = check_version(version); !v.empty()) return reject(grpc::StatusCode::FAILED_PRECONDITION, v);
    if (cfg.guard_gradients)
      if (auto r = guard.refused(client); !r.empty()) return reject(grpc::StatusCode::PERMISSION_DENIED, r);
    HostedExpert* e = find(uid);
    if (!e) return reject(grpc::StatusCode::NOT_FOUND, "no expert '" + uid.substr(0, 200) + "' on this server");
    if (auto m = check_matrix(input, cfg.d_model, cfg.max_rows, "input"); !m.empty())
      return reject(grpc::StatusCode::INVALID_ARGUMENT, m);
    if (!limiter.admit(client, input.rows()))  // not counted as rejected: the request was valid
      return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                          "rate limit: " + std::to_string(input.rows()) + " rows over this client's budget of " +
                              std::to_string(cfg.rate_limit.rows_per_s) + " rows/s");
    if (grad_output) {
      if (auto m = check_matrix(*grad_output, cfg.d_model, cfg.max_rows, "grad_output"); !m.empty()) {
        if (cfg.guard_gradients && m.find("non-finite") != std::string::npos) guard.reject(client);
        return reject(grpc::StatusCode::INVALID_ARGUMENT, m);
      }
      if (grad_output->rows() != input.rows())
        return reject(grpc::StatusCode::INVALID_ARGUMENT, "grad_output has " + std::to_string(grad_output->rows()) +
                                                              " rows, input " + std::to_string(input.rows()));
      if (!(lr >= 0) || !std::isfinite(lr)) return reject(grpc::StatusCode::INVALID_ARGUMENT, "learning rate must be >= 0");
      if (cfg.guard_gradients) {
        if (auto r = guard.check(uid, client, rms_of_bytes(grad_output->data())); !r.empty())
          return reject(grpc::StatusCode::INVALID_ARGUMENT, r);
      }
    }
    if (grpc::Status s = injected(); !s.ok()) return s;
    Job job;
    job.backward = backward;
    job.input = &input;
    job.grad_output = grad_output;
    job.rows = input.rows();
    job.lr = lr;
    try {
      run(*e, job);
    } catch (const std::exception& ex) {
      return grpc::Status(grpc::StatusCode::INTERNAL, ex.what());
    }
    if (job.out.empty()) return grpc::Status(grpc::StatusCode::INTERNAL, "the expert's batch failed");
    if (!backward && !cfg.attack.empty()) lie(job.out);
    to_matrix(*out, job.out.data(), job.rows, cfg.d_model);
    std::lock_guard<std::mutex> lk(stats_mu);
    (backward ? st.backward_calls : st.forward_calls) += 1;
    st.rows += job.rows;
    return grpc::Status::OK;
  }

  // A client with a TLS certificate is its key, wherever it connects from; others are their
  // connection (a reconnect is a new client: keys are what make limits stick).
  static std::string client_of(const grpc::ServerContext& ctx) {
    const std::string key = client_key_id(ctx);
    return key.empty() ? "peer " + ctx.peer() : "key " + key;
  }

  grpc::Status Forward(grpc::ServerContext* ctx, const pb::ForwardRequest* req, pb::ForwardReply* rep) override {
    rep->set_version(kProtocolVersion);
    return call(false, req->version(), req->uid(), req->input(), nullptr, 0, rep->mutable_output(), client_of(*ctx));
  }

  grpc::Status Backward(grpc::ServerContext* ctx, const pb::BackwardRequest* req, pb::BackwardReply* rep) override {
    rep->set_version(kProtocolVersion);
    const auto key = std::make_pair(req->uid(), req->request_id());
    if (req->request_id() != 0) {
      std::lock_guard<std::mutex> lk(done_mu);
      auto it = done_backward.find(key);
      if (it != done_backward.end() && int64_t(it->second.size()) == req->input().rows() * cfg.d_model) {
        to_matrix(*rep->mutable_grad_input(), it->second.data(), req->input().rows(), cfg.d_model);
        return grpc::Status::OK;
      }
    }
    grpc::Status s = call(true, req->version(), req->uid(), req->input(), &req->grad_output(), req->lr(),
                          rep->mutable_grad_input(), client_of(*ctx));
    if (s.ok() && req->request_id() != 0) {
      std::lock_guard<std::mutex> lk(done_mu);
      const std::string& b = rep->grad_input().data();
      std::vector<float> v(b.size() / sizeof(float));
      std::memcpy(v.data(), b.data(), b.size());
      const size_t bytes = b.size();
      if (done_backward.emplace(key, std::move(v)).second) {
        done_order.push_back(key);
        remembered_bytes += bytes;
      }
      while (remembered_bytes > kRememberedBytes && done_order.size() > 1) {
        auto it = done_backward.find(done_order.front());
        remembered_bytes -= it->second.size() * sizeof(float);
        done_backward.erase(it);
        done_order.pop_front();
      }
    }
    return s;
  }
};

ExpertServer::ExpertServer(const ExpertServerConfig& cfg) : cfg_(cfg), impl_(std::make_unique<Impl>(cfg_)) {
  quiet_third_party_logs();
  if (cfg_.uids.empty()) throw Error("[serve] no experts to host (--experts)");
  if (cfg_.d_model <= 0 || cfg_.d_ff <= 0) throw Error("[serve] --d-model and --d-ff must be positive");
  if (cfg_.fail_rate < 0 || cfg_.fail_rate > 1) throw Error("[serve] --fail-rate must be in [0, 1]");
  if (!cfg_.attack.empty() && cfg_.attack != "scale" && cfg_.attack != "nan" && cfg_.attack != "random" &&
      cfg_.attack != "flip")
    throw Error("[serve] --attack '" + cfg_.attack + "': expected scale, nan, random or flip");
  if (!(cfg_.guard.factor > 1) || !(cfg_.guard.max_rms > 0) || cfg_.guard.warmup < 1 || cfg_.guard.window < 1)
    throw Error("[serve] gradient guard: the factor must be > 1, the cap > 0, warmup and window >= 1");
  if (cfg_.delay_ms < 0) throw Error("[serve] --delay-ms must be >= 0");

  std::optional<SafetensorsFile> saved;
  const std::string path = cfg_.checkpoint_dir.empty() ? "" : cfg_.checkpoint_dir + "/experts.safetensors";
  nlohmann::json steps = nlohmann::json::object();
  if (!path.empty() && fs::exists(path)) {
    saved = SafetensorsFile::open(path);
    const auto& md = saved->metadata();
    auto get = [&](const char* k) { auto it = md.find(k); return it == md.end() ? std::string() : it->second; };
    if (get("d_model") != std::to_string(cfg_.d_model) || get("d_ff") != std::to_string(cfg_.d_ff))
      throw Error("[serve] " + path + ": saved experts have d_model " + get("d_model") + ", d_ff " + get("d_ff") +
                  "; this server was asked for " + std::to_string(cfg_.d_model) + ", " + std::to_string(cfg_.d_ff));
    steps = nlohmann::json::parse(get("steps"), nullptr, false);
    if (!steps.is_object()) throw Error("[serve] " + path + ": metadata 'steps' is not a JSON object");
  }
  std::optional<WeightStore> init;
  GridShape init_grid;  // the checkpoint's expert grid (grid router): uids PREFIX.l.i.j
  if (!cfg_.init_from.empty()) {
    init = WeightStore::open(cfg_.init_from);
    if (fs::exists(cfg_.init_from + "/config.json"))
      init_grid.dims = ModelConfig::load(cfg_.init_from + "/config.json").expert_grid;
  }

  for (const std::string& uid : cfg_.uids) {
    if (impl_->experts.count(uid)) throw Error("[serve] expert '" + uid + "' listed twice");
    auto e = std::make_unique<HostedExpert>();
    e->uid = uid;
    e->bank = std::make_unique<SwiGLUExpertBank>(
        uid, SwiGLUBankConfig{.d_model = cfg_.d_model, .d_ff = cfg_.d_ff, .n_experts = 1});
    ParamList ps;
    e->bank->params(ps);
    e->opt = std::make_unique<AdamW>(ps, cfg_.adam);
    SwiGLUExpertBank& b = *e->bank;
    if (saved && saved->has(uid + ".w1")) {
      saved->read_into(uid + ".w1", b.w1[0]->w.data(), b.w1[0]->w.numel());
      saved->read_into(uid + ".w3", b.w3[0]->w.data(), b.w3[0]->w.numel());
      saved->read_into(uid + ".w2", b.w2[0]->w.data(), b.w2[0]->w.numel());
      const int64_t n = steps.value(uid, int64_t{0});
      e->opt->load_state([&](const std::string& name, Tensor& t) { saved->read_into(name, t.data(), t.numel()); }, n);
      reloaded_ = true;
    } else if (init) {
      int l = 0;
      std::vector<int> c;
      const size_t D = std::max<size_t>(1, init_grid.dims.size());
      if (!layer_and_coords(uid, l, c) || c.size() != D)
        throw Error("[serve] --init-from " + cfg_.init_from + " needs uids PREFIX.layer" +
                    (D == 1 ? std::string(".index") : "." + std::to_string(D) + " grid coordinates") + ", got '" + uid + "'");
      if (D > 1)
        for (size_t q = 0; q < D; ++q)
          if (c[q] >= init_grid.dims[q])
            throw Error("[serve] --init-from: '" + uid + "' is outside the checkpoint's expert grid");
      const int64_t i = D == 1 ? int64_t(c[0]) : init_grid.index(c);
      const std::string base = "model.layers." + std::to_string(l);
      const bool mixtral = init->has(base + ".block_sparse_moe.experts." + std::to_string(i) + ".w1.weight");
      const std::string p = base + (mixtral ? ".block_sparse_moe" : ".mlp") + ".experts." + std::to_string(i) + ".";
      init->read_into(p + (mixtral ? "w1" : "gate_proj") + ".weight", b.w1[0]->w.data(), b.w1[0]->w.shape());
      init->read_into(p + (mixtral ? "w3" : "up_proj") + ".weight", b.w3[0]->w.data(), b.w3[0]->w.shape());
      init->read_into(p + (mixtral ? "w2" : "down_proj") + ".weight", b.w2[0]->w.data(), b.w2[0]->w.shape());
    } else {
      Rng rng(cfg_.seed ^ hash_uid(uid));
      for (Param* p : ps) init_normal(*p, rng, cfg_.init_std);
    }
    impl_->experts.emplace(uid, std::move(e));
  }

  grpc::ServerBuilder builder;
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a port in use is an error, not shared
  builder.AddListeningPort(cfg_.listen, cfg_.tls ? tls_server_credentials(*cfg_.tls) : grpc::InsecureServerCredentials(),
                           &impl_->port);
  builder.RegisterService(impl_.get());
  const int64_t max_bytes = cfg_.max_rows * cfg_.d_model * 4 * 2 + (1 << 20);
  builder.SetMaxReceiveMessageSize(static_cast<int>(std::min<int64_t>(max_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(static_cast<int>(std::min<int64_t>(max_bytes, INT32_MAX)));
  impl_->server = builder.BuildAndStart();
  if (!impl_->server || impl_->port == 0)
    throw Error("[serve] cannot listen on " + cfg_.listen + " (address in use or not valid)");
}

ExpertServer::~ExpertServer() { shutdown(); }

void ExpertServer::shutdown() {
  if (impl_ && impl_->server) {
    impl_->server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    impl_->server->Wait();
    impl_->server.reset();
  }
}

int ExpertServer::port() const { return impl_->port; }

std::string ExpertServer::address() const {
  const size_t c = cfg_.listen.rfind(':');
  std::string host = cfg_.advertise_host.empty() ? cfg_.listen.substr(0, c) : cfg_.advertise_host;
  if (host == "0.0.0.0" || host == "[::]" || host.empty()) host = "127.0.0.1";
  return host + ":" + std::to_string(impl_->port);
}

double ExpertServer::load() const { return static_cast<double>(impl_->queued_rows.load()); }

ExpertServerStats ExpertServer::stats() const {
  ExpertServerStats s;
  {
    std::lock_guard<std::mutex> lk(impl_->stats_mu);
    s = impl_->st;
  }
  s.gradients = impl_->guard.stats();
  s.rate_limit = impl_->limiter.stats();
  return s;
}

int64_t ExpertServer::steps(const std::string& uid) const {
  std::lock_guard<std::mutex> lk(impl_->compute_mu);
  HostedExpert* e = impl_->find(uid);
  if (!e) throw Error("[serve] no expert '" + uid + "'");
  return e->opt->steps_done();
}

void ExpertServer::save() {
  if (cfg_.checkpoint_dir.empty()) return;
  fs::create_directories(cfg_.checkpoint_dir);
  // Copies under the compute lock, written after it: a save never stalls calls for a disk write.
  std::vector<std::pair<std::string, Tensor>> copies;
  nlohmann::json steps = nlohmann::json::object();
  {
    std::lock_guard<std::mutex> lk(impl_->compute_mu);
    for (auto& [uid, e] : impl_->experts) {
      copies.emplace_back(uid + ".w1", e->bank->w1[0]->w);
      copies.emplace_back(uid + ".w3", e->bank->w3[0]->w);
      copies.emplace_back(uid + ".w2", e->bank->w2[0]->w);
      for (auto& [name, t] : e->opt->state_tensors()) copies.emplace_back(name, *t);
      steps[uid] = e->opt->steps_done();
    }
  }
  NamedTensors named;
  for (auto& [n, t] : copies) named.emplace_back(n, &t);
  write_safetensors(cfg_.checkpoint_dir + "/experts.safetensors", named,
                    {{"d_model", std::to_string(cfg_.d_model)}, {"d_ff", std::to_string(cfg_.d_ff)},
                     {"steps", steps.dump()}, {"format", "moe.expert-server.v1"}});
}

}  // namespace moe::net
