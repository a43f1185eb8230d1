// Signed discovery: identities and their files, the proof of work, records signed in their body
// (record_signature.h) read with their signer, and the client's trust policy against the attacks
// of the security issue: another key announcing a pinned uid, an unsigned record, a weak proof of
// work, a key outside a permissioned swarm, a forged signature, a replayed expired record, an
// overwrite of another server's value, and the Sybil caps. A raw OpenDHT node in the swarm's network plays the attacker.
#include "net/record_trust.h"

#include <gtest/gtest.h>

#include <opendht/dhtrunner.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <atomic>
#include <future>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "dht_fixture.h"
#include "net/identity.h"
#include <algorithm>
#include "net/record_signature.h"
#include "../test_util.h"

namespace moe::net {
namespace {

using test::rec;

std::shared_ptr<const NodeIdentity> ident(int bits = 8) {
  return std::make_shared<const NodeIdentity>(NodeIdentity::ephemeral(bits));
}

std::unique_ptr<DhtNode> node(const std::string& boot, std::shared_ptr<const NodeIdentity> id = nullptr,
                              RecordTrust* trust = nullptr) {
  DhtConfig c;
  if (!boot.empty()) c.bootstrap = {boot};
  c.identity = std::move(id);
  if (trust) c.accept = [trust](const ExpertRecord& r, bool expert) { return trust->accept(r, expert); };
  return std::make_unique<DhtNode>(c);
}

// An attacker: a plain OpenDHT node in the swarm's network (the network id is no secret).
struct RawNode {
  dht::DhtRunner r;
  explicit RawNode(const std::string& boot, const dht::crypto::Identity& id = {}) {
    dht::DhtRunner::Config c;
    c.threaded = true;
    c.dht_config.node_config.network = 0x6d6f6531;
    c.dht_config.node_config.max_req_per_sec = -1;
    c.dht_config.node_config.max_peer_req_per_sec = -1;
    c.dht_config.id = id;
    r.run(0, c);
    const auto p = boot.rfind(':');
    r.bootstrap(boot.substr(0, p), boot.substr(p + 1));
    for (int i = 0; i < 500 && r.getNodesStats(AF_INET).good_nodes == 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ~RawNode() {
    r.shutdown({});
    r.join();
  }
  bool put(const std::string& key, std::shared_ptr<dht::Value> v, bool sign = false) {
    // OpenDHT may call back late, or more than once: the callback owns what it touches.
    auto done = std::make_shared<std::promise<bool>>();
    auto once = std::make_shared<std::atomic<bool>>(false);
    auto f = done->get_future();
    auto cb = [done, once](bool ok) {
      if (!once->exchange(true)) done->set_value(ok);
    };
    if (sign) r.putSigned(dht::InfoHash::get(key), v, cb);
    else r.put(dht::InfoHash::get(key), v, cb);
    return f.wait_for(std::chrono::seconds(5)) == std::future_status::ready && f.get();
  }
  std::vector<std::shared_ptr<dht::Value>> get(const std::string& key) {
    struct State {
      std::mutex mu;
      std::vector<std::shared_ptr<dht::Value>> out;
      std::promise<void> done;
      std::atomic<bool> once{false};
    };
    auto st = std::make_shared<State>();
    auto f = st->done.get_future();
    r.get(dht::InfoHash::get(key), [st](const std::vector<std::shared_ptr<dht::Value>>& v) {
      std::lock_guard<std::mutex> lk(st->mu);
      st->out.insert(st->out.end(), v.begin(), v.end());
      return true;
    }, [st](bool) {
      if (!st->once.exchange(true)) st->done.set_value();
    });
    f.wait_for(std::chrono::seconds(5));
    std::lock_guard<std::mutex> lk(st->mu);
    return st->out;
  }
};

std::shared_ptr<dht::Value> value_of(const std::string& body, dht::Value::Id id = dht::Value::INVALID_ID) {
  auto v = std::make_shared<dht::Value>(0x6d6f, reinterpret_cast<const uint8_t*>(body.data()), body.size());
  if (id != dht::Value::INVALID_ID) v->id = id;
  return v;
}

// A record body as servers write it, signed in the body when signer is set.
std::shared_ptr<dht::Value> record_value(const std::string& uid, const std::string& addr, int64_t exp,
                                         const NodeIdentity* signer, dht::Value::Id id = dht::Value::INVALID_ID) {
  nlohmann::json j{{"uid", uid}, {"addr", addr}, {"load", 0.0}, {"exp", exp}};
  if (signer) {
    j["pow"] = signer->pow_nonce();
    sign_record(j, *signer);
  }
  const std::string body = j.dump();
  auto v = std::make_shared<dht::Value>(0x6d6f, reinterpret_cast<const uint8_t*>(body.data()), body.size());
  if (id != dht::Value::INVALID_ID) v->id = id;
  return v;
}

std::string value_text_of(const dht::Value& v) { return std::string(v.data.begin(), v.data.end()); }

std::vector<std::string> addrs(const std::vector<ExpertRecord>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(r.address);
  return out;
}

TEST(ProofOfWork, FoundProofsCheckAndOthersDoNot) {
  const std::string k = ident(0)->key_id();
  EXPECT_EQ(k.size(), 64u);
  const uint64_t n = find_proof_of_work(k, 12);
  EXPECT_TRUE(check_proof_of_work(k, n, 12));
  EXPECT_TRUE(check_proof_of_work(k, n, 0));
  int failing = 0;
  for (uint64_t m = 0; m < 64; ++m) failing += !check_proof_of_work(k, m, 12);
  EXPECT_GE(failing, 60);  // a random nonce passes 12 bits once in 4096
  EXPECT_THROW(check_proof_of_work(k, 0, 41), Error);
}

TEST(NodeIdentity, CreatedOnceThenLoadedWithItsCachedProof) {
  moe::test::ScratchDir dir;
  const std::string p = dir.file("keys/server");
  const NodeIdentity a = NodeIdentity::load_or_create(p, 10);
  EXPECT_TRUE(std::filesystem::exists(p + ".pem"));
  EXPECT_TRUE(std::filesystem::exists(p + ".crt"));
  EXPECT_EQ(std::filesystem::status(p + ".pem").permissions() & std::filesystem::perms::others_read,
            std::filesystem::perms::none);
  const NodeIdentity b = NodeIdentity::load_or_create(p, 10);
  EXPECT_EQ(a.key_id(), b.key_id());
  EXPECT_EQ(a.pow_nonce(), b.pow_nonce());
  EXPECT_TRUE(check_proof_of_work(b.key_id(), b.pow_nonce(), 10));
  std::ofstream(p + ".crt") << "garbage";
  EXPECT_THROW(NodeIdentity::load_or_create(p, 10), Error);
}

TEST(RecordTrust, SignedRecordsAndTrustOnFirstUse) {
  auto boot = node("");
  auto honest_id = ident(), thief_id = ident();
  auto honest = node(boot->address(), honest_id), thief = node(boot->address(), thief_id);
  RecordTrust trust({.pow_bits = 8});
  auto reader = node(boot->address(), nullptr, &trust);
  ASSERT_EQ(honest->announce({rec("ffn.0.0", "10.0.0.1:1")}, 30), 1);
  auto got = reader->get({"ffn.0.0"});
  ASSERT_EQ(got[0].size(), 1u);
  EXPECT_EQ(got[0][0].key, honest_id->key_id());
  EXPECT_EQ(trust.pinned("ffn.0.0"), honest_id->key_id());
  // Another key announcing the same uid (to steal its traffic) is ignored, by get and by children.
  ASSERT_EQ(thief->announce({rec("ffn.0.0", "6.6.6.6:1")}, 30), 1);
  EXPECT_EQ(addrs(reader->get({"ffn.0.0"})[0]), std::vector<std::string>{"10.0.0.1:1"});
  const auto kids = reader->children("ffn.0");
  ASSERT_EQ(kids.count(0), 1u);
  EXPECT_EQ(addrs(kids.at(0)), std::vector<std::string>{"10.0.0.1:1"});
  EXPECT_GE(trust.stats().wrong_key, 2);
  // A reader without the pin sees both: what trust on first use cannot stop (docs/security.md).
  EXPECT_EQ(node(boot->address())->get({"ffn.0.0"})[0].size(), 2u);
}

TEST(RecordTrust, UnsignedWeakProofAndUnlistedKeysAreIgnored) {
  auto boot = node("");
  auto weak_id = ident(0);
  while (check_proof_of_work(weak_id->key_id(), weak_id->pow_nonce(), 12)) weak_id = ident(0);
  auto good_id = ident(12);
  auto plain = node(boot->address()), weak = node(boot->address(), weak_id), good = node(boot->address(), good_id);
  ASSERT_EQ(plain->announce({rec("ffn.1.0", "10.0.0.1:1")}, 30), 1);
  ASSERT_EQ(weak->announce({rec("ffn.1.1", "10.0.0.2:1")}, 30), 1);
  ASSERT_EQ(good->announce({rec("ffn.1.2", "10.0.0.3:1")}, 30), 1);
  RecordTrust trust({.pow_bits = 12});
  auto reader = node(boot->address(), nullptr, &trust);
  auto got = reader->get({"ffn.1.0", "ffn.1.1", "ffn.1.2"});
  EXPECT_TRUE(got[0].empty());
  EXPECT_TRUE(got[1].empty());
  EXPECT_EQ(got[2].size(), 1u);
  EXPECT_EQ(trust.stats().unsigned_, 1);
  EXPECT_EQ(trust.stats().weak_pow, 1);
  // Permissioned: only listed keys, whoever came first.
  RecordTrust closed({.pow_bits = 0, .trusted_keys = {weak_id->key_id()}});
  auto reader2 = node(boot->address(), nullptr, &closed);
  got = reader2->get({"ffn.1.1", "ffn.1.2"});
  EXPECT_EQ(got[0].size(), 1u);
  EXPECT_TRUE(got[1].empty());
  EXPECT_EQ(closed.stats().untrusted, 1);
}

TEST(RecordSignature, TamperedRecordsAreForged) {
  auto id = ident(0);
  nlohmann::json j{{"uid", "ffn.0.0"}, {"addr", "10.0.0.1:1"}, {"exp", 5}};
  std::string key;
  EXPECT_EQ(check_record_signature(j, key), SignatureCheck::Unsigned);
  sign_record(j, *id);
  EXPECT_EQ(check_record_signature(j, key), SignatureCheck::Valid);
  EXPECT_EQ(key, id->key_id());
  for (const char* field : {"addr", "key", "sig"}) {
    nlohmann::json t = j;
    std::string v = t[field].get<std::string>();
    v[v.size() - 2] = v[v.size() - 2] == '1' ? '2' : '1';
    t[field] = v;
    EXPECT_EQ(check_record_signature(t, key), SignatureCheck::Forged) << field;
  }
  nlohmann::json t = j;
  t["exp"] = 6;  // a longer life for an old record
  EXPECT_EQ(check_record_signature(t, key), SignatureCheck::Forged);
  t = j;
  t.erase("key");
  EXPECT_EQ(check_record_signature(t, key), SignatureCheck::Forged);
}

TEST(RecordTrust, ForgedRecordIsNeitherStoredNorDelivered) {
  auto boot = node("");
  auto peer = node(boot->address());
  auto attacker_id = ident(0);
  RawNode raw(boot->address());
  const int64_t exp = now_unix_ms() + 30000;
  // A correctly signed record is delivered (the channel works) ...
  ASSERT_TRUE(raw.put("moe.expert:ffn.2.0", record_value("ffn.2.0", "10.0.0.9:1", exp, attacker_id.get())));
  // ... one changed after signing is refused by the storing nodes.
  auto forged = nlohmann::json::parse(value_text_of(*record_value("ffn.2.1", "10.0.0.9:1", exp, attacker_id.get())));
  forged["addr"] = "6.6.6.6:1";
  raw.put("moe.expert:ffn.2.1", value_of(forged.dump()));
  RecordTrust trust({.pow_bits = 0});
  auto reader = node(boot->address(), nullptr, &trust);
  const auto got = reader->get({"ffn.2.0", "ffn.2.1"});
  EXPECT_EQ(got[0].size(), 1u);
  EXPECT_TRUE(got[1].empty());
}

TEST(RecordTrust, ReplayedExpiredRecordIsDroppedAndCounted) {
  auto boot = node("");
  auto id = ident(0);
  auto server = node(boot->address(), id);
  ASSERT_EQ(server->announce({rec("ffn.3.0", "10.0.0.1:1")}, 0.5), 1);
  RawNode raw(boot->address());
  auto captured = raw.get("moe.expert:ffn.3.0");
  ASSERT_FALSE(captured.empty());
  std::string key;
  ASSERT_EQ(check_record_signature(nlohmann::json::parse(value_text_of(*captured[0])), key), SignatureCheck::Valid);
  server.reset();  // the server leaves; its record expires
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  raw.put("moe.expert:ffn.3.0", captured[0]);  // replayed as it was signed
  RecordTrust trust({.pow_bits = 0});
  auto reader = node(boot->address(), nullptr, &trust);
  EXPECT_TRUE(reader->get({"ffn.3.0"})[0].empty());
  EXPECT_GE(reader->stats().expired, 1);
}

TEST(RecordTrust, OverwritingAnotherKeysValueIsRefusedByTheStoringNodes) {
  auto boot = node("");
  auto honest_id = ident(0), attacker_id = ident(0);
  auto honest = node(boot->address(), honest_id);
  ASSERT_EQ(honest->announce({rec("ffn.4.0", "10.0.0.1:1")}, 30), 1);
  RawNode plain(boot->address());
  auto stored = plain.get("moe.expert:ffn.4.0");
  ASSERT_EQ(stored.size(), 1u);
  const auto id = stored[0]->id;
  const int64_t exp = now_unix_ms() + 30000;
  // The same value id with the attacker's address: signed by another key, and unsigned.
  plain.put("moe.expert:ffn.4.0", record_value("ffn.4.0", "6.6.6.6:1", exp, attacker_id.get(), id));
  plain.put("moe.expert:ffn.4.0", record_value("ffn.4.0", "6.6.6.6:1", exp, nullptr, id));
  auto reader = node(boot->address());
  EXPECT_EQ(addrs(reader->get({"ffn.4.0"})[0]), std::vector<std::string>{"10.0.0.1:1"});
  // The honest server re-announces (same key): its edit is accepted.
  ASSERT_EQ(honest->announce({rec("ffn.4.0", "10.0.0.1:1", 5.0)}, 30), 1);
  const auto again = node(boot->address())->get({"ffn.4.0"})[0];
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].load, 5.0);
}

// A server restarted with a new key on a dead server's address (a reused port) is not blocked by
// the dead server's stale records: the signer is part of the value id, so the two never collide.
TEST(RecordTrust, NewKeyOnAReusedAddressIsStored) {
  auto boot = node("");
  auto old_id = ident(0), new_id = ident(0);
  {
    auto dead = node(boot->address(), old_id);
    ASSERT_EQ(dead->announce({rec("ffn.1.0.2", "10.0.0.9:7")}, 1.0), 1);
  }
  auto restarted = node(boot->address(), new_id);
  ASSERT_EQ(restarted->announce({rec("ffn.1.0.2", "10.0.0.9:7", 3.0)}, 30), 1);
  auto reader = node(boot->address());
  const auto got = reader->get({"ffn.1.0.2"})[0];
  ASSERT_FALSE(got.empty());
  EXPECT_TRUE(std::any_of(got.begin(), got.end(), [&](const ExpertRecord& r) { return r.key == new_id->key_id(); }));
  // ... and its grid prefix records too.
  const auto kids = reader->children("ffn.1.0", 5);
  ASSERT_TRUE(kids.count(2));
  EXPECT_TRUE(std::any_of(kids.at(2).begin(), kids.at(2).end(), [&](const ExpertRecord& r) { return r.key == new_id->key_id(); }));
}

TEST(RecordTrust, SybilCapsPerKeyAndPerPrefix) {
  RecordTrust trust({.pow_bits = 0, .max_uids_per_key = 2, .max_keys_per_prefix = 2});
  auto k = [](int i) { return std::string(63, '0') + char('a' + i); };
  auto r = [](const std::string& uid, const std::string& key) { return ExpertRecord{uid, "a:1", 0, 0, key, 0}; };
  EXPECT_TRUE(trust.accept(r("p.0.0", k(0)), true));
  EXPECT_TRUE(trust.accept(r("p.0.1", k(0)), true));
  EXPECT_FALSE(trust.accept(r("p.0.2", k(0)), true));  // a third uid for one key
  EXPECT_TRUE(trust.accept(r("p.0.3", k(1)), true));
  EXPECT_FALSE(trust.accept(r("p.0.4", k(2)), true));  // a third key under p.0
  EXPECT_EQ(trust.stats().capped, 2);
}

TEST(RecordTrust, PinsSurviveInTheStoreAndBadFilesAreErrors) {
  moe::test::ScratchDir dir;
  const std::string store = dir.file("known.json");
  const std::string key(64, 'a'), other(64, 'b');
  {
    RecordTrust t({.pow_bits = 0, .store_path = store});
    EXPECT_TRUE(t.accept(ExpertRecord{"ffn.0.0", "a:1", 0, 0, key, 0}, true));
  }
  RecordTrust again({.pow_bits = 0, .store_path = store});
  EXPECT_FALSE(again.accept(ExpertRecord{"ffn.0.0", "b:1", 0, 0, other, 0}, true));
  std::ofstream(store) << "[1, 2]";
  EXPECT_THROW(RecordTrust({.store_path = store}), Error);
  std::ofstream(dir.file("keys.txt")) << "# the swarm\n" << key << "\nnot-a-key\n";
  EXPECT_THROW(read_trusted_keys(dir.file("keys.txt")), Error);
  std::ofstream(dir.file("keys2.txt")) << key << "  # one\n" << other << "\n";
  EXPECT_EQ(read_trusted_keys(dir.file("keys2.txt")).size(), 2u);
}

}  // namespace
}  // namespace moe::net
