// Scale study of expert discovery over the DHT (scripts/dht_study.sh): N DhtNodes on loopback in
// this process, E experts of a 2-D grid "scale.0.i.j" announced in contiguous blocks by all of
// them, then one node looks every expert up, and a newly started node times its way to a grid
// prefix's top-k. Prints one JSON object.
//
// Usage: dht_scale [--nodes 256] [--experts 4096] [--batch 64] [--idle-s 20] [--ttl-s 600] [--k 4]
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <future>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "net/dht_node.h"
#include "net/identity.h"
#include "net/expert_directory.h"
#include "cli_checks.h"

using namespace moe::net;
using Clock = std::chrono::steady_clock;

namespace {

double secs_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Args {
  int nodes = 256, experts = 4096, batch = 64, k = 4;
  double idle_s = 20, ttl_s = 600;
  bool signed_records = false;  // --signed 1: every server node signs its records (docs/security.md)
};

// The options, with their defaults from Args; --help lists them.
void add_options(CLI::App& app, Args& a) {
  app.add_option("--nodes", a.nodes, "DHT nodes on loopback in this process")->check(CLI::Range(2, 1 << 20));
  app.add_option("--experts", a.experts, "experts of the grid, announced by all the nodes")->check(moe::cli::Positive);
  app.add_option("--batch", a.batch, "experts one announce call carries")->check(moe::cli::Positive);
  app.add_option("--k", a.k, "top-k of the grid prefix the new node looks for")->check(moe::cli::Positive);
  app.add_option("--idle-s", a.idle_s, "seconds the network idles before the lookups")->check(moe::cli::NonNegative);
  app.add_option("--ttl-s", a.ttl_s, "lifetime of a record, seconds")->check(moe::cli::Positive);
  app.add_option("--signed", a.signed_records, "1: every server node signs its records (docs/security.md)");
}

int64_t traffic(const std::vector<std::unique_ptr<DhtNode>>& nodes) {
  int64_t b = 0;
  for (const auto& n : nodes) b += n->stats().rx_bytes + n->stats().tx_bytes;
  return b;
}

// Runs f(i) for i in [0, n) on `threads` threads.
template <class F>
void parallel_for(int n, int threads, F f) {
  std::vector<std::thread> pool;
  std::atomic<int> next{0};
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (int i = next++; i < n; i = next++) f(i);
    });
  for (auto& th : pool) th.join();
}

}  // namespace

int main(int argc, char** argv) try {
  CLI::App app{"Scale study of expert discovery over the DHT; prints one JSON object"};
  Args a;
  add_options(app, a);
  CLI11_PARSE(app, argc, argv);
  const int side = static_cast<int>(std::ceil(std::sqrt(double(a.experts))));  // grid side x side
  auto uid = [&](int e) { return "scale.0." + std::to_string(e / side) + "." + std::to_string(e % side); };
  nlohmann::json out{{"nodes", a.nodes}, {"experts", a.experts}, {"grid", {side, side}}, {"ttl_s", a.ttl_s},
                     {"signed", a.signed_records}};

  // 1. The network: node 0, then the others bootstrapping from a random earlier node.
  std::mt19937 rng(1);
  auto t0 = Clock::now();
  std::vector<std::unique_ptr<DhtNode>> nodes;
  // Signing identities (RSA 2048, 8-bit proof of work), made before the clock starts.
  std::vector<std::shared_ptr<const moe::net::NodeIdentity>> ids(a.nodes);
  if (a.signed_records) {
    const auto tk = Clock::now();
    parallel_for(a.nodes, 4, [&](int n) {
      ids[n] = std::make_shared<const moe::net::NodeIdentity>(moe::net::NodeIdentity::ephemeral(8));
    });
    out["identities_s"] = secs_since(tk);
    t0 = Clock::now();
  }
  {
    DhtConfig c0;
    c0.identity = ids[0];
    nodes.push_back(std::make_unique<DhtNode>(c0));
  }
  for (int i = 1; i < a.nodes; ++i) {
    DhtConfig c;
    c.bootstrap = {nodes[std::uniform_int_distribution<int>(0, i - 1)(rng)]->address()};
    c.identity = ids[i];
    nodes.push_back(std::make_unique<DhtNode>(c));
  }
  out["start_s"] = secs_since(t0);
  std::this_thread::sleep_for(std::chrono::seconds(3));  // let routing tables fill

  // 2. Store: node n announces the contiguous block of experts [n*E/N, (n+1)*E/N) as server n.
  std::vector<double> store_s(a.nodes, 0);
  std::vector<int> stored(a.nodes, 0);
  const int64_t bytes0 = traffic(nodes);
  t0 = Clock::now();
  parallel_for(a.nodes, 16, [&](int n) {
    std::vector<ExpertRecord> recs;
    for (int e = int(int64_t(n) * a.experts / a.nodes); e < int(int64_t(n + 1) * a.experts / a.nodes); ++e)
      recs.push_back({uid(e), "127.0.0.1:" + std::to_string(20000 + n), 0, 0});
    const auto t = Clock::now();
    stored[n] = nodes[n]->announce(recs, a.ttl_s, 30);
    store_s[n] = secs_since(t);
  });
  int64_t puts = 0, put_failures = 0;
  for (const auto& n : nodes) puts += n->stats().puts, put_failures += n->stats().put_failures;
  out["store"] = {{"wall_s", secs_since(t0)},
                  {"records_stored", std::accumulate(stored.begin(), stored.end(), 0)},
                  {"success_rate", double(std::accumulate(stored.begin(), stored.end(), 0)) / a.experts},
                  {"puts", puts},
                  {"put_success_rate", puts ? 1.0 - double(put_failures) / double(puts) : 0.0},
                  {"mean_announce_s", std::accumulate(store_s.begin(), store_s.end(), 0.0) / a.nodes},
                  {"max_announce_s", *std::max_element(store_s.begin(), store_s.end())},
                  {"traffic_bytes", traffic(nodes) - bytes0}};

  // 3. Get: the last node looks every expert up, `batch` uids per get() call.
  auto& reader = *nodes.back();
  std::vector<double> get_s;
  int found = 0;
  t0 = Clock::now();
  for (int e0 = 0; e0 < a.experts; e0 += a.batch) {
    std::vector<std::string> uids;
    for (int e = e0; e < std::min(a.experts, e0 + a.batch); ++e) uids.push_back(uid(e));
    const auto t = Clock::now();
    auto got = reader.get(uids, 10);
    get_s.push_back(secs_since(t));
    for (const auto& r : got) found += !r.empty();
  }
  out["get"] = {{"wall_s", secs_since(t0)},
                {"found", found},
                {"success_rate", double(found) / a.experts},
                {"batch", a.batch},
                {"mean_batch_s", std::accumulate(get_s.begin(), get_s.end(), 0.0) / double(get_s.size())},
                {"max_batch_s", *std::max_element(get_s.begin(), get_s.end())},
                {"reader_get_failures", reader.stats().get_failures}};

  // 4. Idle maintenance traffic (no puts or gets; pings, routing-table upkeep).
  const int64_t idle0 = traffic(nodes);
  std::this_thread::sleep_for(std::chrono::duration<double>(a.idle_s));
  const double idle_bytes = double(traffic(nodes) - idle0);
  out["traffic"] = {{"idle_bytes_per_node_per_min", idle_bytes / a.nodes / (a.idle_s / 60)},
                    {"total_bytes_per_node", double(traffic(nodes)) / a.nodes},
                    {"note", "UDP payload bytes (rx + tx) counted by DhtNode's socket; all nodes on loopback"}};

  // 5. A new node: bootstrap, then the grid beam search for the top-k of random gate scores (all
  // experts are alive, so a beam of k is exact); compared with the brute-force top-k.
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> scores{std::vector<float>(side), std::vector<float>(side)};
  for (auto& d : scores)
    for (auto& s : d) s = normal(rng);
  std::vector<std::pair<double, std::string>> all;
  for (int e = 0; e < a.experts; ++e) all.push_back({double(scores[0][e / side]) + scores[1][e % side], uid(e)});
  std::sort(all.begin(), all.end(), [](auto& x, auto& y) { return x.first > y.first; });
  t0 = Clock::now();
  DhtConfig c;
  c.bootstrap = {nodes[std::uniform_int_distribution<int>(0, a.nodes - 1)(rng)]->address()};
  DhtNode newcomer(c);
  const double boot_s = secs_since(t0);
  ExpertDirectory dir(newcomer, {.cache_s = 0, .timeout_s = 10});
  auto top = dir.beam_search("scale.0", scores, a.k, a.k);
  bool exact = int(top.size()) == std::min(a.k, a.experts);
  for (size_t i = 0; exact && i < top.size(); ++i) exact = top[i].uid == all[i].second;
  out["newcomer"] = {{"bootstrap_s", boot_s}, {"to_top_k_s", secs_since(t0)}, {"k", a.k}, {"exact", exact},
                     {"beam_search_gets", newcomer.stats().gets}};
  std::cout << out.dump(2) << std::endl;
  return 0;
} catch (const std::exception& e) {
  std::cerr << e.what() << std::endl;
  return 1;
}
