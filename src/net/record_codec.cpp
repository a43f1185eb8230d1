#include "net/record_codec.h"

#include <nlohmann/json.hpp>

#include "net/record_signature.h"

namespace moe::net {
namespace {

using Json = nlohmann::json;

// The fields every record has; false (why set) when the record must be dropped.
bool fill(const Json& j, int64_t now_ms, ExpertRecord& r, RecordDrop& why) {
  r.address = j.at("addr").get<std::string>();
  r.load = j.value("load", 0.0);
  r.expires_ms = j.at("exp").get<int64_t>();
  r.pow = j.value("pow", uint64_t{0});
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
    c.coord = j.at("c").get<int>();
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
