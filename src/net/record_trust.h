#pragma once
// A client's trust in the expert records it reads from the DHT. A record is accepted only if
//  - it is signed (OpenDHT checks the signature and never delivers a forged one),
//  - its signer carries a proof of work of at least pow_bits (identity.h),
//  - in permissioned mode, the signer is one of the trusted keys; otherwise (trust on first use)
//    the signer is the key first seen announcing that expert uid, remembered in a store (a file
//    when store_path is set) so that a later announcer of the same uid with another key is
//    ignored: an attacker cannot steal an expert's traffic by announcing it too,
//  - its signer announces at most max_uids_per_key experts and is one of at most
//    max_keys_per_prefix keys announcing under a prefix (Sybil caps).
// Expired and replayed records are dropped earlier, by their own expiry (DhtStats::expired).
// Prefix records (the grid's inner nodes) are announced by every server under them: they are not
// pinned, only checked for signature, proof of work, permission and the caps.
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>

#include "net/dht_node.h"

namespace moe::net {

struct TrustConfig {
  bool require_signed = true;
  int pow_bits = 16;
  std::set<std::string> trusted_keys{};  // non-empty: permissioned mode
  std::string store_path{};             // trust-on-first-use pins (JSON); "": this process only
  int max_uids_per_key = 1 << 16;
  int max_keys_per_prefix = 256;
};

struct TrustStats {
  int64_t accepted = 0;
  int64_t unsigned_ = 0, weak_pow = 0, untrusted = 0, wrong_key = 0, capped = 0;
  int64_t rejected() const { return unsigned_ + weak_pow + untrusted + wrong_key + capped; }
};

class RecordTrust {
 public:
  // Loads the pins of store_path when it exists; moe::Error when it is not a pin file.
  explicit RecordTrust(const TrustConfig& cfg);
  // Thread-safe; pins (and saves) on first use.
  bool accept(const ExpertRecord& r, bool expert);
  TrustStats stats() const;
  // The pinned key of a uid ("" none).
  std::string pinned(const std::string& uid) const;

 private:
  void save_locked() const;
  TrustConfig c_;
  mutable std::mutex mu_;
  std::map<std::string, std::string> pins_;               // uid -> key
  std::map<std::string, int64_t> uids_per_key_;
  std::map<std::string, std::set<std::string>> keys_per_prefix_;
  TrustStats st_;
};

// The keys of a permissioned swarm: one hex key id per line ('#' comments). moe::Error on a line
// that is not a 64-digit hex id.
std::set<std::string> read_trusted_keys(const std::string& path);

}  // namespace moe::net
