// moe bench remote-experts: hivemind's benchmark_throughput.py setting on loopback. E experts on S
// expert servers (in this process, reached over loopback gRPC like any client would), C client
// threads each sending B-row batches to a random expert; samples/s for forward and for
// forward + backward (which also steps the expert's optimizer), beside the same work done by a
// local bank in this process, measured in the same run.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "commands.h"
#include "core/threading.h"
#include "moe/expert_bank_swiglu.h"
#include "net/expert_client.h"
#include "net/expert_server.h"
#include "train/adamw.h"
#include "cli_checks.h"

namespace moe::cli {
namespace {

struct RemoteBenchArgs {
  int experts = 16, servers = 4, d = 1024, f = 2730, batch = 2048, clients = 4, batches = 4, threads = 0;
  bool json = false;
};

// C clients x `batches` calls each; returns samples/s.
double remote_rate(const RemoteBenchArgs& a, const std::vector<std::string>& addr, const std::vector<float>& x,
                   bool backward) {
  std::atomic<int64_t> ok{0}, failed{0};
  const auto t0 = bench_clock::now();
  std::vector<std::thread> th;
  for (int c = 0; c < a.clients; ++c)
    th.emplace_back([&, c] {
      net::ExpertClient client;
      std::mt19937 rng(c + 1);
      for (int b = 0; b < a.batches; ++b) {
        const int e = int(rng() % a.experts);
        const std::string uid = "ffn.0." + std::to_string(e);
        const std::string& where = addr[e * a.servers / a.experts];
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        net::CallResult res;
        auto wait = [&](net::CallResult&& r) {
          std::lock_guard<std::mutex> lk(mu);
          res = std::move(r);
          done = true;
          cv.notify_all();
        };
        auto call = backward ? client.backward(where, uid, x.data(), x.data(), a.batch, a.d, 1e-4f, 600, 0, wait)
                             : client.forward(where, uid, x.data(), a.batch, a.d, 600, wait);
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return done; });
        (res.ok ? ok : failed) += 1;
      }
    });
  for (auto& t : th) t.join();
  const double s = seconds_since(t0);
  if (failed > 0) throw Error("[bench] " + std::to_string(failed.load()) + " remote calls failed");
  return double(ok.load()) * a.batch / s;
}

int run_remote_bench(const RemoteBenchArgs& a) {
  set_num_threads(a.threads);
  if (a.experts % a.servers != 0) throw Error("[bench] --servers must divide --experts");
  std::vector<std::unique_ptr<net::ExpertServer>> servers;
  std::vector<std::string> addr;
  for (int s = 0; s < a.servers; ++s) {
    net::ExpertServerConfig c;
    for (int e = s * a.experts / a.servers; e < (s + 1) * a.experts / a.servers; ++e) c.uids.push_back("ffn.0." + std::to_string(e));
    c.d_model = a.d;
    c.d_ff = a.f;
    c.seed = uint64_t(s);
    c.max_rows = a.batch;
    servers.push_back(std::make_unique<net::ExpertServer>(c));
    addr.push_back(servers.back()->address());
  }
  Rng rng(7);
  Tensor xt({a.batch, a.d});
  fill_normal(xt, rng, 1.0f);
  const std::vector<float> x(xt.data(), xt.data() + xt.numel());

  // The same experts local: one single-expert bank and AdamW per expert (what a server holds), the
  // same C x B batches to the same random experts; run one batch at a time with all threads, and
  // with C threads at once (the servers' execution without gRPC). The better is the baseline.
  struct LocalExpert {
    std::unique_ptr<SwiGLUExpertBank> bank;
    std::unique_ptr<AdamW> opt;
    ParamList ps;
    std::mutex mu;
  };
  std::vector<LocalExpert> local(a.experts);
  for (int e = 0; e < a.experts; ++e) {
    local[e].bank = std::make_unique<SwiGLUExpertBank>("local" + std::to_string(e),
                                                        SwiGLUBankConfig{.d_model = a.d, .d_ff = a.f, .n_experts = 1});
    local[e].bank->params(local[e].ps);
    for (Param* p : local[e].ps) fill_normal(p->w, rng, 0.02f);
    local[e].opt = std::make_unique<AdamW>(local[e].ps, AdamWConfig{});
  }
  auto one_batch = [&](int e, bool backward, std::vector<float>& y, std::vector<float>& dx) {
    LocalExpert& le = local[e];
    std::lock_guard<std::mutex> lk(le.mu);
    le.bank->forward(y.data(), x.data(), {0, a.batch});
    if (backward) {
      for (Param* p : le.ps) p->zero_grad();
      le.bank->backward(dx.data(), x.data());
      le.opt->step(1e-4f);
    }
  };
  auto local_rate = [&](bool backward, bool concurrent) {
    const auto t0 = bench_clock::now();
    auto client = [&](int c) {
      std::mt19937 r(c + 1);
      std::vector<float> y(size_t(a.batch) * a.d), dx(y.size());
      for (int b = 0; b < a.batches; ++b) one_batch(int(r() % a.experts), backward, y, dx);
    };
    if (concurrent) {
      std::vector<std::thread> th;
      for (int c = 0; c < a.clients; ++c) th.emplace_back(client, c);
      for (auto& t : th) t.join();
    } else {
      for (int c = 0; c < a.clients; ++c) client(c);
    }
    return double(a.clients) * a.batches * a.batch / seconds_since(t0);
  };
  remote_rate(a, addr, x, false);  // warm-up: channels, first allocations
  local_rate(false, false);
  const double lf1 = local_rate(false, false), lfc = local_rate(false, true), rf = remote_rate(a, addr, x, false);
  const double lb1 = local_rate(true, false), lbc = local_rate(true, true), rb = remote_rate(a, addr, x, true);
  const double lf = std::max(lf1, lfc), lb = std::max(lb1, lbc);
  int64_t calls = 0, batches = 0;
  for (auto& s : servers) calls += s->stats().forward_calls + s->stats().backward_calls,
                         batches += s->stats().forward_batches + s->stats().backward_batches;
  std::printf("remote experts on loopback: %d experts (d %d, d_ff %d) on %d servers, %d clients x %d batches of %d rows, %d threads\n",
              a.experts, a.d, a.f, a.servers, a.clients, a.batches, a.batch, num_threads());
  std::printf("  forward:            remote %8.0f samples/s; local %8.0f one batch at a time, %8.0f with %d threads at once; remote/best local %.2f\n",
              rf, lf1, lfc, a.clients, rf / lf);
  std::printf("  forward + backward: remote %8.0f samples/s; local %8.0f one batch at a time, %8.0f with %d threads at once; remote/best local %.2f\n",
              rb, lb1, lbc, a.clients, rb / lb);
  std::printf("  server batching: %lld calls in %lld GEMM batches\n", (long long)calls, (long long)batches);
  if (a.json) {
    nlohmann::json j = {{"experts", a.experts}, {"servers", a.servers}, {"d_model", a.d}, {"d_ff", a.f},
                        {"batch", a.batch}, {"clients", a.clients}, {"batches_per_client", a.batches},
                        {"threads", num_threads()}, {"forward_remote", rf}, {"forward_local", lf},
                        {"forward_ratio", rf / lf}, {"forward_local_serial", lf1}, {"forward_local_concurrent", lfc},
                        {"fwd_bwd_remote", rb}, {"fwd_bwd_local", lb}, {"fwd_bwd_local_serial", lb1},
                        {"fwd_bwd_local_concurrent", lbc},
                        {"fwd_bwd_ratio", rb / lb}, {"calls", calls}, {"gemm_batches", batches}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}

}  // namespace

void add_remote_bench(CLI::App& bench, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto a = std::make_shared<RemoteBenchArgs>();
  CLI::App* c = bench.add_subcommand("remote-experts", "throughput of experts on loopback expert servers vs the same experts local");
  c->add_option("--experts", a->experts, "experts")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--servers", a->servers, "expert servers (they divide the experts)")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--d-model", a->d, "expert width")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--d-ff", a->f, "expert hidden width (2730: the FLOPs of hivemind's 1024 -> 4096 -> 1024 FFN)")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--batch-size", a->batch, "rows per call")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--clients", a->clients, "concurrent client threads")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--batches", a->batches, "calls per client")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--threads", a->threads, "compute threads (default: all cores)")->check(moe::cli::NonNegative);
  c->add_flag("--json", a->json, "end with one JSON line");
  out.emplace_back(c, [a] { return run_remote_bench(*a); });
}

}  // namespace moe::cli
