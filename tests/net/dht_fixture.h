#pragma once
// DHT test helpers: a small loopback network and records.
#include <memory>
#include <string>
#include <vector>

#include "net/dht_node.h"

namespace moe::net::test {

// n nodes on 127.0.0.1, all bootstrapped from the first.
inline std::vector<std::unique_ptr<DhtNode>> start_network(int n) {
  std::vector<std::unique_ptr<DhtNode>> nodes;
  nodes.push_back(std::make_unique<DhtNode>(DhtConfig{}));
  for (int i = 1; i < n; ++i) {
    DhtConfig c;
    c.bootstrap = {nodes[0]->address()};
    c.bootstrap_timeout_s = 5;
    nodes.push_back(std::make_unique<DhtNode>(c));
  }
  return nodes;
}

inline ExpertRecord rec(const std::string& uid, const std::string& addr, double load = 0) {
  return ExpertRecord{uid, addr, load, 0};
}

}  // namespace moe::net::test
