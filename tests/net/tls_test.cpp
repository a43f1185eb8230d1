// Pinned TLS: a client reaches a TLS server only with a channel pinned to that server's identity
// key; a channel pinned to another key (a server that cannot prove the record's key), a plain
// channel to a TLS server and a pinned channel to a plain server all fail, within the deadline.
#include "net/tls.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <thread>

#include "core/error.h"
#include "net/expert_client.h"
#include "net/expert_server.h"
#include "net/identity.h"
#include "net/rate_limiter.h"

namespace moe::net {
namespace {

using Clock = std::chrono::steady_clock;

ExpertServerConfig config(std::shared_ptr<const NodeIdentity> tls) {
  ExpertServerConfig c;
  c.uids = {"ffn.0.0"};
  c.d_model = 8;
  c.d_ff = 16;
  c.tls = std::move(tls);
  return c;
}

// Info through a client whose pins say `key` for the server ("" : plain).
bool reaches(const std::string& address, const std::string& key) {
  auto pins = std::make_shared<ServerPins>();
  if (!key.empty()) pins->pin(address, key);
  ExpertClient client;
  client.set_pins(pins);
  const auto t0 = Clock::now();
  try {
    const auto info = client.info(address, "ffn.0.0", 3);
    EXPECT_EQ(info.d_model, 8);
    return true;
  } catch (const Error&) {
    EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 3.5);
    return false;
  }
}

TEST(PinnedTls, OnlyTheRecordsKeyIsAccepted) {
  auto id = std::make_shared<const NodeIdentity>(NodeIdentity::ephemeral(0));
  auto other = NodeIdentity::ephemeral(0);
  ExpertServer tls(config(id)), plain(config(nullptr));
  EXPECT_TRUE(reaches(tls.address(), id->key_id()));
  EXPECT_FALSE(reaches(tls.address(), other.key_id()));  // the server cannot prove that key
  EXPECT_FALSE(reaches(tls.address(), ""));               // plaintext to a TLS server
  EXPECT_FALSE(reaches(plain.address(), id->key_id()));   // no TLS where the record promised it
  EXPECT_TRUE(reaches(plain.address(), ""));
}

TEST(PinnedTls, ForwardOverTlsMatchesPlain) {
  auto id = std::make_shared<const NodeIdentity>(NodeIdentity::ephemeral(0));
  ExpertServerConfig c = config(id);
  c.seed = 3;
  ExpertServer tls(c);
  c.tls = nullptr;
  ExpertServer plain(c);
  auto pins = std::make_shared<ServerPins>();
  pins->pin(tls.address(), id->key_id());
  ExpertClient client;
  client.set_pins(pins);
  std::vector<float> x(3 * 8);
  for (size_t i = 0; i < x.size(); ++i) x[i] = 0.1f * float(i % 7) - 0.3f;
  auto call = [&](const std::string& addr) {
    std::promise<CallResult> p;
    auto f = p.get_future();
    auto h = client.forward(addr, "ffn.0.0", x.data(), 3, 8, 5, [&p](CallResult&& r) { p.set_value(std::move(r)); });
    return f.get();
  };
  const CallResult a = call(tls.address()), b = call(plain.address());
  ASSERT_TRUE(a.ok) << a.error;
  ASSERT_TRUE(b.ok) << b.error;
  EXPECT_EQ(a.out, b.out);
}

// A client presenting its identity on a TLS channel is known by its key: the rate limit follows the
// key across connections (a second client object with the same key shares the budget), and
// another key has its own. Plaintext clients are known by their connection.
TEST(ClientIdentity, RateLimitFollowsTheClientsKey) {
  auto id = std::make_shared<const NodeIdentity>(NodeIdentity::ephemeral(0));
  ExpertServerConfig c = config(id);
  c.rate_limit = {.rows_per_s = 10, .burst_s = 10};  // 100 rows at once, then 10 per second
  ExpertServer server(c);
  auto pins = std::make_shared<ServerPins>();
  pins->pin(server.address(), id->key_id());
  auto a = std::make_shared<const NodeIdentity>(NodeIdentity::ephemeral(0));
  auto b = std::make_shared<const NodeIdentity>(NodeIdentity::ephemeral(0));
  std::vector<float> x(60 * 8, 0.1f);
  auto call_at = [&x](const std::string& address, ExpertClient& client) {  // 60 rows
    std::promise<CallResult> p;
    auto f = p.get_future();
    auto h = client.forward(address, "ffn.0.0", x.data(), 60, 8, 5, [&p](CallResult&& r) { p.set_value(std::move(r)); });
    return f.get();
  };
  auto call = [&](ExpertClient& client) { return call_at(server.address(), client); };
  ExpertClient ca, ca2, cb;
  for (ExpertClient* cl : {&ca, &ca2, &cb}) cl->set_pins(pins);
  ca.set_identity(a);
  ca2.set_identity(a);
  cb.set_identity(b);
  const CallResult first = call(ca);
  ASSERT_TRUE(first.ok) << first.error;
  const CallResult over = call(ca);  // 60 + 60 rows > 100
  EXPECT_FALSE(over.ok);
  EXPECT_NE(over.error.find("rate limit"), std::string::npos) << over.error;
  EXPECT_FALSE(call(ca2).ok);  // another connection, the same key: the same budget
  EXPECT_TRUE(call(cb).ok);    // another key
  const ExpertServerStats st = server.stats();
  EXPECT_EQ(st.rate_limit.limited_calls, 2);
  EXPECT_EQ(st.rate_limit.limited_by_client.at("key " + a->key_id()), 2);
  EXPECT_EQ(server.stats().forward_calls, 2);
  ExpertClient info_client;
  info_client.set_pins(pins);
  EXPECT_EQ(info_client.info(server.address(), "ffn.0.0", 3).rate_limited_calls, 2);

  // Plaintext: each connection is a client.
  c.tls = nullptr;
  ExpertServer plain(c);
  ExpertClient p1, p2;
  auto plain_call = [&](ExpertClient& client) { return call_at(plain.address(), client); };
  EXPECT_TRUE(plain_call(p1).ok);
  EXPECT_FALSE(plain_call(p1).ok);
  EXPECT_TRUE(plain_call(p2).ok);
}

TEST(RateLimiter, RefillsAtItsRateUpToTheBurst) {
  RateLimiter r({.rows_per_s = 100, .burst_s = 1});  // 100 rows at once (50 come back in 0.5 s)
  EXPECT_TRUE(r.admit("a", 100));
  EXPECT_FALSE(r.admit("a", 50));
  EXPECT_TRUE(r.admit("b", 100));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));  // >= 60 rows back
  EXPECT_TRUE(r.admit("a", 50));
  EXPECT_FALSE(r.admit("c", 101));  // more than the burst is never admitted
  EXPECT_TRUE(RateLimiter().admit("a", 1 << 30));  // no limit
  const RateLimitStats s = r.stats();
  EXPECT_EQ(s.limited_calls, 2);
  EXPECT_EQ(s.admitted_calls, 3);
}

}  // namespace
}  // namespace moe::net
