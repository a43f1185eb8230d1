#include "net/record_trust.h"

#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "net/identity.h"

namespace moe::net {

RecordTrust::RecordTrust(const TrustConfig& c) : c_(c) {
  if (c_.pow_bits < 0 || c_.pow_bits > 40) throw Error("[trust] proof-of-work bits must be in [0, 40]");
  if (c_.store_path.empty() || !std::filesystem::exists(c_.store_path)) return;
  const auto j = nlohmann::json::parse(read_file(c_.store_path), nullptr, false);
  if (!j.is_object()) throw Error("[trust] " + c_.store_path + ": not a JSON object of uid -> key");
  for (const auto& [uid, key] : j.items()) {
    if (!key.is_string()) throw Error("[trust] " + c_.store_path + ": the key of '" + uid + "' is not a string");
    pins_[uid] = key.get<std::string>();
    ++uids_per_key_[key.get<std::string>()];
  }
}

bool RecordTrust::accept(const ExpertRecord& r, bool expert) {
  std::lock_guard<std::mutex> lk(mu_);
  if (r.key.empty()) {
    if (c_.require_signed) return ++st_.unsigned_, false;
    return ++st_.accepted, true;
  }
  if (!check_proof_of_work(r.key, r.pow, c_.pow_bits)) return ++st_.weak_pow, false;
  if (!c_.trusted_keys.empty() && !c_.trusted_keys.count(r.key)) return ++st_.untrusted, false;
  const std::string parent = r.uid.substr(0, r.uid.rfind('.'));
  auto& keys = keys_per_prefix_[parent];
  if (!keys.count(r.key)) {
    if (int(keys.size()) >= c_.max_keys_per_prefix) return ++st_.capped, false;
    keys.insert(r.key);
  }
  if (expert && c_.trusted_keys.empty()) {
    auto it = pins_.find(r.uid);
    if (it == pins_.end()) {
      if (uids_per_key_[r.key] >= c_.max_uids_per_key) return ++st_.capped, false;
      pins_.emplace(r.uid, r.key);
      ++uids_per_key_[r.key];
      save_locked();
    } else if (it->second != r.key) {
      return ++st_.wrong_key, false;
    }
  }
  return ++st_.accepted, true;
}

void RecordTrust::save_locked() const {
  if (c_.store_path.empty()) return;
  nlohmann::json j = nlohmann::json::object();
  for (const auto& [uid, key] : pins_) j[uid] = key;
  atomic_write_file(c_.store_path, j.dump(1));
}

TrustStats RecordTrust::stats() const {
  std::lock_guard<std::mutex> lk(mu_);
  return st_;
}

std::string RecordTrust::pinned(const std::string& uid) const {
  std::lock_guard<std::mutex> lk(mu_);
  auto it = pins_.find(uid);
  return it == pins_.end() ? "" : it->second;
}

std::set<std::string> read_trusted_keys(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error("[trust] cannot read " + path);
  std::set<std::string> keys;
  std::string line;
  int n = 0;
  while (std::getline(f, line)) {
    ++n;
    line = line.substr(0, line.find('#'));
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.front()))) line.erase(line.begin());
    if (line.empty()) continue;
    if (line.size() != 64 || line.find_first_not_of("0123456789abcdef") != std::string::npos)
      throw Error("[trust] " + path + ":" + std::to_string(n) + ": not a 64-digit lowercase hex key id");
    keys.insert(line);
  }
  if (keys.empty()) throw Error("[trust] " + path + ": no keys");
  return keys;
}

}  // namespace moe::net
