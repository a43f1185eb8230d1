#pragma once
// Signatures of expert records, carried inside the record: "key" (the signer's public key, hex of
// its packed form) and "sig" (hex RSA-SHA512 signature of the record's JSON text without "sig";
// nlohmann's objects keep their keys sorted, so the text is canonical).
//
// Why not OpenDHT's putSigned: in Debian's OpenDHT 2.4.12 a storing node that holds a signed value
// and receives an unsigned value with the same id crashes (SIGSEGV in Dht::onAnnounce, seen while
// writing tests/net/record_trust_test.cpp: a raw node putSigned a value, another put an unsigned
// one with its id), so any peer could take down every server that stores signed values. Records signed in their body are checked by our own store and edit policies (a
// storing node keeps only records whose signature checks, and lets only the same key replace one),
// and the DHT stores no OpenDHT-signed value of our type at all.
#include <string>

#include <nlohmann/json.hpp>

namespace moe::net {

class NodeIdentity;

// Adds "key" and "sig" to body (an object without them).
void sign_record(nlohmann::json& body, const NodeIdentity& id);

enum class SignatureCheck { Unsigned, Valid, Forged };
// Unsigned: neither "key" nor "sig"; Valid: key_id is the signer's hex key id; Forged: anything
// else (one of them missing, not hex, a key that does not parse, a signature that does not check).
// Thread-safe; remembers recent valid signatures so that a record read again costs no RSA check.
SignatureCheck check_record_signature(const nlohmann::json& body, std::string& key_id);

}  // namespace moe::net
