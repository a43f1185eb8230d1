#include "net/record_signature.h"

#include <map>
#include <mutex>

#include "net/identity.h"

namespace moe::net {
namespace {

std::string to_hex(const dht::Blob& b) {
  static const char* d = "0123456789abcdef";
  std::string s;
  s.reserve(b.size() * 2);
  for (uint8_t c : b) s.push_back(d[c >> 4]), s.push_back(d[c & 15]);
  return s;
}

bool from_hex(const std::string& s, dht::Blob& out) {
  if (s.size() % 2) return false;
  auto v = [](char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; };
  out.resize(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    const int hi = v(s[2 * i]), lo = v(s[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = uint8_t(hi << 4 | lo);
  }
  return true;
}

// Valid signatures seen recently: sig hex -> (signed text, key id). Bounded: cleared when full.
std::mutex g_mu;
std::map<std::string, std::pair<std::string, std::string>> g_valid;
constexpr size_t kRemembered = 1 << 14;

}  // namespace

void sign_record(nlohmann::json& body, const NodeIdentity& id) {
  dht::Blob pk;
  id.dht().first->getPublicKey().pack(pk);
  body.erase("sig");
  body["key"] = to_hex(pk);
  body["sig"] = to_hex(id.dht().first->sign(body.dump()));
}

SignatureCheck check_record_signature(const nlohmann::json& body, std::string& key_id) {
  if (!body.is_object()) return SignatureCheck::Forged;
  const bool has_key = body.contains("key"), has_sig = body.contains("sig");
  if (!has_key && !has_sig) return SignatureCheck::Unsigned;
  if (!has_key || !has_sig || !body["key"].is_string() || !body["sig"].is_string()) return SignatureCheck::Forged;
  nlohmann::json unsigned_body = body;
  unsigned_body.erase("sig");
  const std::string text = unsigned_body.dump();
  const std::string& sig_hex = body["sig"].get_ref<const std::string&>();
  {
    std::lock_guard<std::mutex> lk(g_mu);
    auto it = g_valid.find(sig_hex);
    if (it != g_valid.end() && it->second.first == text) {
      key_id = it->second.second;
      return SignatureCheck::Valid;
    }
  }
  dht::Blob pk, sig;
  if (!from_hex(body["key"].get<std::string>(), pk) || !from_hex(sig_hex, sig)) return SignatureCheck::Forged;
  try {
    const dht::crypto::PublicKey key(pk);
    if (!key.checkSignature(reinterpret_cast<const uint8_t*>(text.data()), text.size(), sig.data(), sig.size()))
      return SignatureCheck::Forged;
    key_id = key.getLongId().toString();
  } catch (const std::exception&) {
    return SignatureCheck::Forged;  // a key that does not parse
  }
  std::lock_guard<std::mutex> lk(g_mu);
  if (g_valid.size() >= kRemembered) g_valid.clear();
  g_valid.emplace(sig_hex, std::make_pair(text, key_id));
  return SignatureCheck::Valid;
}

}  // namespace moe::net
