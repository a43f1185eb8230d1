// Pinned TLS: a client reaches a TLS server only with a channel pinned to that server's identity
// key; a channel pinned to another key (a server that cannot prove the record's key), a plain
// channel to a TLS server and a pinned channel to a plain server all fail, within the deadline.
#include "net/tls.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>

#include "core/error.h"
#include "net/expert_client.h"
#include "net/expert_server.h"
#include "net/identity.h"

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

}  // namespace
}  // namespace moe::net
