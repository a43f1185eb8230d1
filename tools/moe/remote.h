#pragma once
// The CLI as a client of a decentralized swarm of expert servers (--remote-experts HOST:PORT): its
// own DHT node bootstrapped from any node of the swarm, the expert directory, and the remote
// expert banks every MoE layer gets.
#include <memory>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "dist/communicator.h"
#include "net/dht_node.h"
#include "net/directory_locator.h"
#include "net/expert_directory.h"
#include "net/identity.h"
#include "net/record_trust.h"
#include "net/remote_expert_bank.h"

namespace moe::cli {

struct RemoteArgs {
  std::string bootstrap;       // --remote-experts: any DHT node of the swarm
  std::string prefix = "ffn";  // expert i of MoE layer l is PREFIX.l.i
  std::string dht_listen = "127.0.0.1:0";
  net::RemoteCallConfig calls;
  double lookup_timeout_s = 1;  // a DHT lookup waits at most this long inside a step
  bool no_output_validation = false;
  net::TrustConfig trust;
  std::string trusted_keys_file;  // --trusted-keys: permissioned mode
  bool allow_unsigned = false;
  std::string identity;      // --identity: this client's key pair (default: a fresh one per run)
  std::string evidence_log;  // --evidence-log: replica comparisons that found a lie, as JSON lines
};

void add_remote_options(CLI::App* c, RemoteArgs& a);
// Replica comparison (--compare-replicas, --evidence-log): for eval and generate, whose experts do
// not change.
void add_replica_check_options(CLI::App* c, RemoteArgs& a);

class RemoteSwarm {
 public:
  // Joins the swarm and makes every MoE layer of models built with `layout` remote.
  RemoteSwarm(const RemoteArgs& a, dist::ParallelLayout& layout);
  // This step's calls, failures, timeouts, tokens below k_min, latency p50/p99 (then reset).
  nlohmann::json take_step_metrics();
  std::string summary(const nlohmann::json& m) const;

 private:
  // Writes the replica comparisons' evidence since the last call: a line on stderr per lie or
  // undecided disagreement, and JSON lines to --evidence-log.
  void write_evidence();

  std::string evidence_log_;
  std::shared_ptr<const net::NodeIdentity> identity_;
  std::unique_ptr<net::RecordTrust> trust_;
  std::unique_ptr<net::DhtNode> node_;
  std::unique_ptr<net::ExpertDirectory> dir_;
  std::shared_ptr<net::RemoteContext> ctx_;
};

// "host:port" split; moe::Error naming the flag when it does not parse.
std::pair<std::string, int> parse_host_port(const std::string& s, const std::string& flag);

}  // namespace moe::cli
