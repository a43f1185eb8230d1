#pragma once
// Reading expert records off the DHT: a value's bytes are whatever a peer stored, so each is parsed
// as untrusted input (JSON, field types, expiry, the signature carried in the body) and either
// yields a record or says why it was dropped. The writing side is DhtNode::announce.
#include <cstdint>
#include <optional>
#include <string>

#include "net/dht_node.h"

namespace moe::net {

enum class RecordDrop { None, Malformed, Expired, Forged };

// A per-uid record {"uid", "addr", "exp", ["load", "pow", "tls", "key", "sig"]} live at now_ms.
std::optional<ExpertRecord> parse_expert_record(const std::string& text, int64_t now_ms, RecordDrop& why);

// A prefix record {"c", "kind": "expert"|"prefix", "addr", "exp", ...} stored under prefix: its
// coordinate (>= 0) and the record of child "prefix.c" (expert tells which kind it is).
struct ChildRecord {
  int coord = -1;
  bool expert = false;
  ExpertRecord record;
};
std::optional<ChildRecord> parse_child_record(const std::string& text, const std::string& prefix, int64_t now_ms,
                                              RecordDrop& why);

// What a storing node checks before keeping or replacing a value: the body's signature is not
// forged. key: the signer ("" unsigned).
bool record_signature_holds(const std::string& text, std::string& key);

}  // namespace moe::net
