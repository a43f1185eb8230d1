// moe serve-experts: host experts for a decentralized swarm. The server announces its experts in
// the DHT every T seconds (records valid for 2T), saves them every few minutes and on SIGTERM or
// SIGINT, and reloads them on restart.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "commands.h"
#include "core/error.h"
#include "core/stop_signals.h"
#include "core/threading.h"
#include "net/dht_node.h"
#include "net/identity.h"
#include "net/expert_server.h"
#include "remote.h"
#include "cli_checks.h"

namespace moe::cli {

namespace {

struct ServeArgs {
  std::vector<std::string> experts;
  int d_model = 0, d_ff = 0;
  std::string listen = "127.0.0.1:0";
  std::vector<std::string> bootstrap;
  std::string dht_listen;  // default: the --listen host, any port
  std::string checkpoint, init_from;
  int threads = 0;
  float lr = 3e-3f;
  uint64_t seed = 0;
  double announce_every = 30, save_every = 300;
  double fail_rate = 0, delay_ms = 0;
  std::string attack;
  bool no_gradient_guard = false;
  std::string identity;  // default: <checkpoint>/identity, or a fresh in-memory one
  double rate_limit = 0;   // rows per second per client
  double rate_burst = 2;   // seconds of rate_limit a client may use at once
  int pow_bits = 16;
  bool tls = true;  // --no-tls: plaintext (old clients, or to measure what TLS costs)
  double grad_factor = 1e4, grad_max_rms = 10;
};

int run_serve(const ServeArgs& a) {
  set_num_threads(a.threads);
  net::ExpertServerConfig sc;
  for (const std::string& spec : a.experts)
    for (std::string& u : net::parse_expert_spec(spec)) sc.uids.push_back(std::move(u));
  sc.d_model = a.d_model;
  sc.d_ff = a.d_ff;
  sc.listen = a.listen;
  parse_host_port(a.listen, "--listen");
  sc.checkpoint_dir = a.checkpoint;
  sc.init_from = a.init_from;
  sc.lr = a.lr;
  sc.seed = a.seed;
  sc.fail_rate = a.fail_rate;
  sc.delay_ms = a.delay_ms;
  sc.attack = a.attack;
  sc.guard_gradients = !a.no_gradient_guard;
  sc.guard.factor = a.grad_factor;
  sc.guard.max_rms = a.grad_max_rms;
  sc.rate_limit.rows_per_s = a.rate_limit;
  sc.rate_limit.burst_s = a.rate_burst;

  net::DhtConfig dc;
  const auto [host, port] = parse_host_port(a.dht_listen.empty() ? a.listen.substr(0, a.listen.rfind(':')) + ":0" : a.dht_listen,
                                            "--dht-listen");
  dc.host = host;
  dc.port = port;
  dc.bootstrap = a.bootstrap;
  for (const std::string& b : a.bootstrap) parse_host_port(b, "--bootstrap");
  // Every record is signed: with a kept identity a restarted server is the same key, which the
  // clients that pinned its experts accept again.
  const std::string id_path = !a.identity.empty() ? a.identity : a.checkpoint.empty() ? "" : a.checkpoint + "/identity";
  dc.identity = std::make_shared<const net::NodeIdentity>(
      id_path.empty() ? net::NodeIdentity::ephemeral(a.pow_bits) : net::NodeIdentity::load_or_create(id_path, a.pow_bits));
  if (a.tls) {
    sc.tls = dc.identity;
    dc.announce_tls = true;
  }

  // Clients reach the server at the address its records carry: a wildcard --listen is announced
  // with the DHT node's host.
  const std::string lhost = a.listen.substr(0, a.listen.rfind(':'));
  if (lhost == "0.0.0.0" || lhost == "[::]") {
    if (host == "0.0.0.0" || host == "[::]" || a.dht_listen.empty())
      throw Error("[serve] --listen " + a.listen + " needs --dht-listen with this machine's address (what clients connect to)");
    sc.advertise_host = host;
  }
  net::ExpertServer server(sc);
  net::DhtNode node(dc);
  const double T = a.announce_every;
  auto announce = [&] {
    std::vector<net::ExpertRecord> recs;
    const int64_t expires = net::now_unix_ms() + int64_t(2 * T * 1000);
    for (const std::string& u : sc.uids) recs.push_back({u, server.address(), server.load(), expires});
    return node.announce(recs, 2 * T);
  };
  int stored = announce();
  std::printf("serving %zu experts (%s .. %s) at %s, %s; DHT node %s%s; key %s\n", sc.uids.size(), sc.uids.front().c_str(),
              sc.uids.back().c_str(), server.address().c_str(),
              (server.reloaded() ? "reloaded from " + a.checkpoint : std::string("fresh weights")).c_str(),
              node.address().c_str(), stored == 0 ? " (announce failed; retrying)" : "", dc.identity->key_id().c_str());
  std::fflush(stdout);

  std::atomic<bool> stop{false};  // set by SIGINT or SIGTERM
  StopOnSignal stop_on_signal(stop);
  using clock = std::chrono::steady_clock;
  auto next_announce = clock::now() + std::chrono::duration_cast<clock::duration>(
                                          std::chrono::duration<double>(stored == int(sc.uids.size()) ? T : std::min(T, 1.0)));
  auto next_save = clock::now() + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(a.save_every));
  while (!stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto now = clock::now();
    if (now >= next_announce) {
      // A node alone in its network cannot store: try again each second until peers have joined.
      stored = announce();
      const double wait = stored == int(sc.uids.size()) ? T : std::min(T, 1.0);
      next_announce = now + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(wait));
    }
    if (!a.checkpoint.empty() && a.save_every > 0 && now >= next_save) {
      server.save();
      next_save = now + std::chrono::duration_cast<clock::duration>(std::chrono::duration<double>(a.save_every));
    }
  }
  server.shutdown();
  server.save();
  const auto st = server.stats();
  std::printf("stopped: %lld forward and %lld backward calls in %lld + %lld batches, %lld rejected "
              "(%lld gradients rejected, %lld calls of refused clients), %lld over a client's rate limit%s\n",
              (long long)st.forward_calls, (long long)st.backward_calls, (long long)st.forward_batches,
              (long long)st.backward_batches, (long long)st.rejected, (long long)st.gradients.rejected,
              (long long)st.gradients.refused_calls, (long long)st.rate_limit.limited_calls,
              a.checkpoint.empty() ? "" : ("; experts saved in " + a.checkpoint).c_str());
  return 0;
}

}  // namespace

Runner add_serve_experts(CLI::App& app) {
  auto a = std::make_shared<ServeArgs>();
  CLI::App* c = app.add_subcommand("serve-experts", "host experts for a decentralized swarm (gRPC server + DHT node)");
  c->add_option("--experts", a->experts, "uids to host, e.g. ffn.0.[0:16] (expert i of MoE layer l is PREFIX.l.i); repeatable")->required()->expected(1, -1);
  c->add_option("--d-model", a->d_model, "model width")->required()->check(moe::cli::Positive);
  c->add_option("--d-ff", a->d_ff, "expert hidden width")->required()->check(moe::cli::Positive);
  c->add_option("--listen", a->listen, "HOST:PORT of the gRPC server (port 0: any)")->capture_default_str();
  c->add_option("--bootstrap", a->bootstrap, "HOST:PORT of any DHT node of the swarm (none: start a new swarm)")->expected(1, -1);
  c->add_option("--dht-listen", a->dht_listen, "HOST:PORT of this server's DHT node (default: the --listen host, any port)");
  c->add_option("--checkpoint", a->checkpoint, "directory where the experts and their optimizer state are saved and reloaded");
  c->add_option("--init-from", a->init_from, "start the experts from a trained model checkpoint's MoE layers");
  c->add_option("--threads", a->threads, "compute threads (default: all cores)")->check(moe::cli::NonNegative);
  c->add_option("--lr", a->lr, "the experts' largest learning rate (clients send theirs, capped by this)")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--seed", a->seed, "seed of fresh experts")->capture_default_str();
  c->add_option("--announce-every", a->announce_every, "seconds between DHT announcements (records live twice as long)")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--save-every", a->save_every, "seconds between saves (0: only on exit)")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--fail-rate", a->fail_rate, "testing aid: fail this fraction of calls at random")->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->add_option("--delay-ms", a->delay_ms, "testing aid: answer every call this many ms late")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--attack", a->attack, "testing aid: lie in every forward answer (scale: x100, nan, random, flip: negated)")
      ->check(CLI::IsMember({"scale", "nan", "random", "flip"}));
  c->add_option("--grad-factor", a->grad_factor, "reject a client gradient whose RMS exceeds this times the expert's recent median")->capture_default_str();
  c->add_option("--grad-max-rms", a->grad_max_rms, "reject a client gradient above this RMS before the median is known")->capture_default_str();
  c->add_flag("--no-gradient-guard", a->no_gradient_guard, "apply every finite client gradient (to measure what the guard costs)");
  c->add_option("--identity", a->identity, "key pair that signs this server's records: FILE.pem/.crt, created on first start (default: CHECKPOINT/identity, or a fresh one per run)");
  c->add_option("--rate-limit", a->rate_limit, "rows per second each client may send (its TLS client key, else its connection); 0: no limit")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--rate-burst", a->rate_burst, "seconds of --rate-limit a client may use at once")->capture_default_str()->check(moe::cli::Positive);
  c->add_flag("--tls,!--no-tls", a->tls, "serve over TLS with the identity's certificate (the default; --no-tls: plaintext); clients pin it to the key of the signed records")->capture_default_str();
  c->add_option("--pow-bits", a->pow_bits, "proof of work of the identity (leading zero bits; clients require theirs)")->capture_default_str()->check(CLI::Range(0, 40));
  return [a] { return run_serve(*a); };
}

}  // namespace moe::cli
