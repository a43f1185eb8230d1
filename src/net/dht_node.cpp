#include "net/dht_node.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <opendht/dhtrunner.h>
#include <opendht/network_utils.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <utility>

#include "core/error.h"
#include "net/identity.h"
#include "net/record_codec.h"
#include "net/record_signature.h"

namespace moe::net {
namespace {

using Json = nlohmann::json;
using SteadyClock = std::chrono::steady_clock;

// Our nodes talk only to each other: a network id of their own keeps them off the public OpenDHT
// network (id 0) even if someone bootstraps from a public node by mistake.
constexpr dht::NetId kNetworkId = 0x6d6f6531;  // "moe1"
constexpr dht::ValueType::Id kRecordType = 0x6d6f;
// Storage lifetime of the record type. A put's value lives `created + kStorageLife` on the storing
// nodes, so announce() back-dates `created` to make that now + ttl (+ slack): the DHT then drops a
// dead server's records about when they expire instead of keeping garbage for kStorageLife.
constexpr std::chrono::seconds kStorageLife{3600};
constexpr std::chrono::seconds kStorageSlack{5};
// Bounded wait for a graceful leave before the hard stop. The leave hands stored values to
// neighbours; records are replicated and re-announced anyway, so it is not worth waiting for when
// the neighbours are gone too (the last node of a network would wait for their timeouts).
constexpr std::chrono::milliseconds kShutdownWait{250};

const std::string kExpertKey = "moe.expert:";
const std::string kPrefixKey = "moe.prefix:";

// The node's UDP traffic: OpenDHT keeps no byte counters, so the socket it sends and receives
// through is wrapped.
struct Traffic {
  std::atomic<int64_t> rx{0}, tx{0};
};

// A UdpSocket that counts bytes. Received packets pass through this socket's own queue to the
// runner; for every packet delivered one recycled packet is handed back, so neither pool grows.
class CountingSocket final : public dht::net::DatagramSocket {
 public:
  CountingSocket(const dht::SockAddr& bind4, std::shared_ptr<Traffic> traffic)
      : traffic_(std::move(traffic)),
        inner_(std::make_unique<dht::net::UdpSocket>(bind4, dht::SockAddr{})) {
    inner_->setOnReceive([this](dht::net::PacketList&& packets) {
      for (const auto& p : packets) traffic_->rx += static_cast<int64_t>(p.data.size());
      onReceived(std::move(packets));
      return getNewPacket();  // only the inner receive thread touches our recycle pool
    });
  }
  // The inner socket's receive thread calls into this object: join it before anything goes.
  ~CountingSocket() override { inner_.reset(); }

  int sendTo(const dht::SockAddr& dest, const uint8_t* data, size_t size, bool replied) override {
    const int rc = inner_->sendTo(dest, data, size, replied);
    if (rc == 0) traffic_->tx += static_cast<int64_t>(size);
    return rc;
  }
  bool hasIPv4() const override { return inner_->hasIPv4(); }
  bool hasIPv6() const override { return inner_->hasIPv6(); }
  const dht::SockAddr& getBoundRef(sa_family_t family) const override { return inner_->getBoundRef(family); }
  void stop() override { inner_->stop(); }

 private:
  std::shared_ptr<Traffic> traffic_;
  std::unique_ptr<dht::net::UdpSocket> inner_;
};

// Why a bind failed (OpenDHT's exception does not say without a logger): try it once ourselves.
std::string bind_error(const dht::SockAddr& addr) {
  const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
  if (fd < 0) return std::strerror(errno);
  const int rc = ::bind(fd, addr.get(), addr.getLength());
  const int err = errno;
  ::close(fd);
  return rc == 0 ? "bind failed" : std::strerror(err);
}

// "host:port" -> (host, port); moe::Error names the offending string.
std::pair<std::string, std::string> split_host_port(const std::string& hp) {
  const auto colon = hp.rfind(':');
  const std::string host = colon == std::string::npos ? "" : hp.substr(0, colon);
  const std::string port = colon == std::string::npos ? "" : hp.substr(colon + 1);
  const bool digits = !port.empty() && port.size() <= 5 &&
                      std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; });
  if (host.empty() || !digits || std::stoi(port) < 1 || std::stoi(port) > 65535)
    throw Error("[net] DHT bootstrap address '" + hp + "' is not host:port (port 1..65535)");
  return {host, port};
}

dht::SockAddr resolve4(const std::string& host, const std::string& port, const std::string& what) {
  for (auto& a : dht::SockAddr::resolve(host, port))
    if (a.getFamily() == AF_INET) return a;
  throw Error("[net] " + what + " '" + host + "' does not resolve to an IPv4 address");
}

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const auto dot = s.find('.', start);
    out.push_back(s.substr(start, dot == std::string::npos ? std::string::npos : dot - start));
    if (dot == std::string::npos) return out;
    start = dot + 1;
  }
}

bool parse_int(const std::string& s, int64_t& out) {
  if (s.empty() || s.size() > 9) return false;
  out = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    out = out * 10 + (c - '0');
  }
  return true;
}

// Value ids from (signer, address, what): a server re-announcing the same thing replaces its value.
// The signer is in it because storing nodes let only the same key replace a signed value: a server
// restarted with a new key on a dead one's address (a reused port) had its records refused while
// the dead server's were stored (RecordTrust.NewKeyOnAReusedAddressIsStored).
dht::Value::Id value_id(const std::string& signer, const std::string& address, const std::string& what) {
  const auto h = dht::InfoHash::get("moe.vid:" + signer + "|" + address + "|" + what);
  dht::Value::Id id = 0;
  std::memcpy(&id, h.data(), sizeof(id));
  return id == dht::Value::INVALID_ID ? 1 : id;
}

std::string value_text(const dht::Value& v) { return std::string(v.data.begin(), v.data.end()); }

// One DHT operation on a key. Ops on the same key run one after another (see DhtNode::Impl).
struct Op {
  bool is_get = true;
  std::shared_ptr<dht::Value> value;  // put: what to store
  dht::time_point created{};          // put: its creation time
  bool done = false, ok = false;      // guarded by Impl::ops_mu, as is:
  std::vector<std::shared_ptr<dht::Value>> values;  // get: what arrived so far
};

struct ReadCounts {
  std::atomic<int64_t> expired{0}, forged{0};
};

// A value read from the DHT as a record (see record_codec.h), counting the expired and forged ones.
std::optional<ExpertRecord> parse_expert_value(const dht::Value& v, int64_t now_ms, ReadCounts& counts) {
  if (v.type != kRecordType) return std::nullopt;
  RecordDrop why;
  auto r = parse_expert_record(value_text(v), now_ms, why);
  if (why == RecordDrop::Expired) ++counts.expired;
  if (why == RecordDrop::Forged) ++counts.forged;
  return r;
}

// Several copies of a server's value (older ones on some storing nodes): keep the newest per
// (uid, address); live records lowest load first.
std::vector<ExpertRecord> dedup_sorted(std::vector<ExpertRecord> recs) {
  std::map<std::pair<std::string, std::string>, ExpertRecord> best;
  for (auto& r : recs) {
    auto [it, inserted] = best.try_emplace({r.uid, r.address}, r);
    if (!inserted && r.expires_ms > it->second.expires_ms) it->second = r;
  }
  std::vector<ExpertRecord> out;
  for (auto& [key, r] : best) out.push_back(std::move(r));
  std::stable_sort(out.begin(), out.end(), [](const ExpertRecord& a, const ExpertRecord& b) {
    return a.load < b.load;
  });
  return out;
}

}  // namespace

int64_t now_unix_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

struct DhtNode::Impl {
  DhtConfig cfg;
  std::shared_ptr<Traffic> traffic = std::make_shared<Traffic>();
  dht::DhtRunner runner;
  int port = 0;
  std::atomic<int64_t> puts{0}, put_failures{0}, gets{0}, get_failures{0};
  ReadCounts counts;

  ~Impl() {
    // Graceful leave, bounded; then join the runner's threads (no callback runs after join).
    auto left = std::make_shared<std::pair<std::mutex, std::condition_variable>>();
    auto flag = std::make_shared<bool>(false);
    runner.shutdown([left, flag] {
      {
        std::lock_guard<std::mutex> lk(left->first);
        *flag = true;
      }
      left->second.notify_all();
    });
    {
      std::unique_lock<std::mutex> lk(left->first);
      left->second.wait_for(lk, kShutdownWait, [&] { return *flag; });
    }
    runner.join();
  }

  // OpenDHT 2.4 gives a get that joins a search already running on the same key (another get, or
  // the token fetch of a put) only the values that arrive after it joined: often none. So ops on
  // a key form a lane run one at a time, and a get joins a get already queued or running there
  // instead (it shares all the values that op has).
  std::mutex ops_mu;
  std::condition_variable ops_cv;
  std::map<dht::InfoHash, std::deque<std::shared_ptr<Op>>> lanes;  // front: the running op

  std::shared_ptr<Op> submit(const dht::InfoHash& key, std::shared_ptr<Op> op) {
    {
      std::lock_guard<std::mutex> lk(ops_mu);
      auto& lane = lanes[key];
      if (op->is_get && !lane.empty() && lane.back()->is_get) return lane.back();
      lane.push_back(op);
      if (lane.size() > 1) return op;  // started when the ones before it finish
    }
    start(key, op);
    return op;
  }

  void start(const dht::InfoHash& key, const std::shared_ptr<Op>& op) {
    auto done = [this, key, op](bool ok) { finish(key, op, ok); };
    if (!op->is_get) {
      runner.put(key, op->value, done, op->created);
      return;
    }
    runner.get(
        key,
        [this, op](const std::vector<std::shared_ptr<dht::Value>>& vals) {
          std::lock_guard<std::mutex> lk(ops_mu);
          op->values.insert(op->values.end(), vals.begin(), vals.end());
          return true;
        },
        done, dht::Value::TypeFilter(kRecordType));
  }

  // On OpenDHT's thread: records the result and starts the lane's next op.
  void finish(const dht::InfoHash& key, const std::shared_ptr<Op>& op, bool ok) {
    std::shared_ptr<Op> next;
    {
      std::lock_guard<std::mutex> lk(ops_mu);
      op->done = true;
      op->ok = ok;
      auto it = lanes.find(key);
      if (it != lanes.end() && !it->second.empty() && it->second.front() == op) {
        it->second.pop_front();
        if (it->second.empty()) lanes.erase(it);
        else next = it->second.front();
      }
    }
    ops_cv.notify_all();
    if (next) start(key, next);
  }

  // Submits the ops and waits until all are done or timeout_s passed; returns the ops run (a get
  // may be one already running). Results are read under ops_mu.
  std::vector<std::shared_ptr<Op>> run_all(const std::vector<std::pair<dht::InfoHash, std::shared_ptr<Op>>>& ops,
                                           double timeout_s) {
    std::vector<std::shared_ptr<Op>> run;
    for (const auto& [key, op] : ops) run.push_back(submit(key, op));
    std::unique_lock<std::mutex> lk(ops_mu);
    ops_cv.wait_for(lk, std::chrono::duration<double>(timeout_s), [&] {
      return std::all_of(run.begin(), run.end(), [](const auto& o) { return o->done; });
    });
    return run;
  }

  // Gets of the keys' values; an op not done by the deadline counts as failed (with the values it
  // had by then). Returns the values per key.
  std::vector<std::vector<std::shared_ptr<dht::Value>>> get_all(const std::vector<std::string>& keys,
                                                                double timeout_s) {
    std::vector<std::pair<dht::InfoHash, std::shared_ptr<Op>>> ops;
    for (const auto& k : keys) ops.emplace_back(dht::InfoHash::get(k), std::make_shared<Op>());
    gets += static_cast<int64_t>(keys.size());
    auto run = run_all(ops, timeout_s);
    std::vector<std::vector<std::shared_ptr<dht::Value>>> out;
    std::lock_guard<std::mutex> lk(ops_mu);
    for (const auto& op : run) {
      // A get that found nothing still succeeds when its search completed.
      if (!(op->done && op->ok)) ++get_failures;
      out.push_back(op->values);
    }
    return out;
  }
};

DhtNode::DhtNode(const DhtConfig& cfg) : impl_(std::make_unique<Impl>()) {
  auto& im = *impl_;
  im.cfg = cfg;
  if (cfg.port < 0 || cfg.port > 65535) throw Error("[net] DHT port " + std::to_string(cfg.port) + " is not 0..65535");
  if (!(cfg.bootstrap_timeout_s > 0)) throw Error("[net] DHT bootstrap_timeout_s must be > 0");
  std::vector<std::pair<std::string, std::string>> boot;
  for (const auto& b : cfg.bootstrap) boot.push_back(split_host_port(b));

  const auto bind4 = resolve4(cfg.host, std::to_string(cfg.port), "DHT host");
  std::unique_ptr<CountingSocket> sock;
  try {
    sock = std::make_unique<CountingSocket>(bind4, im.traffic);
  } catch (const std::exception&) {
    throw Error("[net] cannot bind the DHT's UDP port " + cfg.host + ":" + std::to_string(cfg.port) + ": " +
                bind_error(bind4));
  }

  dht::DhtRunner::Config rc;
  rc.threaded = true;
  rc.dht_config.node_config.network = kNetworkId;
  // Several nodes share an IP (loopback, one host running many): OpenDHT's per-IP request limit
  // would drop their legitimate traffic. The network is a trusted cluster, so no limits.
  rc.dht_config.node_config.max_req_per_sec = -1;
  rc.dht_config.node_config.max_peer_req_per_sec = -1;
  dht::DhtRunner::Context ctx;  // no logger: OpenDHT stays silent
  ctx.sock = std::move(sock);
  im.runner.run(rc, std::move(ctx));
  im.port = im.runner.getBoundPort(AF_INET);

  // What a storing node keeps: no OpenDHT-signed value of our type (see record_signature.h), no
  // record whose own signature does not check; a signed record may be replaced (same value id, a
  // re-announcement) only by a record signed with the same key; unsigned ones by anyone.
  auto body_key = [](const dht::Value& v, std::string& key) { return record_signature_holds(value_text(v), key); };
  im.runner.registerType(dht::ValueType(
      kRecordType, "moe.record", kStorageLife,
      [body_key](dht::InfoHash h, std::shared_ptr<dht::Value>& v, const dht::InfoHash& from, const dht::SockAddr& a) {
        std::string key;
        return !v->isSigned() && body_key(*v, key) && dht::ValueType::DEFAULT_STORE_POLICY(h, v, from, a);
      },
      [body_key](dht::InfoHash, const std::shared_ptr<dht::Value>& old, std::shared_ptr<dht::Value>& v,
                 const dht::InfoHash&, const dht::SockAddr&) {
        std::string old_key, new_key;
        if (v->isSigned() || !body_key(*v, new_key)) return false;
        return !body_key(*old, old_key) || old_key.empty() || old_key == new_key;
      }));

  if (boot.empty()) return;
  for (const auto& [host, port] : boot) im.runner.bootstrap(host, port);  // retried while disconnected
  const auto deadline = SteadyClock::now() + std::chrono::duration<double>(cfg.bootstrap_timeout_s);
  while (im.runner.getNodesStats(AF_INET).good_nodes == 0) {
    if (SteadyClock::now() >= deadline) {
      std::string names;
      for (const auto& b : cfg.bootstrap) names += (names.empty() ? "" : ", ") + b;
      char secs[32];
      std::snprintf(secs, sizeof(secs), "%g", cfg.bootstrap_timeout_s);
      throw Error("[net] no DHT node answered at " + names + " within " + secs + " s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

DhtNode::~DhtNode() = default;

int DhtNode::port() const { return impl_->port; }

std::string DhtNode::address() const { return impl_->cfg.host + ":" + std::to_string(impl_->port); }

int DhtNode::announce(const std::vector<ExpertRecord>& records, double ttl_s, double timeout_s) {
  if (!(ttl_s > 0)) throw Error("[net] announce: ttl_s must be > 0");
  if (!(timeout_s >= 0)) throw Error("[net] announce: timeout_s must be >= 0");
  const int64_t expires = now_unix_ms() + static_cast<int64_t>(ttl_s * 1000);

  struct Put {
    std::string key;
    dht::Value::Id id;
    Json body;
    std::vector<size_t> records;  // which records need this put
  };
  std::vector<Put> puts;
  std::map<std::pair<std::string, dht::Value::Id>, size_t> index;  // dedup shared prefix records
  auto add = [&](const std::string& key, dht::Value::Id id, Json body, size_t rec) {
    auto [it, inserted] = index.try_emplace({key, id}, puts.size());
    if (inserted) {
      puts.push_back({key, id, std::move(body), {}});
    } else if (body.contains("load")) {
      auto& l = puts[it->second].body["load"];
      l = std::min(l.get<double>(), body["load"].get<double>());
    }
    puts[it->second].records.push_back(rec);
  };
  const std::string signer = impl_->cfg.identity ? impl_->cfg.identity->key_id() : "";
  for (size_t r = 0; r < records.size(); ++r) {
    const auto& rec = records[r];
    if (rec.uid.empty() || rec.address.empty())
      throw Error("[net] announce: a record needs a uid and an address (got uid '" + rec.uid + "')");
    Json body{{"uid", rec.uid}, {"addr", rec.address}, {"load", rec.load}, {"exp", expires}};
    if (impl_->cfg.identity) body["pow"] = impl_->cfg.identity->pow_nonce();
    if (impl_->cfg.announce_tls) body["tls"] = true;
    add(kExpertKey + rec.uid, value_id(signer, rec.address, "e:" + rec.uid), body, r);  // signed below
    // Prefix records for "a.b", "a.b.c", ... (at least two components) naming a numeric next one.
    const auto comps = split_dots(rec.uid);
    std::string prefix = comps[0];
    for (size_t k = 1; k + 1 < comps.size(); ++k) {
      prefix += "." + comps[k];
      int64_t coord = 0;
      if (!parse_int(comps[k + 1], coord)) continue;
      const bool expert = k + 2 == comps.size();
      const std::string kind = expert ? "expert" : "prefix";
      Json pbody{{"c", coord}, {"kind", kind}, {"addr", rec.address}, {"load", rec.load}, {"exp", expires}};
      if (impl_->cfg.identity) pbody["pow"] = impl_->cfg.identity->pow_nonce();
      if (impl_->cfg.announce_tls) pbody["tls"] = true;
      add(kPrefixKey + prefix, value_id(signer, rec.address, kind + ":" + prefix + "." + comps[k + 1]), pbody, r);
    }
  }

  // Back-dated creation: storing nodes drop the value at about the record's own expiry.
  const auto life = std::chrono::duration_cast<dht::duration>(std::chrono::duration<double>(ttl_s)) + kStorageSlack;
  const auto created = life < kStorageLife ? dht::clock::now() - (kStorageLife - life) : dht::clock::now();
  std::vector<std::pair<dht::InfoHash, std::shared_ptr<Op>>> ops;
  for (auto& p : puts) {
    if (impl_->cfg.identity) sign_record(p.body, *impl_->cfg.identity);
    const std::string text = p.body.dump();
    auto op = std::make_shared<Op>();
    op->is_get = false;
    op->value = std::make_shared<dht::Value>(kRecordType, reinterpret_cast<const uint8_t*>(text.data()),
                                             text.size(), p.id);
    op->created = created;
    ops.emplace_back(dht::InfoHash::get(p.key), std::move(op));
  }
  impl_->puts += static_cast<int64_t>(ops.size());
  const auto run = impl_->run_all(ops, timeout_s);
  std::vector<int> ok;
  {
    std::lock_guard<std::mutex> lk(impl_->ops_mu);
    for (const auto& op : run) ok.push_back(op->done && op->ok);
  }
  std::vector<bool> stored(records.size(), true);
  for (size_t i = 0; i < puts.size(); ++i) {
    if (ok[i] == 1) continue;
    impl_->put_failures++;
    for (size_t r : puts[i].records) stored[r] = false;
  }
  return static_cast<int>(std::count(stored.begin(), stored.end(), true));
}

std::vector<std::vector<ExpertRecord>> DhtNode::get(const std::vector<std::string>& uids, double timeout_s) {
  std::vector<std::string> keys;
  for (const auto& u : uids) keys.push_back(kExpertKey + u);
  const auto values = impl_->get_all(keys, timeout_s);
  const int64_t now = now_unix_ms();
  std::vector<std::vector<ExpertRecord>> out(uids.size());
  for (size_t i = 0; i < uids.size(); ++i) {
    std::vector<ExpertRecord> recs;
    for (const auto& v : values[i])
      if (auto r = parse_expert_value(*v, now, impl_->counts); r && r->uid == uids[i])
        if (!impl_->cfg.accept || impl_->cfg.accept(*r, true)) recs.push_back(std::move(*r));
    out[i] = dedup_sorted(std::move(recs));
  }
  return out;
}

std::map<int, std::vector<ExpertRecord>> DhtNode::children(const std::string& prefix, double timeout_s) {
  const auto values = impl_->get_all({kPrefixKey + prefix}, timeout_s);
  const int64_t now = now_unix_ms();
  std::map<int, std::vector<ExpertRecord>> out;
  for (const auto& v : values[0]) {
    if (v->type != kRecordType) continue;
    RecordDrop why;
    auto c = parse_child_record(value_text(*v), prefix, now, why);
    if (why == RecordDrop::Expired) ++impl_->counts.expired;
    if (why == RecordDrop::Forged) ++impl_->counts.forged;
    if (!c || (impl_->cfg.accept && !impl_->cfg.accept(c->record, c->expert))) continue;
    auto& recs = out[c->coord];
    if (c->expert) recs.push_back(std::move(c->record));
  }
  for (auto& [c, recs] : out) recs = dedup_sorted(std::move(recs));
  return out;
}

DhtStats DhtNode::stats() const {
  DhtStats s;
  s.puts = impl_->puts;
  s.put_failures = impl_->put_failures;
  s.gets = impl_->gets;
  s.get_failures = impl_->get_failures;
  s.rx_bytes = impl_->traffic->rx;
  s.tx_bytes = impl_->traffic->tx;
  s.expired = impl_->counts.expired;
  s.forged = impl_->counts.forged;
  return s;
}

std::vector<std::string> parse_expert_spec(const std::string& spec) {
  constexpr size_t kMaxUids = size_t{1} << 20;  // a typo like [0:1000000].[0:1000000] must not eat memory
  auto fail = [&](const std::string& why) -> Error {
    return Error("[net] expert spec '" + spec + "': " + why +
                 " (expected e.g. ffn.0.[0:16] or ffn.1.[0:4].[0:4])");
  };
  if (spec.empty()) throw fail("empty");
  std::vector<std::string> out{""};
  for (const auto& comp : split_dots(spec)) {
    if (comp.empty()) throw fail("empty component");
    std::vector<std::string> parts;  // this component's alternatives
    if (comp.front() == '[' || comp.back() == ']') {
      if (comp.front() != '[' || comp.back() != ']') throw fail("unbalanced bracket in '" + comp + "'");
      const std::string body = comp.substr(1, comp.size() - 2);
      const auto colon = body.find(':');
      int64_t a = 0, b = 0;
      if (colon == std::string::npos || !parse_int(body.substr(0, colon), a) || !parse_int(body.substr(colon + 1), b))
        throw fail("range '" + comp + "' is not [a:b] with non-negative integers");
      if (a >= b) throw fail("empty range '" + comp + "' (need a < b)");
      if (static_cast<size_t>(b - a) * out.size() > kMaxUids) throw fail("more than 2^20 uids");
      for (int64_t i = a; i < b; ++i) parts.push_back(std::to_string(i));
    } else {
      if (comp.find_first_of("[]: \t") != std::string::npos) throw fail("bad character in '" + comp + "'");
      parts.push_back(comp);
    }
    std::vector<std::string> next;
    next.reserve(out.size() * parts.size());
    for (const auto& o : out)
      for (const auto& p : parts) next.push_back(o.empty() ? p : o + "." + p);
    out = std::move(next);
  }
  return out;
}

}  // namespace moe::net
