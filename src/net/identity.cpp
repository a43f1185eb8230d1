#include "net/identity.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe::net {
namespace fs = std::filesystem;

namespace {

int leading_zero_bits(const uint8_t* h, size_t n) {
  int z = 0;
  for (size_t i = 0; i < n; ++i) {
    if (h[i] == 0) {
      z += 8;
      continue;
    }
    for (int b = 7; b >= 0 && !(h[i] >> b & 1); --b) ++z;
    break;
  }
  return z;
}

int pow_zero_bits(const std::string& key_id, uint64_t nonce) {
  std::string msg = key_id;
  for (int i = 0; i < 8; ++i) msg.push_back(char(nonce >> (8 * i) & 0xff));
  uint8_t h[32];
  dht::crypto::hash(reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), h, sizeof h);
  return leading_zero_bits(h, sizeof h);
}

void check_bits(int bits) {
  if (bits < 0 || bits > 40) throw Error("[identity] proof-of-work bits must be in [0, 40], got " + std::to_string(bits));
}

dht::Blob read_blob(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("[identity] cannot read " + path);
  return dht::Blob(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

}  // namespace

uint64_t find_proof_of_work(const std::string& key_id, int bits) {
  check_bits(bits);
  uint64_t n = 0;
  while (pow_zero_bits(key_id, n) < bits) ++n;
  return n;
}

bool check_proof_of_work(const std::string& key_id, uint64_t nonce, int bits) {
  check_bits(bits);
  return pow_zero_bits(key_id, nonce) >= bits;
}

NodeIdentity NodeIdentity::ephemeral(int pow_bits) {
  NodeIdentity n;
  n.id_ = dht::crypto::generateIdentity("moe", {}, 2048);
  n.key_id_ = n.id_.first->getPublicKey().getLongId().toString();
  n.pow_bits_ = pow_bits;
  n.pow_nonce_ = find_proof_of_work(n.key_id_, pow_bits);
  return n;
}

NodeIdentity NodeIdentity::load_or_create(const std::string& path, int pow_bits) {
  check_bits(pow_bits);
  const std::string key = path + ".pem", crt = path + ".crt", pow = path + ".pow";
  NodeIdentity n;
  if (!fs::exists(key)) {
    if (fs::exists(crt)) throw Error("[identity] " + crt + " exists without its key " + key);
    if (fs::path(path).has_parent_path()) fs::create_directories(fs::path(path).parent_path());
    // Written under a temporary name and renamed: a crash leaves either no identity or a whole one
    // (the certificate is renamed first; the key's presence marks a complete identity).
    const std::string tmp = path + ".tmp" + std::to_string(::getpid());
    dht::crypto::saveIdentity(dht::crypto::generateIdentity("moe", {}, 2048), tmp);
    ::chmod((tmp + ".pem").c_str(), 0600);
    fs::rename(tmp + ".crt", crt);
    fs::rename(tmp + ".pem", key);
  }
  try {
    auto k = std::make_shared<dht::crypto::PrivateKey>(read_blob(key));
    auto c = std::make_shared<dht::crypto::Certificate>(read_blob(crt));
    n.id_ = {k, c};
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {
    throw Error("[identity] " + path + ": not a readable identity (" + e.what() + ")");
  }
  n.key_id_ = n.id_.first->getPublicKey().getLongId().toString();
  if (n.id_.second->getPublicKey().getLongId() != n.id_.first->getPublicKey().getLongId())
    throw Error("[identity] " + crt + " is not the certificate of " + key);
  n.pow_bits_ = pow_bits;
  // The proof is cached: minting it costs ~2^bits hashes once per identity.
  nlohmann::json j = nlohmann::json::object();
  if (fs::exists(pow)) j = nlohmann::json::parse(std::ifstream(pow), nullptr, false);
  const std::string b = std::to_string(pow_bits);
  if (j.is_object() && j.contains(b) && j[b].is_number_unsigned() &&
      check_proof_of_work(n.key_id_, j[b].get<uint64_t>(), pow_bits)) {
    n.pow_nonce_ = j[b].get<uint64_t>();
  } else {
    n.pow_nonce_ = find_proof_of_work(n.key_id_, pow_bits);
    if (!j.is_object()) j = nlohmann::json::object();
    j[b] = n.pow_nonce_;
    atomic_write_file(pow, j.dump());
  }
  return n;
}

}  // namespace moe::net
