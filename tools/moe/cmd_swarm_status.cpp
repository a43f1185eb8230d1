// moe swarm-status BOOTSTRAP: the live experts of a swarm, found by walking the prefix records
// of PREFIX.0 .. PREFIX.(--layers - 1) through any node, each with its server, key, load and the server's answer to an
// Info call (protocol version, optimizer steps, the server's rejected requests and gradients and
// refused calls), as a table or --json. Records the trust policy rejects are counted, not listed.
#include <chrono>
#include <cstdio>
#include <future>
#include <thread>
#include <map>
#include <set>

#include "commands.h"
#include "core/error.h"
#include "net/dht_node.h"
#include "net/expert_client.h"
#include "net/quiet_logs.h"
#include "net/record_trust.h"
#include "remote.h"
#include "cli_checks.h"

namespace moe::cli {
namespace {

struct StatusArgs {
  std::string bootstrap, prefix = "ffn", dht_listen = "127.0.0.1:0", trusted_keys;
  bool json = false, allow_unsigned = false;
  int pow_bits = 16, max_layers = 64;
  double timeout_s = 2;
};

int run_status(const StatusArgs& a) {
  net::quiet_third_party_logs();
  parse_host_port(a.bootstrap, "BOOTSTRAP");
  const auto [host, port] = parse_host_port(a.dht_listen, "--dht-listen");
  net::TrustConfig tc;
  tc.pow_bits = a.pow_bits;
  tc.require_signed = !a.allow_unsigned;
  if (!a.trusted_keys.empty()) tc.trusted_keys = net::read_trusted_keys(a.trusted_keys);
  net::RecordTrust trust(tc);
  net::DhtConfig dc;
  dc.host = host;
  dc.port = port;
  dc.bootstrap = {a.bootstrap};
  auto pins = std::make_shared<net::ServerPins>();  // TLS servers are asked over pinned TLS
  dc.accept = [&trust, pins](const net::ExpertRecord& r, bool expert) {
    if (!trust.accept(r, expert)) return false;
    if (r.tls) pins->pin(r.address, r.key);
    return true;
  };
  net::DhtNode node(dc);

  // Depth-first over the prefix records from each layer's prefix (records start at "PREFIX.l": the
  // layers are asked for one by one), a grid's inner prefixes included. A node that has just joined
  // may see part of a key's values on its first searches: the walk is repeated (1 s apart, at most
  // 4 times) until a pass adds nothing.
  std::vector<net::ExpertRecord> experts;
  for (int pass = 0; pass < 4; ++pass) {
    if (pass > 0) std::this_thread::sleep_for(std::chrono::seconds(1));
    const size_t before = experts.size();
    std::vector<std::string> level;
    for (int l = 0; l < a.max_layers; ++l) level.push_back(a.prefix + "." + std::to_string(l));
    for (int depth = 0; depth < 6 && !level.empty(); ++depth) {
      // A level's prefixes are asked at once (DhtNode is thread-safe).
      std::vector<std::future<std::map<int, std::vector<net::ExpertRecord>>>> asks;
      for (const std::string& p : level)
        asks.push_back(std::async(std::launch::async, [&node, p, &a] { return node.children(p, a.timeout_s); }));
      std::vector<std::string> next;
      for (size_t i = 0; i < level.size(); ++i)
        for (auto& [c, recs] : asks[i].get()) {
          if (recs.empty()) next.push_back(level[i] + "." + std::to_string(c));
          for (auto& r : recs)
            if (std::none_of(experts.begin(), experts.end(), [&](const auto& x) { return x.uid == r.uid && x.address == r.address; }))
              experts.push_back(r);
        }
      level = std::move(next);
    }
    if (pass > 0 && experts.size() == before) break;
  }
  std::sort(experts.begin(), experts.end(), [](const auto& x, const auto& y) {
    return x.uid != y.uid ? x.uid < y.uid : x.address < y.address;
  });

  net::ExpertClient client;
  client.set_pins(pins);
  nlohmann::json out = {{"experts", nlohmann::json::array()}, {"servers", nlohmann::json::object()}};
  std::map<std::string, int64_t> failed;
  for (const auto& r : experts) {
    nlohmann::json e = {{"uid", r.uid}, {"address", r.address}, {"key", r.key}, {"tls", r.tls}, {"load", r.load},
                        {"expires_in_s", double(r.expires_ms - net::now_unix_ms()) / 1000}};
    try {
      const net::ExpertClient::Info i = client.info(r.address, r.uid, a.timeout_s);
      e["version"] = i.version;
      e["steps"] = i.steps;
      e["d_model"] = i.d_model;
      e["d_ff"] = i.d_ff;
      out["servers"][r.address] = {{"rejected", i.rejected}, {"gradients_rejected", i.gradients_rejected},
                                   {"refused_calls", i.refused_calls}, {"rate_limited_calls", i.rate_limited_calls}, {"info_failures", 0}};
    } catch (const Error& err) {
      e["error"] = err.what();
      ++failed[r.address];
    }
    out["experts"].push_back(e);
  }
  for (auto& [addr, n] : failed) {
    if (!out["servers"].contains(addr)) out["servers"][addr] = nlohmann::json::object();
    out["servers"][addr]["info_failures"] = n;
  }
  const auto ts = trust.stats();
  out["records_rejected"] = {{"unsigned", ts.unsigned_}, {"weak_proof_of_work", ts.weak_pow},
                             {"untrusted_key", ts.untrusted}, {"other_key_than_pinned", ts.wrong_key},
                             {"over_cap", ts.capped}, {"forged", node.stats().forged},
                             {"expired", node.stats().expired}};
  if (a.json) {
    std::printf("%s\n", out.dump().c_str());
    return 0;
  }
  std::printf("%-16s %-22s %-16s %6s %4s %8s  %s\n", "uid", "server", "key", "load", "ver", "steps", "status");
  for (const auto& e : out["experts"]) {
    const std::string key = e["key"].get<std::string>();
    std::printf("%-16s %-22s %-16s %6.0f %4s %8s  %s\n", e["uid"].get<std::string>().c_str(),
                e["address"].get<std::string>().c_str(), key.empty() ? "(unsigned)" : key.substr(0, 16).c_str(),
                e["load"].get<double>(), e.contains("version") ? std::to_string(e["version"].get<int>()).c_str() : "-",
                e.contains("steps") ? std::to_string(e["steps"].get<int64_t>()).c_str() : "-",
                e.contains("error") ? e["error"].get<std::string>().c_str() : "ok");
  }
  std::printf("%zu experts on %zu servers\n", out["experts"].size(), out["servers"].size());
  for (const auto& [addr, s] : out["servers"].items())
    std::printf("  %s: %lld requests rejected, %lld gradients rejected, %lld calls of refused clients, %lld over a rate limit, %lld Info calls failed\n",
                addr.c_str(), (long long)s.value("rejected", 0), (long long)s.value("gradients_rejected", 0),
                (long long)s.value("refused_calls", 0), (long long)s.value("rate_limited_calls", 0), (long long)s.value("info_failures", 0));
  std::printf("records ignored: %s\n", out["records_rejected"].dump().c_str());
  return 0;
}

}  // namespace

Runner add_swarm_status(CLI::App& app) {
  auto a = std::make_shared<StatusArgs>();
  CLI::App* c = app.add_subcommand("swarm-status", "list the live experts of a decentralized swarm with their servers, keys and state");
  c->add_option("bootstrap", a->bootstrap, "HOST:PORT of any DHT node of the swarm")->required();
  c->add_option("--prefix", a->prefix, "uid prefix to list (expert i of MoE layer l is PREFIX.l.i)")->capture_default_str();
  c->add_option("--dht-listen", a->dht_listen, "HOST:PORT of this tool's own DHT node")->capture_default_str();
  c->add_option("--layers", a->max_layers, "MoE layers to look for (PREFIX.0 .. PREFIX.N-1)")->capture_default_str()->check(CLI::Range(1, 4096));
  c->add_option("--timeout", a->timeout_s, "deadline of each DHT lookup and Info call (s)")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--trusted-keys", a->trusted_keys, "list only records signed by these keys (one hex key id per line)");
  c->add_option("--pow-bits", a->pow_bits, "proof of work a server's key must carry")->capture_default_str()->check(CLI::Range(0, 40));
  c->add_flag("--allow-unsigned", a->allow_unsigned, "also list unsigned records");
  c->add_flag("--json", a->json, "one JSON object instead of the table");
  return [a] { return run_status(*a); };
}

}  // namespace moe::cli
