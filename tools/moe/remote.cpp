#include "remote.h"

#include <cstdio>
#include <fstream>

#include "core/error.h"
#include "cli_checks.h"

namespace moe::cli {

std::pair<std::string, int> parse_host_port(const std::string& s, const std::string& flag) {
  const size_t c = s.rfind(':');
  if (c == std::string::npos || c == 0 || c + 1 == s.size())
    throw Error("[cli] " + flag + " '" + s + "': expected HOST:PORT");
  int port = -1;
  try {
    size_t n = 0;
    port = std::stoi(s.substr(c + 1), &n);
    if (n != s.size() - c - 1) port = -1;
  } catch (const std::exception&) {
  }
  if (port < 0 || port > 65535) throw Error("[cli] " + flag + " '" + s + "': the port must be a number in 0..65535");
  return {s.substr(0, c), port};
}

void add_remote_options(CLI::App* c, RemoteArgs& a) {
  c->add_option("--remote-experts", a.bootstrap, "the MoE layers' experts live on expert servers: HOST:PORT of any DHT node of their swarm");
  c->add_option("--remote-prefix", a.prefix, "uid prefix of the remote experts (expert i of MoE layer l is PREFIX.l.i; on a grid, PREFIX.l.i.j)")->capture_default_str();
  c->add_option("--dht-listen", a.dht_listen, "HOST:PORT of this client's own DHT node (port 0: any)")->capture_default_str();
  c->add_option("--k-min", a.calls.k_min, "answered experts a token waits for")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--forward-timeout", a.calls.forward_timeout_s, "deadline of a layer's forward calls (s)")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--backward-timeout", a.calls.backward_timeout_s, "deadline of a layer's backward calls (s)")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--grace", a.calls.grace_s, "extra wait once every token has k_min answers (s)")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--lookup-timeout", a.lookup_timeout_s, "longest wait for a DHT lookup inside a step (s): dead DHT nodes make searches slow")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--hedge-after", a.calls.hedge_after_s, "send a call still pending after this long to a replica too (s)")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--output-factor", a.calls.output_factor, "an expert answer whose RMS is this many times off the layer's recent median is a failed call")->capture_default_str()->check(CLI::Range(1.0001, 1e30));
  c->add_flag("--no-output-validation", a.no_output_validation, "accept every finite expert answer, without size checks or canary rows (to measure what validation costs)");
  c->add_option("--trust-store", a.trust.store_path, "file of the expert uids' first-seen keys (trust on first use across runs; default: this run only)");
  c->add_option("--trusted-keys", a.trusted_keys_file, "permissioned swarm: accept only records signed by these keys (one hex key id per line)");
  c->add_option("--pow-bits", a.trust.pow_bits, "proof of work a server's key must carry")->capture_default_str()->check(CLI::Range(0, 40));
  c->add_option("--identity", a.identity, "this client's key pair, presented to TLS servers (which rate-limit and judge clients by key): FILE.pem/.crt, created on first use (default: a fresh one per run)");
  c->add_flag("--allow-unsigned", a.allow_unsigned, "also accept unsigned expert records (an open swarm of old servers)");
  c->add_option("--poison-gradients", a.calls.poison_gradients, "testing aid: act as a poisoning client, sending the experts gradients x1e6 (scale) or NaN (nan)")
      ->check(CLI::IsMember({"scale", "nan"}));
}

void add_replica_check_options(CLI::App* c, RemoteArgs& a) {
  c->add_option("--compare-replicas", a.calls.compare_fraction,
                "send this fraction of the expert answers to a second replica too and compare them; a server outvoted by two replicas is banned (replicas must serve the same weights)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->add_option("--compare-tolerance", a.calls.compare_tolerance, "relative RMS distance up to which two replicas' answers agree")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  c->add_option("--evidence-log", a.evidence_log, "append the evidence of every lie or undecided disagreement the replica comparison finds (JSON lines)");
}

RemoteSwarm::RemoteSwarm(const RemoteArgs& a, dist::ParallelLayout& layout) : evidence_log_(a.evidence_log) {
  if (layout.world.size() > 1) throw Error("[cli] --remote-experts does not combine with mpirun");
  net::RemoteCallConfig calls = a.calls;
  calls.validate_outputs = calls.canary_rows = !a.no_output_validation;
  if (a.prefix.empty() || a.prefix.find('.') != std::string::npos)
    throw Error("[cli] --remote-prefix '" + a.prefix + "': a non-empty name without dots");
  parse_host_port(a.bootstrap, "--remote-experts");
  const auto [host, port] = parse_host_port(a.dht_listen, "--dht-listen");
  net::DhtConfig dc;
  dc.host = host;
  dc.port = port;
  dc.bootstrap = {a.bootstrap};
  net::TrustConfig tc = a.trust;
  tc.require_signed = !a.allow_unsigned;
  if (!a.trusted_keys_file.empty()) tc.trusted_keys = net::read_trusted_keys(a.trusted_keys_file);
  trust_ = std::make_unique<net::RecordTrust>(tc);
  net::RecordTrust* trust = trust_.get();
  // An accepted record that says TLS pins its server's channel to the record's key.
  auto pins = std::make_shared<net::ServerPins>();
  dc.accept = [trust, pins](const net::ExpertRecord& r, bool expert) {
    if (!trust->accept(r, expert)) return false;
    if (r.tls) pins->pin(r.address, r.key);
    return true;
  };
  node_ = std::make_unique<net::DhtNode>(dc);
  net::ExpertDirectoryConfig dirc;
  dirc.timeout_s = a.lookup_timeout_s;
  dir_ = std::make_unique<net::ExpertDirectory>(*node_, dirc);
  ctx_ = std::make_shared<net::RemoteContext>(calls, std::make_shared<net::DirectoryLocator>(*dir_));
  ctx_->client.set_pins(pins);
  identity_ = std::make_shared<const net::NodeIdentity>(a.identity.empty() ? net::NodeIdentity::ephemeral(0)
                                                                           : net::NodeIdentity::load_or_create(a.identity, 0));
  ctx_->client.set_identity(identity_);
  auto ctx = ctx_;
  const std::string prefix = a.prefix;
  layout.remote_experts = [ctx, prefix](const dist::ParallelLayout::RemoteLayer& l) -> std::unique_ptr<ExpertBank> {
    return std::make_unique<net::RemoteExpertBank>(ctx, prefix + "." + std::to_string(l.layer), l.n_experts, l.d_model,
                                                   l.grid);
  };
}

void RemoteSwarm::write_evidence() {
  const std::vector<net::ReplicaEvidence> ev = ctx_->evidence.take();
  if (ev.empty()) return;
  std::ofstream log;
  if (!evidence_log_.empty()) {
    log.open(evidence_log_, std::ios::app);
    if (!log) throw Error("[cli] --evidence-log '" + evidence_log_ + "': cannot open it for appending");
  }
  for (const net::ReplicaEvidence& e : ev) {
    const net::ReplicaVerdict& v = e.verdict;
    const bool lie = v.kind == net::ReplicaVerdict::Lie;
    std::string who;
    for (const std::string& l : v.liars) who += (who.empty() ? "" : ", ") + l;
    std::fprintf(stderr, "moe: replica check of %s (%lld rows): %s\n", e.uid.c_str(), (long long)e.rows,
                 lie ? ("server " + who + " outvoted by two replicas, banned").c_str()
                     : "replicas disagree, no majority (answer kept)");
    if (log) {
      nlohmann::json j = {{"uid", e.uid}, {"rows", e.rows}, {"verdict", lie ? "lie" : "undecided"},
                          {"servers", v.servers}, {"distance_to_first", v.distance}, {"liars", v.liars}};
      log << j.dump() << "\n";
    }
  }
  if (log && !log.flush()) throw Error("[cli] --evidence-log '" + evidence_log_ + "': write failed");
}

nlohmann::json RemoteSwarm::take_step_metrics() {
  write_evidence();
  const ExpertCallSummary s = ctx_->stats.take();
  return {{"remote_calls", s.calls},        {"remote_failures", s.failures},
          {"remote_timeouts", s.timeouts},  {"remote_invalid", s.invalid},
          {"remote_banned_servers", ctx_->bans.banned_now()},
          {"remote_records_rejected", trust_->stats().rejected() + node_->stats().forged},  {"remote_below_k_min", s.below_k_min},
          {"remote_no_expert", s.no_expert}, {"remote_unavailable", s.unavailable},
          {"remote_replica_checks", s.replica_checks}, {"remote_replica_lies", s.replica_lies},
          {"remote_replica_undecided", s.replica_undecided},
          {"remote_latency_p50_ms", s.latency_p50_ms},
          {"remote_latency_p99_ms", s.latency_p99_ms}};
}

std::string RemoteSwarm::summary(const nlohmann::json& m) const {
  char b[240];
  std::snprintf(b, sizeof b, "calls %lld, failed %lld (%lld timeouts, %lld invalid answers), experts unreachable %lld, below k_min %lld, p50 %.1f ms, p99 %.1f ms",
                (long long)m.value("remote_calls", 0), (long long)m.value("remote_failures", 0),
                (long long)m.value("remote_timeouts", 0), (long long)m.value("remote_invalid", 0),
                (long long)m.value("remote_unavailable", 0),
                (long long)m.value("remote_below_k_min", 0),
                m.value("remote_latency_p50_ms", 0.0), m.value("remote_latency_p99_ms", 0.0));
  return b;
}

}  // namespace moe::cli
