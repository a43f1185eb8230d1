#pragma once
// Discovery of expert servers without a coordinator: every server and client runs one node of an
// OpenDHT (Kademlia) network. Servers store a record per expert uid ("PREFIX.l.i", or "PREFIX.l.i.j"
// for a 2-D grid) and, for every proper prefix of a uid with at least two components ("PREFIX.l",
// "PREFIX.l.i"), a prefix record naming the next coordinate, so that a client can find the live
// experts under a prefix without listing the whole grid. Records carry their own expiry; readers
// drop expired ones (the DHT's storage expiry only collects garbage).
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace moe::net {

struct ExpertRecord {
  std::string uid;         // "ffn.0.3"
  std::string address;     // "host:port" of the gRPC server hosting it
  double load = 0;         // the server's queued rows when it announced
  int64_t expires_ms = 0;  // unix time in ms after which the record is dead
  // Filled on reading: the key that signed the record (hex id; "" unsigned; a record whose
  // signature does not check is dropped, see record_signature.h) and the signer's proof of work.
  std::string key{};
  uint64_t pow = 0;
  bool tls = false;  // the server speaks TLS with the certificate of `key` (tls.h)
};

class NodeIdentity;

struct DhtConfig {
  std::string host = "127.0.0.1";        // address the node's UDP socket binds to
  int port = 0;                          // 0: any free port
  std::vector<std::string> bootstrap;    // "host:port" of nodes already in the network
  double bootstrap_timeout_s = 10;       // no answer from any bootstrap node: moe::Error
  // Signs what this node announces (record_signature.h), with its proof of work in every record;
  // nullptr: unsigned records (readers that require signatures ignore them).
  std::shared_ptr<const NodeIdentity> identity;
  bool announce_tls = false;  // records say the server speaks TLS (signed with the rest)
  // Which records this node's readers see (the client's trust policy, record_trust.h): called with
  // each live record read, expert = false for a prefix record (uid: the child prefix); empty: all.
  std::function<bool(const ExpertRecord&, bool expert)> accept;
};

struct DhtStats {
  int64_t puts = 0, put_failures = 0;
  int64_t gets = 0, get_failures = 0;
  int64_t rx_bytes = 0, tx_bytes = 0;    // the node's UDP payload bytes (all DHT traffic)
  int64_t expired = 0;                   // records read past their own expiry (dead or replayed)
  int64_t forged = 0;                    // records read whose signature does not check
};

// One node of the DHT (its own threads; all methods thread-safe). Logging is off; nodes use a
// network id of their own, so they never join the public OpenDHT network.
class DhtNode {
 public:
  // Starts the node; throws moe::Error on a port in use, a bootstrap address that does not parse,
  // or no bootstrap node answering within bootstrap_timeout_s.
  explicit DhtNode(const DhtConfig& cfg);
  ~DhtNode();
  DhtNode(const DhtNode&) = delete;
  DhtNode& operator=(const DhtNode&) = delete;

  int port() const;              // the bound UDP port
  std::string address() const;   // "host:port", for others to bootstrap from

  // Stores the records and their prefix records, each valid for ttl_s from now (the records'
  // expires_ms is ignored). A later announce by the same server (same address) replaces its
  // earlier values. Blocks until stored or timeout_s; returns how many records were stored
  // together with all their prefix records (stats() counts the individual puts).
  int announce(const std::vector<ExpertRecord>& records, double ttl_s, double timeout_s = 5);

  // The live records of each uid (empty: none found before timeout_s, or all expired). Where
  // several servers host a uid, all their live records are returned, lowest load first.
  std::vector<std::vector<ExpertRecord>> get(const std::vector<std::string>& uids, double timeout_s = 5);

  // Live children of a prefix: for "ffn.0" the coordinates i with a live "ffn.0.i" (an expert or
  // a prefix of one), each with the records found for it (empty vector for a prefix-only child).
  std::map<int, std::vector<ExpertRecord>> children(const std::string& prefix, double timeout_s = 5);

  DhtStats stats() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// "ffn.0.[0:16]" -> {"ffn.0.0", ..., "ffn.0.15"}; "ffn.1.[0:4].[0:4]" -> 16 uids of a 2-D grid;
// a plain uid stands for itself. moe::Error on anything that does not parse.
std::vector<std::string> parse_expert_spec(const std::string& spec);

// Unix time in milliseconds.
int64_t now_unix_ms();

}  // namespace moe::net
