// The remote expert bank against the local SwiGLU bank on servers that do not fail, and its fault
// tolerance: servers that die, hang or answer slowly, all experts failing, k_min and the grace
// period, hedging to a replica, a restart that reloads its experts, malformed requests, and a grid
// layer whose gate finds its live experts prefix by prefix.
#include "net/remote_expert_bank.h"

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <random>
#include <thread>

#include "core/rng.h"
#include "expert.grpc.pb.h"
#include "io/safetensors.h"
#include "moe/expert_bank_swiglu.h"
#include "moe/moe_layer.h"
#include "moe/router_grid.h"
#include "moe/router_topk.h"
#include "net/expert_server.h"
#include "net/protocol.h"
#include "train/adamw.h"

namespace moe::net {
namespace {

using Clock = std::chrono::steady_clock;
constexpr int D = 16, F = 24;

class FixedLocator final : public ExpertLocator {
 public:
  using ExpertLocator::addresses;
  std::map<std::string, std::vector<std::string>> where;
  std::vector<std::string> addresses(const std::string& uid) override {
    auto it = where.find(uid);
    return it == where.end() ? std::vector<std::string>{} : it->second;
  }
};

std::string temp_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/moe_net_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

ExpertServerConfig server_config(const std::vector<std::string>& uids) {
  ExpertServerConfig c;
  c.uids = uids;
  c.d_model = D;
  c.d_ff = F;
  c.init_std = 0.2f;
  return c;
}

std::vector<std::string> layer_uids(int E) {
  std::vector<std::string> u;
  for (int e = 0; e < E; ++e) u.push_back("ffn.0." + std::to_string(e));
  return u;
}

std::vector<float> randn(int64_t n, uint64_t seed) {
  Rng r(seed);
  std::vector<float> v(n);
  for (auto& x : v) x = float(r.normal());
  return v;
}

// A local bank with the server's weights, read from its saved checkpoint.
std::unique_ptr<SwiGLUExpertBank> local_copy(const std::string& dir, int E) {
  auto b = std::make_unique<SwiGLUExpertBank>("local", SwiGLUBankConfig{.d_model = D, .d_ff = F, .n_experts = E});
  auto f = SafetensorsFile::open(dir + "/experts.safetensors");
  for (int e = 0; e < E; ++e) {
    const std::string u = "ffn.0." + std::to_string(e);
    f.read_into(u + ".w1", b->w1[e]->w.data(), b->w1[e]->w.numel());
    f.read_into(u + ".w3", b->w3[e]->w.data(), b->w3[e]->w.numel());
    f.read_into(u + ".w2", b->w2[e]->w.data(), b->w2[e]->w.numel());
  }
  return b;
}

std::shared_ptr<RemoteContext> context(std::shared_ptr<FixedLocator> loc, RemoteCallConfig c = {}) {
  return std::make_shared<RemoteContext>(c, std::move(loc));
}

TEST(RemoteExpertBank, ForwardBackwardMatchLocalBankAndServerStepsLikeAdamW) {
  const int E = 4;
  const std::string dir = temp_dir("match");
  auto cfg = server_config(layer_uids(E));
  cfg.checkpoint_dir = dir;
  cfg.lr = 1e-2f;  // the server's cap on the clients' learning rate
  ExpertServer server(cfg);
  server.save();
  auto local = local_copy(dir, E);
  auto loc = std::make_shared<FixedLocator>();
  for (auto& u : cfg.uids) loc->where[u] = {server.address()};
  RemoteExpertBank remote(context(loc), "ffn.0", E, D);

  const std::vector<int64_t> offsets = {0, 5, 5, 12, 20};  // expert 1 gets no rows
  const int64_t M = offsets.back();
  auto xs = randn(M * D, 1), dys = randn(M * D, 2);
  std::vector<float> y_l(M * D), y_r(M * D), dx_l(M * D), dx_r(M * D);
  local->forward(y_l.data(), xs.data(), offsets);
  remote.forward(y_r.data(), xs.data(), offsets);
  for (int e = 0; e < E; ++e) EXPECT_EQ((*remote.failed_experts())[e], 0);
  for (int64_t i = 0; i < M * D; ++i) ASSERT_NEAR(y_r[i], y_l[i], 1e-5f * (1 + std::fabs(y_l[i])));

  ParamList ps;
  local->params(ps);
  for (Param* p : ps) p->zero_grad();
  local->backward(dx_l.data(), dys.data());
  remote.set_learning_rate(1e-2f);
  remote.backward(dx_r.data(), dys.data());
  for (int64_t i = 0; i < M * D; ++i) ASSERT_NEAR(dx_r[i], dx_l[i], 1e-5f * (1 + std::fabs(dx_l[i])));

  // The server stepped each called expert's own AdamW once with lr 1e-2 (expert 1 untouched).
  EXPECT_EQ(server.steps("ffn.0.0"), 1);
  EXPECT_EQ(server.steps("ffn.0.1"), 0);
  for (int e : {0, 2, 3}) {
    ParamList one = {local->w1[e].get(), local->w2[e].get(), local->w3[e].get()};
    AdamW opt(one, AdamWConfig{});
    opt.step(1e-2f);
  }
  server.save();
  auto after = local_copy(dir, E);
  for (int e = 0; e < E; ++e)
    for (int64_t i = 0; i < after->w1[e]->w.numel(); ++i)
      ASSERT_NEAR(after->w1[e]->w[i], local->w1[e]->w[i], 1e-6f) << "expert " << e;
}

// A port nothing listens on: what a client sees of a server process that died (in-process servers
// may keep their listening socket a while after shutdown; a dead process's port refuses at once).
std::string dead_address() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  EXPECT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len), 0);
  ::close(fd);
  return "127.0.0.1:" + std::to_string(ntohs(a.sin_port));
}

TEST(RemoteExpertBank, DeadServerExpertsAreMaskedAndBanned) {
  ExpertServer b(server_config({"ffn.0.2", "ffn.0.3"}));
  const std::string dead = dead_address();
  auto loc = std::make_shared<FixedLocator>();
  loc->where = {{"ffn.0.0", {dead}}, {"ffn.0.1", {dead}}, {"ffn.0.2", {b.address()}}, {"ffn.0.3", {b.address()}}};
  RemoteCallConfig rc;
  rc.ban_base_s = 60;  // no ban ends during the test
  rc.forward_timeout_s = 1;
  auto ctx = context(loc, rc);
  RemoteExpertBank bank(ctx, "ffn.0", 4, D);
  const std::vector<int64_t> off = {0, 3, 6, 9, 12};
  auto xs = randn(12 * D, 3);
  std::vector<float> ys(12 * D);
  const auto t0 = Clock::now();
  bank.forward(ys.data(), xs.data(), off);
  // Refused at once, or (gRPC sometimes holds a call while it reconnects) at the deadline: never later.
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.5);
  const auto& f = *bank.failed_experts();
  EXPECT_EQ(f, (std::vector<uint8_t>{1, 1, 0, 0}));
  for (int64_t i = 0; i < 6 * D; ++i) ASSERT_EQ(ys[i], 0.0f);
  for (int64_t i = 6 * D; i < 12 * D; ++i) ASSERT_TRUE(std::isfinite(ys[i]));
  // Each dead expert's call was refused, retried once on the same server, refused again.
  const auto s = ctx->stats.take();
  EXPECT_EQ(s.calls, 6);
  EXPECT_EQ(s.failures, 4);
  EXPECT_FALSE(ctx->bans.banned(dead));  // 4 failures in a row: not yet
  bank.forward(ys.data(), xs.data(), off);
  EXPECT_TRUE(ctx->bans.banned(dead));   // the 5th
  ctx->stats.take();
  // Banned: the next forward does not call it (its experts fail at once, no server to call).
  bank.forward(ys.data(), xs.data(), off);
  EXPECT_EQ(*bank.failed_experts(), (std::vector<uint8_t>{1, 1, 0, 0}));
  const auto s2 = ctx->stats.take();
  EXPECT_EQ(s2.calls, 4);
  EXPECT_EQ(s2.failures, 2);
  EXPECT_LT(s2.latency_p99_ms, 1000.0);
}

TEST(RemoteExpertBank, AllExpertsFailingGivesResidualOnlyWithoutNaN) {
  ExpertServerConfig c = server_config(layer_uids(4));
  c.fail_rate = 1.0;
  ExpertServer s(c);
  auto loc = std::make_shared<FixedLocator>();
  for (auto& u : c.uids) loc->where[u] = {s.address()};
  const int n = 10;
  auto router = std::make_unique<TopKRouter>("gate", TopKRouterConfig{.d_model = D, .n_expert = 4, .k = 2});
  Rng rng(5);
  ParamList rp;
  router->params(rp);
  for (Param* p : rp) for (int64_t i = 0; i < p->w.numel(); ++i) p->w[i] = float(rng.normal());
  MoELayer layer(std::move(router), std::make_unique<RemoteExpertBank>(context(loc), "ffn.0", 4, D), D);
  auto x = randn(n * D, 6), dy = randn(n * D, 7);
  std::vector<float> y(n * D, 1.0f), dx(n * D, 0.0f);
  layer.forward(y.data(), x.data(), n);
  for (float v : y) ASSERT_EQ(v, 0.0f);
  layer.backward(dx.data(), dy.data());
  for (float v : dx) ASSERT_TRUE(std::isfinite(v));
}

TEST(RemoteExpertBank, KMinAndGraceDoNotWaitForASlowServer) {
  ExpertServer fast(server_config({"ffn.0.0", "ffn.0.1"}));
  ExpertServerConfig sc = server_config({"ffn.0.2", "ffn.0.3"});
  sc.delay_ms = 3000;
  ExpertServer slow(sc);
  auto loc = std::make_shared<FixedLocator>();
  loc->where = {{"ffn.0.0", {fast.address()}}, {"ffn.0.1", {fast.address()}},
                {"ffn.0.2", {slow.address()}}, {"ffn.0.3", {slow.address()}}};
  RemoteCallConfig rc;
  rc.k_min = 1;
  rc.grace_s = 0.05;
  rc.forward_timeout_s = 10;
  auto ctx = context(loc, rc);
  RemoteExpertBank bank(ctx, "ffn.0", 4, D);
  // Every token has one fast and one slow expert: with k_min 1 it waits for the fast one + grace.
  RoutingPlan plan;
  plan.n_tok = 4;
  plan.k = 2;
  plan.n_expert = 4;
  plan.expert = {0, 2, 1, 3, 0, 3, 1, 2};
  plan.weight = std::vector<float>(8, 0.5f);
  bank.observe_plan(plan);
  const std::vector<int64_t> off = {0, 2, 4, 6, 8};
  auto xs = randn(8 * D, 8);
  std::vector<float> ys(8 * D);
  const auto t0 = Clock::now();
  bank.forward(ys.data(), xs.data(), off);
  const double took = std::chrono::duration<double>(Clock::now() - t0).count();
  EXPECT_LT(took, 1.5);
  EXPECT_EQ(*bank.failed_experts(), (std::vector<uint8_t>{0, 0, 1, 1}));
  const auto s = ctx->stats.take();
  EXPECT_EQ(s.below_k_min, 0);

  // k_min 2: the tokens now wait for the slow experts up to the deadline.
  RemoteCallConfig rc2 = rc;
  rc2.k_min = 2;
  rc2.forward_timeout_s = 0.5;
  auto ctx2 = context(loc, rc2);
  RemoteExpertBank bank2(ctx2, "ffn.0", 4, D);
  bank2.observe_plan(plan);
  const auto t1 = Clock::now();
  bank2.forward(ys.data(), xs.data(), off);
  const double took2 = std::chrono::duration<double>(Clock::now() - t1).count();
  EXPECT_GE(took2, 0.45);
  EXPECT_LT(took2, 1.5);  // the deadline, not the 3 s of the slow server
  EXPECT_EQ(ctx2->stats.take().below_k_min, 4);
}

TEST(RemoteExpertBank, SlowServerIsHedgedToAReplica) {
  ExpertServerConfig sc = server_config({"ffn.0.0"});
  sc.delay_ms = 3000;
  ExpertServer slow(sc);
  ExpertServer replica(server_config({"ffn.0.0"}));
  auto loc = std::make_shared<FixedLocator>();
  loc->where = {{"ffn.0.0", {slow.address(), replica.address()}}};
  RemoteCallConfig rc;
  rc.hedge_after_s = 0.2;
  auto ctx = context(loc, rc);
  RemoteExpertBank bank(ctx, "ffn.0", 1, D);
  auto xs = randn(3 * D, 9);
  std::vector<float> ys(3 * D);
  const auto t0 = Clock::now();
  bank.forward(ys.data(), xs.data(), {0, 3});
  EXPECT_LT(std::chrono::duration<double>(Clock::now() - t0).count(), 1.5);
  EXPECT_EQ((*bank.failed_experts())[0], 0);
  // The backward goes to the replica whose weights answered (the slow one never steps).
  std::vector<float> dx(3 * D), dy = randn(3 * D, 10);
  bank.backward(dx.data(), dy.data());
  EXPECT_EQ(replica.steps("ffn.0.0"), 1);
  EXPECT_EQ(slow.steps("ffn.0.0"), 0);
}

TEST(RemoteExpertBank, FailedCallIsRetriedOnAReplica) {
  ExpertServerConfig bad = server_config({"ffn.0.0"});
  bad.fail_rate = 1.0;
  ExpertServer failing(bad);
  ExpertServer good(server_config({"ffn.0.0"}));
  auto loc = std::make_shared<FixedLocator>();
  loc->where = {{"ffn.0.0", {failing.address(), good.address()}}};
  RemoteExpertBank bank(context(loc), "ffn.0", 1, D);
  auto xs = randn(2 * D, 11);
  std::vector<float> ys(2 * D);
  bank.forward(ys.data(), xs.data(), {0, 2});
  EXPECT_EQ((*bank.failed_experts())[0], 0);
}

TEST(ExpertServer, RestartReloadsExpertsAndOptimizerState) {
  const std::string dir = temp_dir("restart");
  auto cfg = server_config({"ffn.1.0", "ffn.1.1"});
  cfg.checkpoint_dir = dir;
  ExpertClient client;
  std::vector<float> before;
  {
    ExpertServer s(cfg);
    EXPECT_FALSE(s.reloaded());
    auto loc = std::make_shared<FixedLocator>();
    loc->where = {{"ffn.1.0", {s.address()}}, {"ffn.1.1", {s.address()}}};
    RemoteExpertBank bank(context(loc), "ffn.1", 2, D);
    auto xs = randn(4 * D, 12), dy = randn(4 * D, 13);
    std::vector<float> ys(4 * D), dx(4 * D);
    bank.forward(ys.data(), xs.data(), {0, 2, 4});
    bank.backward(dx.data(), dy.data());
    bank.forward(ys.data(), xs.data(), {0, 2, 4});
    before = ys;
    s.save();
  }
  ExpertServer s2(cfg);
  EXPECT_TRUE(s2.reloaded());
  EXPECT_EQ(s2.steps("ffn.1.0"), 1);
  auto loc = std::make_shared<FixedLocator>();
  loc->where = {{"ffn.1.0", {s2.address()}}, {"ffn.1.1", {s2.address()}}};
  RemoteExpertBank bank(context(loc), "ffn.1", 2, D);
  auto xs = randn(4 * D, 12);
  std::vector<float> ys(4 * D);
  bank.forward(ys.data(), xs.data(), {0, 2, 4});
  EXPECT_EQ(ys, before);
  // A server of another width refuses the saved experts.
  auto wrong = cfg;
  wrong.d_ff = F + 1;
  EXPECT_THROW(ExpertServer{wrong}, Error);
}

// Sends raw bytes as a Forward request: the server must answer with an error status, never crash.
grpc::Status raw_call(const std::string& address, const std::string& method, const std::string& bytes) {
  auto ch = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(ch);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  grpc::Slice slice(bytes);
  grpc::ByteBuffer req(&slice, 1), rep;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  grpc::Status out;
  stub.UnaryCall(&ctx, method, grpc::StubOptions(), &req, &rep, [&](grpc::Status s) {
    std::lock_guard<std::mutex> lk(mu);
    out = s;
    done = true;
    cv.notify_all();
  });
  std::unique_lock<std::mutex> lk(mu);
  cv.wait(lk, [&] { return done; });
  return out;
}

TEST(ExpertServer, RejectsMalformedRequestsAndKeepsServing) {
  ExpertServer s(server_config({"ffn.0.0"}));
  const std::string m = "/moe.expert.v1.Expert/Forward";
  pb::ForwardRequest ok;
  ok.set_version(kProtocolVersion);
  ok.set_uid("ffn.0.0");
  auto x = randn(2 * D, 14);
  to_matrix(*ok.mutable_input(), x.data(), 2, D);
  EXPECT_TRUE(raw_call(s.address(), m, ok.SerializeAsString()).ok());

  auto expect_rejected = [&](pb::ForwardRequest r, grpc::StatusCode code, const char* what) {
    const grpc::Status st = raw_call(s.address(), m, r.SerializeAsString());
    EXPECT_EQ(st.error_code(), code) << what << ": " << st.error_message();
  };
  auto r = ok;
  r.set_version(2);
  expect_rejected(r, grpc::StatusCode::FAILED_PRECONDITION, "version");
  r = ok;
  r.set_uid("ffn.0.9");
  expect_rejected(r, grpc::StatusCode::NOT_FOUND, "uid");
  r = ok;
  r.mutable_input()->set_cols(D + 1);
  expect_rejected(r, grpc::StatusCode::INVALID_ARGUMENT, "shape");
  r = ok;
  r.mutable_input()->set_dtype("bf16");
  expect_rejected(r, grpc::StatusCode::INVALID_ARGUMENT, "dtype");
  r = ok;
  r.mutable_input()->set_rows(3);
  expect_rejected(r, grpc::StatusCode::INVALID_ARGUMENT, "size");
  r = ok;
  r.mutable_input()->set_rows(-1);
  expect_rejected(r, grpc::StatusCode::INVALID_ARGUMENT, "negative rows");
  r = ok;
  auto nan = x;
  nan[5] = std::nanf("");
  to_matrix(*r.mutable_input(), nan.data(), 2, D);
  expect_rejected(r, grpc::StatusCode::INVALID_ARGUMENT, "NaN");
  r = ok;
  nan[5] = INFINITY;
  to_matrix(*r.mutable_input(), nan.data(), 2, D);
  expect_rejected(r, grpc::StatusCode::INVALID_ARGUMENT, "Inf");

  // Fuzzed bytes: random, and valid messages with bytes flipped or cut.
  std::mt19937 rng(42);
  const std::string good = ok.SerializeAsString();
  for (int i = 0; i < 300; ++i) {
    std::string b;
    if (i % 3 == 0) {
      b.resize(rng() % 200);
      for (auto& ch : b) ch = char(rng());
    } else if (i % 3 == 1) {
      b = good;
      for (int j = 0; j < 4; ++j) b[rng() % b.size()] = char(rng());
    } else {
      b = good.substr(0, rng() % good.size());
    }
    const grpc::Status st = raw_call(s.address(), i % 2 ? m : "/moe.expert.v1.Expert/Backward", b);
    (void)st;  // any status; the server must survive
  }
  EXPECT_TRUE(raw_call(s.address(), m, good).ok());
  EXPECT_GT(s.stats().rejected, 8);
}

TEST(ExpertServer, RetriedBackwardStepsOnce) {
  ExpertServer s(server_config({"ffn.0.0"}));
  ExpertClient client;
  auto x = randn(3 * D, 16), dy = randn(3 * D, 17);
  auto call = [&](uint64_t id) {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    CallResult out;
    auto h = client.backward(s.address(), "ffn.0.0", x.data(), dy.data(), 3, D, 1e-3f, 10, id, [&](CallResult&& r) {
      std::lock_guard<std::mutex> lk(mu);
      out = std::move(r);
      done = true;
      cv.notify_all();
    });
    std::unique_lock<std::mutex> lk(mu);
    cv.wait(lk, [&] { return done; });
    return out;
  };
  const CallResult a = call(77), b = call(77);
  ASSERT_TRUE(a.ok && b.ok);
  EXPECT_EQ(a.out, b.out);  // the remembered answer
  EXPECT_EQ(s.steps("ffn.0.0"), 1);
  ASSERT_TRUE(call(78).ok);
  EXPECT_EQ(s.steps("ffn.0.0"), 2);
  ASSERT_TRUE(call(0).ok);  // id 0: no memory
  ASSERT_TRUE(call(0).ok);
  EXPECT_EQ(s.steps("ffn.0.0"), 4);
}

TEST(ExpertServer, BadConfigAndPortInUse) {
  ExpertServer a(server_config({"ffn.0.0"}));
  auto c = server_config({"ffn.0.0"});
  c.listen = "127.0.0.1:" + std::to_string(a.port());
  EXPECT_THROW(ExpertServer{c}, Error);
  EXPECT_THROW(ExpertServer{server_config({})}, Error);
  auto dup = server_config({"ffn.0.0", "ffn.0.0"});
  EXPECT_THROW(ExpertServer{dup}, Error);
}

TEST(ExpertServer, ConcurrentRequestsToOneExpertShareABatch) {
  // Wide enough that a GEMM takes milliseconds and calls queue up behind it.
  ExpertServerConfig c = server_config({"ffn.0.0"});
  c.d_model = 256;
  c.d_ff = 1024;
  ExpertServer s(c);
  ExpertClient client;
  std::mutex mu;
  std::condition_variable cv;
  int done = 0, ok = 0;
  const int calls = 32;
  auto x = randn(256 * 256, 15);
  std::vector<std::shared_ptr<PendingCall>> keep;
  for (int i = 0; i < calls; ++i)
    keep.push_back(client.forward(s.address(), "ffn.0.0", x.data(), 256, 256, 30, [&](CallResult&& r) {
      std::lock_guard<std::mutex> lk(mu);
      ++done;
      ok += r.ok;
      cv.notify_all();
    }));
  std::unique_lock<std::mutex> lk(mu);
  cv.wait(lk, [&] { return done == calls; });
  EXPECT_EQ(ok, calls);
  const auto st = s.stats();
  EXPECT_EQ(st.forward_calls, calls);
  EXPECT_LT(st.forward_batches, calls);  // some calls were computed together
}


namespace moe::net {
namespace {

TEST(BanList, RandomFailuresRarelyBanButAFailingServerIsBannedWithBackoff) {
  RemoteCallConfig c;
  c.ban_base_s = 0.2;
  BanList bans(c);
  // 10% of calls failing at random, even 4 in a row: never banned.
  for (int i = 0; i < 64; ++i) {
    if (i % 10 == 3 || (i >= 40 && i < 44)) bans.failure("a");
    else bans.success("a");
    ASSERT_FALSE(bans.banned("a")) << i;
  }
  for (int i = 0; i < 4; ++i) bans.failure("b");
  EXPECT_FALSE(bans.banned("b"));
  bans.failure("b");
  EXPECT_TRUE(bans.banned("b"));
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_FALSE(bans.banned("b"));
  for (int i = 0; i < 5; ++i) bans.failure("b");  // second ban: twice as long
  std::this_thread::sleep_for(std::chrono::milliseconds(250));
  EXPECT_TRUE(bans.banned("b"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_FALSE(bans.banned("b"));
}

// A fixed locator that also answers prefix questions, as the DHT's prefix records do.
class GridLocator final : public ExpertLocator {
 public:
  using ExpertLocator::addresses;
  std::map<std::string, std::vector<std::string>> where;
  std::vector<std::string> asked;
  std::vector<std::string> addresses(const std::string& uid) override {
    auto it = where.find(uid);
    return it == where.end() ? std::vector<std::string>{} : it->second;
  }
  std::optional<std::map<int, std::vector<std::string>>> live_children(const std::string& prefix) override {
    asked.push_back(prefix);
    std::map<int, std::vector<std::string>> out;
    for (const auto& [uid, addrs] : where) {
      if (uid.rfind(prefix + ".", 0) != 0) continue;
      const std::string rest = uid.substr(prefix.size() + 1);
      const size_t dot = rest.find('.');
      auto& v = out[std::stoi(rest.substr(0, dot))];
      if (dot == std::string::npos) v = addrs;
    }
    return out;
  }
};

// Prefix answers that miss experts until refreshed, as a fresh DHT node's first lookups can.
class PartialLocator final : public ExpertLocator {
 public:
  using ExpertLocator::addresses;
  bool full = false;
  int refreshes_allowed = 1;
  std::vector<std::string> addresses(const std::string&) override { return {}; }
  std::optional<std::map<int, std::vector<std::string>>> live_children(const std::string&) override {
    std::map<int, std::vector<std::string>> out{{0, {"127.0.0.1:1"}}};
    if (full)
      for (int e = 1; e < 4; ++e) out[e] = {"127.0.0.1:1"};
    return out;
  }
  bool refresh(const std::string&) override {
    if (refreshes_allowed == 0) return false;
    --refreshes_allowed;
    full = true;
    return true;
  }
};

TEST(RemoteExpertBank, AnAnswerMissingExpertsIsAskedAgainBeforeRoutingAround) {
  auto loc = std::make_shared<PartialLocator>();
  auto ctx = std::make_shared<RemoteContext>(RemoteCallConfig{}, loc);
  RemoteExpertBank bank(ctx, "ffn.0", 4, D);
  EXPECT_EQ(bank.available_experts(), nullptr);  // refreshed: every expert is live
  EXPECT_EQ(ctx->stats.take().unavailable, 0);

  // A locator that will not ask again: the missing experts are routed around and counted.
  auto stale = std::make_shared<PartialLocator>();
  stale->refreshes_allowed = 0;
  auto ctx2 = std::make_shared<RemoteContext>(RemoteCallConfig{}, stale);
  RemoteExpertBank bank2(ctx2, "ffn.0", 4, D);
  const auto* live = bank2.available_experts();
  ASSERT_NE(live, nullptr);
  EXPECT_EQ(*live, (std::vector<uint8_t>{1, 0, 0, 0}));
  EXPECT_EQ(ctx2->stats.take().unavailable, 3);
}

struct MaskLive final : GridLiveness {
  std::vector<uint8_t> live;  // [4] on a 2 x 2 grid
  std::vector<int> live_children(const std::vector<int>& p) override {
    std::vector<int> out;
    for (int c = 0; c < 2; ++c)
      if (p.empty() ? (live[2 * c] || live[2 * c + 1]) : bool(live[2 * p[0] + c])) out.push_back(c);
    return out;
  }
};

TEST(RemoteExpertBank, GridLayerRoutesToLiveExpertsAndMatchesTheLocalLayer) {
  // Experts ffn.0.i.j of a 2 x 2 grid; (1, 1) has no server, (0, 1) only a dead one.
  const std::string dir = temp_dir("grid");
  auto cfg = server_config({"ffn.0.0.0", "ffn.0.1.0", "ffn.0.0.1"});
  cfg.checkpoint_dir = dir;
  ExpertServer server(cfg);
  server.save();
  auto local = std::make_unique<SwiGLUExpertBank>("local", SwiGLUBankConfig{.d_model = D, .d_ff = F, .n_experts = 4});
  {
    auto f = SafetensorsFile::open(dir + "/experts.safetensors");
    for (int e = 0; e < 3; ++e) {
      const std::string u = "ffn.0." + std::to_string(e / 2) + "." + std::to_string(e % 2);
      f.read_into(u + ".w1", local->w1[e]->w.data(), local->w1[e]->w.numel());
      f.read_into(u + ".w3", local->w3[e]->w.data(), local->w3[e]->w.numel());
      f.read_into(u + ".w2", local->w2[e]->w.data(), local->w2[e]->w.numel());
    }
  }
  auto loc = std::make_shared<GridLocator>();
  loc->where = {{"ffn.0.0.0", {server.address()}}, {"ffn.0.1.0", {server.address()}}, {"ffn.0.0.1", {dead_address()}}};
  RemoteCallConfig rc;
  rc.ban_after = 1;
  rc.ban_base_s = 60;
  auto ctx = context(nullptr, rc);
  ctx->locator = loc;
  const GridRouterConfig gc{.d_model = D, .grid = GridShape{{2, 2}}, .k = 2};
  auto make_router = [&] {
    auto r = std::make_unique<GridRouter>("gate", gc);
    Rng rng(17);
    for (int64_t i = 0; i < r->gate.w.numel(); ++i) r->gate.w[i] = float(rng.normal());
    r->set_training(true);
    return r;
  };
  MoELayer remote(make_router(), std::make_unique<RemoteExpertBank>(ctx, "ffn.0", 4, D, std::vector<int>{2, 2}), D);
  EXPECT_EQ(static_cast<RemoteExpertBank&>(remote.bank()).uid(3), "ffn.0.1.1");

  const int n = 16;
  auto x = randn(n * D, 21), dy = randn(n * D, 22);
  std::vector<float> y(n * D), dx(n * D);
  // First step: the dead server's expert is chosen where it scores, its call fails and it is banned.
  remote.forward(y.data(), x.data(), n);
  EXPECT_EQ(std::count(remote.plan().expert.begin(), remote.plan().expert.end(), 3), 0);
  for (float v : y) ASSERT_TRUE(std::isfinite(v));
  EXPECT_TRUE(ctx->bans.banned(loc->where["ffn.0.0.1"][0]));
  // From now on the gate sees only experts 0 and 2: the remote layer equals a local layer whose
  // gate knows the same live set, forward and backward.
  loc->asked.clear();
  remote.forward(y.data(), x.data(), n);
  std::sort(loc->asked.begin(), loc->asked.end());  // one question per prefix
  EXPECT_EQ(loc->asked, (std::vector<std::string>{"ffn.0", "ffn.0.0", "ffn.0.1"}));
  MaskLive live;
  live.live = {1, 0, 1, 0};
  auto lr = make_router();
  lr->set_liveness(&live);
  MoELayer ref(std::move(lr), std::move(local), D);
  std::vector<float> y_ref(n * D), dx_ref(n * D);
  ref.forward(y_ref.data(), x.data(), n);
  EXPECT_EQ(remote.plan().expert, ref.plan().expert);
  EXPECT_EQ(*remote.bank().failed_experts(), (std::vector<uint8_t>{0, 0, 0, 0}));
  for (int i = 0; i < n * D; ++i) ASSERT_NEAR(y[i], y_ref[i], 1e-5f * (1 + std::fabs(y_ref[i])));
  ParamList pr, pl;
  remote.params(pr);
  ref.params(pl);
  for (Param* p : pr) p->zero_grad();
  for (Param* p : pl) p->zero_grad();
  remote.backward(dx.data(), dy.data());
  ref.backward(dx_ref.data(), dy.data());
  for (int i = 0; i < n * D; ++i) ASSERT_NEAR(dx[i], dx_ref[i], 1e-4f * (1 + std::fabs(dx_ref[i])));
  for (int64_t i = 0; i < pr[0]->g.numel(); ++i) ASSERT_NEAR(pr[0]->g[i], pl[0]->g[i], 1e-4f * (1 + std::fabs(pl[0]->g[i])));

  // Too few live experts is counted, not silent: with one live expert every token is short of
  // k_min = 2; with none, every token keeps only the residual.
  ctx->cfg.k_min = 2;
  ctx->stats.take();
  remote.forward(y.data(), x.data(), n);
  EXPECT_EQ(ctx->stats.take().below_k_min, 0);
  loc->where.erase("ffn.0.1.0");
  remote.forward(y.data(), x.data(), n);
  ExpertCallSummary s = ctx->stats.take();
  EXPECT_EQ(s.below_k_min, n);
  EXPECT_EQ(s.no_expert, 0);
  loc->where.erase("ffn.0.0.0");
  remote.forward(y.data(), x.data(), n);
  s = ctx->stats.take();
  EXPECT_EQ(s.below_k_min, n);
  EXPECT_EQ(s.no_expert, n);
  for (float v : y) ASSERT_TRUE(std::isfinite(v));
}

// Two of eight experts on a lying server: after the first answers set the layer's typical output
// size, its answers fail validation (NaN replies fail at once), it is banned within a few steps,
// and the honest experts' answers are untouched.
TEST(RemoteExpertBank, LyingServerIsCaughtAndBanned) {
  for (const char* mode : {"scale", "nan", "random"}) {
    SCOPED_TRACE(mode);
    auto hc = server_config({"ffn.0.0", "ffn.0.1", "ffn.0.2", "ffn.0.3", "ffn.0.4", "ffn.0.5"});
    hc.init_std = 0.02f;  // an expert's outputs then are far below N(0, 1) noise, as in a trained LM
    auto lc = server_config({"ffn.0.6", "ffn.0.7"});
    lc.init_std = 0.02f;
    lc.attack = mode;
    ExpertServer honest(hc), liar(lc);
    auto loc = std::make_shared<FixedLocator>();
    for (auto& u : hc.uids) loc->where[u] = {honest.address()};
    for (auto& u : lc.uids) loc->where[u] = {liar.address()};
    RemoteCallConfig rc;
    rc.ban_base_s = 60;
    rc.output_factor = 10;  // the default (100) lets a x100 liar through at the border
    auto ctx = context(loc, rc);
    RemoteExpertBank bank(ctx, "ffn.0", 8, D);
    std::vector<int64_t> off;
    for (int e = 0; e <= 8; ++e) off.push_back(8 * e);  // 8 rows: enough to judge their size
    auto xs = randn(64 * D, 9);
    std::vector<float> ys(64 * D);
    int step = 0;
    for (; step < 10 && !ctx->bans.banned(liar.address()); ++step) {
      bank.forward(ys.data(), xs.data(), off);
      for (float v : ys) ASSERT_TRUE(std::isfinite(v));
      for (int e = 0; e < 6; ++e) EXPECT_EQ((*bank.failed_experts())[e], 0) << e;
      if (step > 0 || std::string(mode) == "nan") {
        EXPECT_EQ((*bank.failed_experts())[6], 1);
        for (int64_t i = 48 * D; i < 56 * D; ++i) ASSERT_EQ(ys[i], 0.0f);
      }
    }
    EXPECT_TRUE(ctx->bans.banned(liar.address()));
    EXPECT_LE(step, std::string(mode) == "nan" ? 4 : 1);  // a lie bans at once; NaN replies count 5 failures
    EXPECT_FALSE(ctx->bans.banned(honest.address()));
    if (std::string(mode) == "scale") {
      EXPECT_GE(ctx->stats.take().invalid, 2);  // noise fails the canary row first, NaN the reply check
    }
  }
}

// Noise at the size of honest answers passes the size check; the canary row (a copy of the first
// row, whose two answers must agree) catches it from the first call, and the server is banned.
TEST(RemoteExpertBank, NoiseAtTheHonestScaleFailsTheCanaryRow) {
  auto lc = server_config({"ffn.0.0"});
  lc.init_std = 0.5f;  // honest answers of RMS ~1, like the noise
  lc.attack = "random";
  ExpertServer liar(lc);
  auto loc = std::make_shared<FixedLocator>();
  loc->where["ffn.0.0"] = {liar.address()};
  for (bool canary : {false, true}) {
    RemoteCallConfig rc;
    rc.canary_rows = canary;
    rc.ban_base_s = 60;
    auto ctx = context(loc, rc);
    RemoteExpertBank bank(ctx, "ffn.0", 1, D);
    const std::vector<int64_t> off = {0, 4};
    auto xs = randn(4 * D, 5);
    std::vector<float> ys(4 * D);
    bank.forward(ys.data(), xs.data(), off);
    EXPECT_EQ((*bank.failed_experts())[0], canary ? 1 : 0) << "canary " << canary;
    for (int i = 0; i < 3; ++i) bank.forward(ys.data(), xs.data(), off);
    EXPECT_EQ(ctx->bans.banned(liar.address()), canary);
  }
}

// A client sending gradients x1e6 or NaN: the server applies none of them, counts them against that
// client, refuses it after repeated rejections, and keeps serving an honest client.
TEST(ExpertServer, PoisonedGradientsAreRejectedAndTheClientRefused) {
  auto cfg = server_config({"ffn.0.0"});
  cfg.guard.warmup = 4;
  cfg.guard.refuse_s = 60;
  ExpertServer server(cfg);
  auto loc = std::make_shared<FixedLocator>();
  loc->where["ffn.0.0"] = {server.address()};
  RemoteCallConfig honest_cfg;
  honest_cfg.ban_base_s = 60;
  auto honest = context(loc, honest_cfg);
  const std::vector<int64_t> off = {0, 6};
  auto xs = randn(6 * D, 3);
  std::vector<float> dys = randn(6 * D, 4), ys(6 * D), dx(6 * D);
  for (float& v : dys) v *= 1e-3f;  // the size of an LM's dL/dy
  RemoteExpertBank hb(honest, "ffn.0", 1, D);
  hb.set_learning_rate(1e-3f);
  for (int i = 0; i < 5; ++i) {
    hb.forward(ys.data(), xs.data(), off);
    hb.backward(dx.data(), dys.data());
  }
  EXPECT_EQ(server.steps("ffn.0.0"), 5);
  for (const char* mode : {"scale", "nan"}) {
    SCOPED_TRACE(mode);
    const int64_t steps0 = server.steps("ffn.0.0");
    RemoteCallConfig pc;
    pc.poison_gradients = mode;
    auto poisoner = context(loc, pc);  // its own channel: another client to the server
    RemoteExpertBank pb(poisoner, "ffn.0", 1, D);
    pb.set_learning_rate(1e-3f);
    const int64_t rejected0 = server.stats().gradients.rejected;
    for (int i = 0; i < 4; ++i) {
      pb.forward(ys.data(), xs.data(), off);
      pb.backward(dx.data(), dys.data());
      for (float v : dx) ASSERT_EQ(v, 0.0f);  // rejected: no input gradient comes back
    }
    EXPECT_EQ(server.steps("ffn.0.0"), steps0);  // no poisoned step
    EXPECT_GE(server.stats().gradients.rejected - rejected0, 5);  // with the same-server retries
    // Refused now, even its forward calls; the honest client is still served and still steps.
    pb.forward(ys.data(), xs.data(), off);
    EXPECT_EQ((*pb.failed_experts())[0], 1);
    hb.forward(ys.data(), xs.data(), off);
    EXPECT_EQ((*hb.failed_experts())[0], 0);
    hb.backward(dx.data(), dys.data());
  }
  EXPECT_EQ(server.steps("ffn.0.0"), 7);
  const auto st = server.stats().gradients;
  EXPECT_GT(st.refused_calls, 0);
  EXPECT_EQ(st.rejected_by_client.size(), 2u);  // the two poisoners, never the honest client
}

}  // namespace
}  // namespace moe::net

// A liar that negates its answers passes the size check and the canary row (it is consistent).
// Replica comparison catches it: with three replicas of the same weights, the liar is outvoted,
// banned and its answers replaced by the majority's; with two, the disagreement is counted and
// logged, and nobody is banned (either could be lying).
TEST(RemoteExpertBank, ReplicaComparisonOutvotesAConsistentLiar) {
  auto hc = server_config(layer_uids(2));
  hc.seed = 5;  // the same seed: every replica has the same weights
  auto lc = hc;
  lc.attack = "flip";
  ExpertServer h1(hc), h2(hc), liar(lc);
  const std::vector<int64_t> off = {0, 8, 16};
  auto xs = randn(16 * D, 31);
  std::vector<float> ys(16 * D), ref(16 * D);
  {  // the honest answer
    auto loc = std::make_shared<FixedLocator>();
    for (auto& u : hc.uids) loc->where[u] = {h1.address()};
    RemoteExpertBank bank(context(loc), "ffn.0", 2, D);
    bank.forward(ref.data(), xs.data(), off);
  }
  for (int replicas : {3, 2}) {
    SCOPED_TRACE(replicas);
    auto loc = std::make_shared<FixedLocator>();
    for (auto& u : hc.uids) {
      loc->where[u] = {liar.address(), h1.address()};  // the liar first: its answer is the one used
      if (replicas == 3) loc->where[u].push_back(h2.address());
    }
    RemoteCallConfig rc;
    rc.compare_fraction = 1;
    rc.ban_base_s = 60;
    auto ctx = context(loc, rc);
    RemoteExpertBank bank(ctx, "ffn.0", 2, D);
    bank.forward(ys.data(), xs.data(), off);
    const ExpertCallSummary s = ctx->stats.take();
    EXPECT_EQ(s.replica_checks, 2);
    const std::vector<ReplicaEvidence> ev = ctx->evidence.take();
    ASSERT_EQ(ev.size(), 2u);
    if (replicas == 3) {
      EXPECT_EQ(s.replica_lies, 2);
      EXPECT_TRUE(ctx->bans.banned(liar.address()));
      EXPECT_FALSE(ctx->bans.banned(h1.address()));
      for (int i = 0; i < 16 * D; ++i) ASSERT_NEAR(ys[i], ref[i], 1e-5f * (1 + std::fabs(ref[i])));
      for (const ReplicaEvidence& e : ev) {
        EXPECT_EQ(e.verdict.kind, ReplicaVerdict::Lie);
        EXPECT_EQ(e.verdict.liars, std::vector<std::string>{liar.address()});
        ASSERT_EQ(e.verdict.distance.size(), 3u);
        EXPECT_NEAR(e.verdict.distance[1], 2.0, 1e-4);  // -a against a: |2a| / |a|
      }
      // From now on the liar is not called: answers come from the honest replicas, and agree.
      bank.forward(ys.data(), xs.data(), off);
      const ExpertCallSummary s2 = ctx->stats.take();
      EXPECT_EQ(s2.replica_checks, 2);
      EXPECT_EQ(s2.replica_lies + s2.replica_undecided, 0);
      for (int i = 0; i < 16 * D; ++i) ASSERT_NEAR(ys[i], ref[i], 1e-5f * (1 + std::fabs(ref[i])));
    } else {
      EXPECT_EQ(s.replica_lies, 0);
      EXPECT_EQ(s.replica_undecided, 2);
      EXPECT_FALSE(ctx->bans.banned(liar.address()));
      EXPECT_FALSE(ctx->bans.banned(h1.address()));
      for (const ReplicaEvidence& e : ev) EXPECT_EQ(e.verdict.kind, ReplicaVerdict::Undecided);
    }
  }
  // Honest replicas (the same weights) agree: no lie, nothing undecided, no evidence.
  auto loc = std::make_shared<FixedLocator>();
  for (auto& u : hc.uids) loc->where[u] = {h1.address(), h2.address()};
  RemoteCallConfig rc;
  rc.compare_fraction = 1;
  auto ctx = context(loc, rc);
  RemoteExpertBank bank(ctx, "ffn.0", 2, D);
  bank.forward(ys.data(), xs.data(), off);
  const ExpertCallSummary s = ctx->stats.take();
  EXPECT_EQ(s.replica_checks, 2);
  EXPECT_EQ(s.replica_lies + s.replica_undecided, 0);
  EXPECT_TRUE(ctx->evidence.take().empty());
}

TEST(ReplicaCheck, RelativeDistance) {
  const std::vector<float> a = {3, 4}, b = {3, 4}, c = {-3, -4}, z = {0, 0};
  EXPECT_EQ(relative_distance(a.data(), b.data(), 2), 0.0);
  EXPECT_NEAR(relative_distance(a.data(), c.data(), 2), 2.0, 1e-12);
  EXPECT_NEAR(relative_distance(z.data(), a.data(), 2), std::sqrt(12.5), 1e-12);  // RMS of b
}

}  // namespace
}  // namespace moe::net
