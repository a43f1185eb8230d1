#include "net/record_codec.h"

#include <cstdint>

#include <nlohmann/json.hpp>

#include "net/record_signature.h"

namespace moe::net {
namespace {

using Json = nlohmann::json;

// An integer field within [lo, hi]. nlohmann converts a JSON float (or an out-of-range integer)
// to an integer with a plain C++ cast, undefined behaviour beyond the type's range: a peer's
// "exp": 1e115 reached it (found by fuzz/dht_record_fuzz.cpp). Throws like nlohmann's at().
int64_t integer(const Json& j, const char* key, int64_t lo, int64_t hi) {
  const Json& v = j.at(key);
  if (v.is_number_unsigned() && v.get<uint64_t>() <= uint64_t(INT64_MAX)) {
    const int64_t x = int64_t(v.get<uint64_t>());
    if (x >= lo && x <= hi) return x;
  } else if (v.is_number_integer() && !v.is_number_unsigned()) {
    const int64_t x = v.get<int64_t>();
    if (x >= lo && x <= hi) return x;
  }
  throw Json::type_error::create(302, std::string("'") + key + "' is not an integer in range", &v);
}

// The fields every record has; false (why set) when the record must be dropped.
bool fill(const Json& j, int64_t now_ms, ExpertRecord& r, RecordDrop& why) {
  r.address = j.at("addr").get<std::string>();
  r.load = j.value("load", 0.0);
  r.expires_ms = integer(j, "exp", INT64_MIN, INT64_MAX);
  if (j.contains("pow")) {  // any uint64_t nonce
    const Json& p = j["pow"];
    if (!p.is_number_unsigned() && !(p.is_number_integer() && p.get<int64_t>() >= 0))
      throw Json::type_error::create(302, "'pow' is not a non-negative integer", &p);
    r.pow = p.get<uint64_t>();
  }
  if (r.expires_ms <= now_ms) {
    why = RecordDrop::Expired;
    return false;
  }
  if (check_record_signature(j, r.key) == SignatureCheck::Forged) {
    why = RecordDrop::Forged;
    return false;
  }
  r.tls = !r.key.empty() && j.value("tls", false);
  return true;
}

}  // namespace

std::optional<ExpertRecord> parse_expert_record(const std::string& text, int64_t now_ms, RecordDrop& why) {
  why = RecordDrop::Malformed;
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  try {
    ExpertRecord r;
    r.uid = j.at("uid").get<std::string>();
    if (!fill(j, now_ms, r, why)) return std::nullopt;
    why = RecordDrop::None;
    return r;
  } catch (const Json::exception&) {
    return std::nullopt;  // a missing field or one of the wrong type
  }
}

std::optional<ChildRecord> parse_child_record(const std::string& text, const std::string& prefix, int64_t now_ms,
                                              RecordDrop& why) {
  why = RecordDrop::Malformed;
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object()) return std::nullopt;
  try {
    ChildRecord c;
    c.coord = int(integer(j, "c", 0, INT32_MAX));
    if (c.coord < 0) return std::nullopt;
    const std::string kind = j.at("kind").get<std::string>();
    if (kind != "expert" && kind != "prefix") return std::nullopt;
    c.expert = kind == "expert";
    c.record.uid = prefix + "." + std::to_string(c.coord);
    if (!fill(j, now_ms, c.record, why)) return std::nullopt;
    why = RecordDrop::None;
    return c;
  } catch (const Json::exception&) {
    return std::nullopt;
  }
}

bool record_signature_holds(const std::string& text, std::string& key) {
  const Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  return check_record_signature(j, key) != SignatureCheck::Forged;
}

}  // namespace moe::net
