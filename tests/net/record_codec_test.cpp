// Expert records read off the DHT as untrusted input: a record, or why it was dropped (malformed,
// expired, forged), for per-uid and prefix records, signed and unsigned.
#include "net/record_codec.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "net/identity.h"
#include "net/record_signature.h"

namespace moe::net {
namespace {

using Json = nlohmann::json;
constexpr int64_t kNow = 1'000'000;

Json uid_record() { return {{"uid", "ffn.0.3"}, {"addr", "127.0.0.1:5000"}, {"exp", kNow + 10}, {"load", 2.5}, {"pow", 7}}; }
Json child_record(const char* kind) { return {{"c", 3}, {"kind", kind}, {"addr", "127.0.0.1:5000"}, {"exp", kNow + 10}}; }

TEST(RecordCodec, ExpertRecordsParseOrSayWhyNot) {
  RecordDrop why;
  auto r = parse_expert_record(uid_record().dump(), kNow, why);
  ASSERT_TRUE(r);
  EXPECT_EQ(why, RecordDrop::None);
  EXPECT_EQ(r->uid, "ffn.0.3");
  EXPECT_EQ(r->address, "127.0.0.1:5000");
  EXPECT_EQ(r->load, 2.5);
  EXPECT_EQ(r->pow, 7u);
  EXPECT_TRUE(r->key.empty());
  EXPECT_FALSE(r->tls);

  EXPECT_FALSE(parse_expert_record(uid_record().dump(), kNow + 10, why));
  EXPECT_EQ(why, RecordDrop::Expired);
  for (const std::string& bad : {std::string("not json"), std::string("[1,2]"), std::string(""), std::string("{}")}) {
    EXPECT_FALSE(parse_expert_record(bad, kNow, why)) << bad;
    EXPECT_EQ(why, RecordDrop::Malformed) << bad;
  }
  for (const char* key : {"uid", "addr", "exp"}) {
    Json j = uid_record();
    j.erase(key);
    EXPECT_FALSE(parse_expert_record(j.dump(), kNow, why)) << key;
    EXPECT_EQ(why, RecordDrop::Malformed) << key;
    j = uid_record();
    j[key] = Json::array();  // wrong type
    EXPECT_FALSE(parse_expert_record(j.dump(), kNow, why)) << key;
    EXPECT_EQ(why, RecordDrop::Malformed) << key;
  }
  // Numbers a cast cannot hold (undefined behaviour in a plain conversion; found by fuzzing).
  for (const auto& [key, v] : std::vector<std::pair<const char*, Json>>{
           {"exp", 1.0888e115}, {"exp", 3.5}, {"exp", Json::parse("18446744073709551615")}, {"pow", -1}, {"pow", 1e30}}) {
    Json j = uid_record();
    j[key] = v;
    EXPECT_FALSE(parse_expert_record(j.dump(), kNow, why)) << key << " = " << v.dump();
    EXPECT_EQ(why, RecordDrop::Malformed) << key << " = " << v.dump();
  }
  Json big = uid_record();
  big["pow"] = Json::parse("18446744073709551615");  // any uint64_t nonce is fine
  ASSERT_TRUE(parse_expert_record(big.dump(), kNow, why));
  Json j = uid_record();
  j["load"] = "high";
  EXPECT_FALSE(parse_expert_record(j.dump(), kNow, why));
  EXPECT_EQ(why, RecordDrop::Malformed);
}

TEST(RecordCodec, SignaturesAreCheckedAndForgeriesNamed) {
  const NodeIdentity id = NodeIdentity::ephemeral(4);
  Json j = uid_record();
  j["tls"] = true;
  sign_record(j, id);
  RecordDrop why;
  auto r = parse_expert_record(j.dump(), kNow, why);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->key.empty());
  EXPECT_TRUE(r->tls);
  std::string key;
  EXPECT_TRUE(record_signature_holds(j.dump(), key));
  EXPECT_EQ(key, r->key);

  Json forged = j;
  forged["addr"] = "10.0.0.1:6000";  // the signed body changed
  EXPECT_FALSE(parse_expert_record(forged.dump(), kNow, why));
  EXPECT_EQ(why, RecordDrop::Forged);
  EXPECT_FALSE(record_signature_holds(forged.dump(), key));
  Json half = uid_record();
  half["key"] = "00";  // a key without a signature
  EXPECT_FALSE(parse_expert_record(half.dump(), kNow, why));
  EXPECT_EQ(why, RecordDrop::Forged);
  // Unsigned: no key, and no TLS claim honoured without one.
  Json plain = uid_record();
  plain["tls"] = true;
  r = parse_expert_record(plain.dump(), kNow, why);
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->tls);
  EXPECT_FALSE(record_signature_holds("not json", key));  // not a record: storing nodes refuse it
}

TEST(RecordCodec, ChildRecordsOfAPrefix) {
  RecordDrop why;
  auto c = parse_child_record(child_record("expert").dump(), "ffn.1", kNow, why);
  ASSERT_TRUE(c);
  EXPECT_EQ(c->coord, 3);
  EXPECT_TRUE(c->expert);
  EXPECT_EQ(c->record.uid, "ffn.1.3");
  c = parse_child_record(child_record("prefix").dump(), "ffn.1", kNow, why);
  ASSERT_TRUE(c);
  EXPECT_FALSE(c->expert);
  auto patched = [](const Json& patch) {
    Json j = child_record("expert");
    j.merge_patch(patch);  // null removes the key
    return j;
  };
  for (const Json& bad : {child_record("server"), patched({{"c", -1}}), patched({{"c", "3"}}), patched({{"kind", nullptr}}),
                          patched({{"c", 1e12}}), patched({{"c", 4294967296LL}})}) {
    EXPECT_FALSE(parse_child_record(bad.dump(), "ffn.1", kNow, why)) << bad.dump();
    EXPECT_EQ(why, RecordDrop::Malformed) << bad.dump();
  }
  EXPECT_FALSE(parse_child_record(child_record("expert").dump(), "ffn.1", kNow + 11, why));
  EXPECT_EQ(why, RecordDrop::Expired);
}

}  // namespace
}  // namespace moe::net
