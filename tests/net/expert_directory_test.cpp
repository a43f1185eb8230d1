// ExpertDirectory: the cache serves repeated lookups without the DHT until cache_s or a record's
// expiry, forget() drops entries, and the grid beam search returns the true top-k live experts
// (brute force over the live set) of a small 2-D grid with dead experts.
#include "net/expert_directory.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <random>
#include <set>
#include <thread>

#include "core/error.h"
#include "dht_fixture.h"

namespace moe::net {
namespace {

using Clock = std::chrono::steady_clock;

using test::rec;
using test::start_network;

std::vector<std::string> uids_of(const std::vector<ExpertRecord>& rs) {
  std::vector<std::string> out;
  for (const auto& r : rs) out.push_back(r.uid);
  return out;
}

// A 6x5 grid "g.0.i.j" with dead experts (never announced), spread over two servers; (1, 2) is
// on both, the second less loaded.
struct Grid {
  static constexpr int kRows = 6, kCols = 5;
  std::set<std::pair<int, int>> live;
  Grid() {
    for (int i = 0; i < kRows; ++i)
      for (int j = 0; j < kCols; ++j)
        if ((i * 7 + j * 3) % 4 != 0 && i != 4) live.insert({i, j});  // row 4 entirely dead
  }
  static std::string uid(int i, int j) { return "g.0." + std::to_string(i) + "." + std::to_string(j); }
  void announce(DhtNode& a, DhtNode& b) const {
    std::vector<ExpertRecord> ra, rb;
    for (auto [i, j] : live) (i % 2 ? ra : rb).push_back(rec(uid(i, j), i % 2 ? "127.0.0.1:1" : "127.0.0.1:2", 3));
    rb.push_back(rec(uid(1, 2), "127.0.0.1:2", 1));
    ASSERT_EQ(a.announce(ra, 60), int(ra.size()));
    ASSERT_EQ(b.announce(rb, 60), int(rb.size()));
  }
  // Top-k by summed score over the live experts whose row is among `rows` (all rows: -1).
  std::vector<std::string> brute_force(const std::vector<std::vector<float>>& s, int k, const std::set<int>& rows) const {
    std::vector<std::pair<double, std::string>> all;
    for (auto [i, j] : live)
      if (rows.count(i)) all.push_back({double(s[0][i]) + s[1][j], uid(i, j)});
    std::sort(all.begin(), all.end(), [](auto& x, auto& y) { return x.first > y.first; });
    std::vector<std::string> out;
    for (int n = 0; n < std::min<int>(k, int(all.size())); ++n) out.push_back(all[n].second);
    return out;
  }
  std::set<int> live_rows() const {
    std::set<int> r;
    for (auto [i, j] : live) r.insert(i);
    return r;
  }
};

std::vector<std::vector<float>> random_scores(std::mt19937& rng) {
  std::normal_distribution<float> n;
  std::vector<std::vector<float>> s{std::vector<float>(Grid::kRows), std::vector<float>(Grid::kCols)};
  for (auto& d : s)
    for (auto& x : d) x = n(rng);
  return s;
}

TEST(ExpertDirectory, BeamSearchCoveringAllRowsFindsTheTrueTopK) {
  auto nodes = start_network(4);
  Grid grid;
  grid.announce(*nodes[1], *nodes[2]);
  ExpertDirectory dir(*nodes[3]);
  std::mt19937 rng(7);
  for (int trial = 0; trial < 10; ++trial) {
    auto s = random_scores(rng);
    for (int k : {1, 4, 9}) {
      auto got = dir.beam_search("g.0", s, k, Grid::kRows);
      EXPECT_EQ(uids_of(got), grid.brute_force(s, k, grid.live_rows())) << "trial " << trial << " k " << k;
      for (const auto& r : got) {
        EXPECT_GT(r.expires_ms, now_unix_ms());
        if (r.uid == Grid::uid(1, 2)) {
          EXPECT_EQ(r.load, 1);  // the less loaded replica
        }
      }
    }
  }
  // More than are alive: all of them, best first.
  auto s = random_scores(rng);
  auto all = dir.beam_search("g.0", s, 1000, 1000);
  EXPECT_EQ(all.size(), grid.live.size());
  EXPECT_EQ(uids_of(all), grid.brute_force(s, 1000, grid.live_rows()));
}

TEST(ExpertDirectory, NarrowBeamKeepsTheBestLiveRows) {
  auto nodes = start_network(4);
  Grid grid;
  grid.announce(*nodes[1], *nodes[2]);
  ExpertDirectory dir(*nodes[3]);
  std::mt19937 rng(11);
  for (int trial = 0; trial < 10; ++trial) {
    auto s = random_scores(rng);
    s[0][4] = 100;  // the dead row scores best: the beam must skip it, not waste a slot on it
    // The two best live rows by their own score.
    const auto live_rows = grid.live_rows();
    std::vector<int> rows(live_rows.begin(), live_rows.end());
    std::sort(rows.begin(), rows.end(), [&](int a, int b) { return s[0][a] > s[0][b]; });
    const std::set<int> best2{rows[0], rows[1]};
    EXPECT_EQ(uids_of(dir.beam_search("g.0", s, 3, 2)), grid.brute_force(s, 3, best2)) << "trial " << trial;
  }
  // Unknown prefix: nothing.
  EXPECT_TRUE(dir.beam_search("g.9", random_scores(rng), 3, 2).empty());
}

TEST(ExpertDirectory, BeamSearchOver1DExpertsAndBadArguments) {
  auto nodes = start_network(3);
  std::vector<ExpertRecord> rs;
  for (int i : {0, 2, 3, 6}) rs.push_back(rec("f.0." + std::to_string(i), "127.0.0.1:5"));
  rs.push_back(rec("f.0.9", "127.0.0.1:5"));  // outside the gate's 8 scores: ignored
  ASSERT_EQ(nodes[1]->announce(rs, 60), 5);
  ExpertDirectory dir(*nodes[2]);
  const std::vector<std::vector<float>> s{{0.5f, 9, 0.1f, 0.7f, 9, 9, -1, 9}};
  EXPECT_EQ(uids_of(dir.beam_search("f.0", s, 3, 1)), (std::vector<std::string>{"f.0.3", "f.0.0", "f.0.2"}));
  EXPECT_EQ(uids_of(dir.beam_search("f.0", s, 10, 1)).size(), 4u);

  EXPECT_THROW(dir.beam_search("f.0", s, 0, 1), Error);
  EXPECT_THROW(dir.beam_search("f.0", s, 1, 0), Error);
  EXPECT_THROW(dir.beam_search("f.0", {}, 1, 1), Error);
  EXPECT_THROW(dir.beam_search("f.0", {{}}, 1, 1), Error);
  EXPECT_THROW(dir.beam_search("", s, 1, 1), Error);
  const ExpertDirectoryConfig negative_cache{.cache_s = -1, .timeout_s = 1};
  EXPECT_THROW(ExpertDirectory(*nodes[2], negative_cache), Error);
}

TEST(ExpertDirectory, CacheServesRepeatsUntilCacheSAndForgetDropsEntries) {
  auto nodes = start_network(4);
  ASSERT_EQ(nodes[1]->announce({rec("c.0.1", "127.0.0.1:1")}, 60), 1);
  ExpertDirectory dir(*nodes[3], {.cache_s = 1.0, .timeout_s = 5});
  auto gets = [&] { return nodes[3]->stats().gets; };

  const int64_t g0 = gets();
  ASSERT_EQ(dir.lookup("c.0.1").size(), 1u);
  EXPECT_EQ(gets(), g0 + 1);
  const auto t0 = Clock::now();
  // A second server appears; the cached entry does not show it yet.
  ASSERT_EQ(nodes[2]->announce({rec("c.0.1", "127.0.0.1:2")}, 60), 1);
  EXPECT_EQ(dir.lookup("c.0.1").size(), 1u);
  EXPECT_EQ(dir.children("c.0").at(1).size(), 2u);  // children were not cached yet
  EXPECT_EQ(gets(), g0 + 2);
  EXPECT_EQ(dir.children("c.0").size(), 1u);
  EXPECT_EQ(gets(), g0 + 2);
  ASSERT_LT(Clock::now() - t0, std::chrono::milliseconds(900)) << "machine too slow for the cache window";

  dir.forget("c.0.1");  // also drops the children of "c.0"
  EXPECT_EQ(dir.lookup("c.0.1").size(), 2u);
  EXPECT_EQ(dir.children("c.0").at(1).size(), 2u);
  EXPECT_EQ(gets(), g0 + 4);

  // Batched lookup: cached uid costs nothing, the two unknown ones one get each.
  auto both = dir.lookup(std::vector<std::string>{"c.0.1", "c.0.2", "c.0.3"});
  EXPECT_EQ(both[0].size(), 2u);
  EXPECT_TRUE(both[1].empty());
  EXPECT_EQ(gets(), g0 + 6);

  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // past cache_s
  EXPECT_EQ(dir.lookup("c.0.1").size(), 2u);
  EXPECT_EQ(gets(), g0 + 7);
}

// A grid's row level (children that are prefixes, with no expiry of their own) is asked again
// after negative_cache_s, not cache_s: a first answer that missed a row must not hide it for long.
TEST(ExpertDirectory, RowsOfAGridAreAskedAgainSoon) {
  auto nodes = start_network(4);
  ASSERT_EQ(nodes[1]->announce({rec("g.0.1.2", "127.0.0.1:1")}, 60), 1);
  ExpertDirectory dir(*nodes[3], {.cache_s = 60, .timeout_s = 5, .negative_cache_s = 0.3});
  EXPECT_EQ(dir.children("g.0").size(), 1u);
  ASSERT_EQ(nodes[2]->announce({rec("g.0.3.0", "127.0.0.1:2")}, 60), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  const auto rows = dir.children("g.0");
  EXPECT_EQ(rows.size(), 2u);
  EXPECT_TRUE(rows.count(3));
  // Expert level: kept until cache_s (or a record's expiry).
  EXPECT_EQ(dir.children("g.0.1").size(), 1u);
  ASSERT_EQ(nodes[2]->announce({rec("g.0.1.0", "127.0.0.1:2")}, 60), 1);
  std::this_thread::sleep_for(std::chrono::milliseconds(400));
  EXPECT_EQ(dir.children("g.0.1").size(), 1u);
}

// refresh_children: a cached answer that missed experts is asked again at once, at most once per
// negative_cache_s, and only during warm-up (later, missing experts are gone servers).
TEST(ExpertDirectory, RefreshAsksAgainDuringWarmupAtMostOncePerNegativeCacheS) {
  auto nodes = start_network(4);
  ASSERT_EQ(nodes[1]->announce({rec("r.0.1", "127.0.0.1:1")}, 60), 1);
  ExpertDirectory dir(*nodes[3], {.cache_s = 60, .timeout_s = 5, .negative_cache_s = 1.0, .warmup_s = 3.0});
  const auto t0 = Clock::now();
  EXPECT_EQ(dir.children("r.0").size(), 1u);
  ASSERT_EQ(nodes[2]->announce({rec("r.0.2", "127.0.0.1:2")}, 60), 1);
  EXPECT_EQ(dir.children("r.0").size(), 1u);  // cached
  EXPECT_TRUE(dir.refresh_children("r.0"));
  EXPECT_EQ(dir.children("r.0").size(), 2u);
  ASSERT_EQ(nodes[2]->announce({rec("r.0.3", "127.0.0.1:2")}, 60), 1);
  EXPECT_FALSE(dir.refresh_children("r.0"));  // within negative_cache_s of the last one
  EXPECT_EQ(dir.children("r.0").size(), 2u);
  ASSERT_LT(Clock::now() - t0, std::chrono::milliseconds(900)) << "machine too slow for the test's windows";
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  EXPECT_TRUE(dir.refresh_children("r.0"));
  EXPECT_EQ(dir.children("r.0").size(), 3u);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));  // past warm-up
  ASSERT_EQ(nodes[2]->announce({rec("r.0.4", "127.0.0.1:2")}, 60), 1);
  EXPECT_FALSE(dir.refresh_children("r.0"));
  EXPECT_EQ(dir.children("r.0").size(), 3u);
}

TEST(ExpertDirectory, ExpiredRecordsLeaveTheCacheAndTheBeam) {
  auto nodes = start_network(4);
  // 2x2 grid; the best expert (0, 0) lives only 1.5 s.
  const auto t0 = Clock::now();
  ASSERT_EQ(nodes[1]->announce({rec("h.0.0.0", "127.0.0.1:1")}, 1.5), 1);
  ASSERT_EQ(nodes[2]->announce({rec("h.0.0.1", "127.0.0.1:2"), rec("h.0.1.0", "127.0.0.1:2"),
                                rec("h.0.1.1", "127.0.0.1:2")}, 60), 3);
  ExpertDirectory dir(*nodes[3], {.cache_s = 100, .timeout_s = 5});
  const std::vector<std::vector<float>> s{{1, 0}, {1, 0}};
  EXPECT_EQ(uids_of(dir.beam_search("h.0", s, 2, 2)), (std::vector<std::string>{"h.0.0.0", "h.0.0.1"}));
  EXPECT_EQ(dir.lookup("h.0.0.0").size(), 1u);

  std::this_thread::sleep_until(t0 + std::chrono::milliseconds(2000));
  EXPECT_TRUE(dir.lookup("h.0.0.0").empty());
  EXPECT_EQ(uids_of(dir.beam_search("h.0", s, 2, 2)), (std::vector<std::string>{"h.0.0.1", "h.0.1.0"}));
}

TEST(ExpertDirectory, ConcurrentBeamSearches) {
  auto nodes = start_network(4);
  Grid grid;
  grid.announce(*nodes[1], *nodes[2]);
  ExpertDirectory dir(*nodes[3], {.cache_s = 0, .timeout_s = 5});  // no caching: every call hits the DHT
  std::vector<std::thread> threads;
  std::vector<int> ok(4, 0);
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      std::mt19937 rng(100 + t);
      for (int r = 0; r < 5; ++r) {
        auto s = random_scores(rng);
        ok[t] += uids_of(dir.beam_search("g.0", s, 4, Grid::kRows)) == grid.brute_force(s, 4, grid.live_rows());
      }
    });
  for (auto& th : threads) th.join();
  EXPECT_EQ(ok, (std::vector<int>{5, 5, 5, 5}));
}

}  // namespace
}  // namespace moe::net
