#pragma once
// A node's identity in the swarm: an OpenDHT key pair and self-signed certificate (RSA 2048:
// OpenDHT 2.4 verifies value signatures as RSA-SHA512 only, so elliptic-curve keys cannot sign
// records), kept in files and created on first start, plus a proof of work that makes identities
// costly to mint (Sybil resistance): a nonce such that SHA-256(key id || nonce) starts with `bits`
// zero bits, about 2^bits hashes to find and one to check.
#include <cstdint>
#include <memory>
#include <string>

#include <opendht/crypto.h>

namespace moe::net {

class NodeIdentity {
 public:
  // The identity in PATH.pem (private key, mode 0600) and PATH.crt, created (atomically) when
  // absent; its proof of work of `pow_bits` is cached in PATH.pow. moe::Error on unreadable files.
  static NodeIdentity load_or_create(const std::string& path, int pow_bits);
  // A fresh identity kept in memory only (a restarted node is a new identity).
  static NodeIdentity ephemeral(int pow_bits);

  const dht::crypto::Identity& dht() const { return id_; }
  const std::string& key_id() const { return key_id_; }  // hex SHA-256 of the public key
  uint64_t pow_nonce() const { return pow_nonce_; }
  int pow_bits() const { return pow_bits_; }

 private:
  dht::crypto::Identity id_;
  std::string key_id_;
  uint64_t pow_nonce_ = 0;
  int pow_bits_ = 0;
};

// The smallest nonce whose SHA-256(key_id || nonce as 8 little-endian bytes) has >= bits leading
// zero bits. bits in [0, 40].
uint64_t find_proof_of_work(const std::string& key_id, int bits);
bool check_proof_of_work(const std::string& key_id, uint64_t nonce, int bits);

}  // namespace moe::net
