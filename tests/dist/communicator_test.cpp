// Communicator operations against expected values for whatever world runs the test (1 process, or
// mpirun -np 2, 3, 4 in CTest), with uneven and zero counts; all-reduce bit-identical on every rank
// and equal to the sum in rank order.
#include "dist/communicator.h"

#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"

namespace moe::dist {
namespace {

Communicator world() { return Communicator::world(); }

TEST(Communicator, AllToAllCounts) {
  Communicator w = world();
  const int R = w.size(), me = w.rank();
  std::vector<int64_t> send(2 * R);
  for (int s = 0; s < R; ++s) send[2 * s] = 100 * me + s, send[2 * s + 1] = -(me + s);
  const std::vector<int64_t> got = w.all_to_all_counts(send);
  ASSERT_EQ(got.size(), size_t(2 * R));
  for (int s = 0; s < R; ++s) {
    EXPECT_EQ(got[2 * s], 100 * s + me);
    EXPECT_EQ(got[2 * s + 1], -(s + me));
  }
  EXPECT_THROW(w.all_to_all_counts({}), Error);
  if (R > 1) {
    EXPECT_THROW(w.all_to_all_counts(std::vector<int64_t>(2 * R + 1)), Error);
  }
}

// Rank r sends (r + s) % 3 rows to rank s: zero rows on some pairs, uneven elsewhere.
TEST(Communicator, AllToAllRowsUnevenAndZero) {
  Communicator w = world();
  const int R = w.size(), me = w.rank();
  const int64_t width = 3;
  auto rows = [](int r, int s) { return int64_t((r + s) % 3); };
  auto value = [](int r, int s, int64_t i, int64_t c) { return float(1000 * r + 100 * s + 10 * i + c); };
  std::vector<int64_t> send_rows(R);
  std::vector<float> send;
  for (int s = 0; s < R; ++s) {
    send_rows[s] = rows(me, s);
    for (int64_t i = 0; i < send_rows[s]; ++i)
      for (int64_t c = 0; c < width; ++c) send.push_back(value(me, s, i, c));
  }
  const std::vector<int64_t> recv_rows = w.all_to_all_counts(send_rows);
  int64_t total = 0;
  for (int s = 0; s < R; ++s) {
    EXPECT_EQ(recv_rows[s], rows(s, me));
    total += recv_rows[s];
  }
  std::vector<float> recv(size_t(total * width), -1.0f);
  w.all_to_all_rows(send.data(), send_rows, recv.data(), recv_rows, width);
  int64_t at = 0;
  for (int s = 0; s < R; ++s)
    for (int64_t i = 0; i < recv_rows[s]; ++i, ++at)
      for (int64_t c = 0; c < width; ++c) EXPECT_EQ(recv[at * width + c], value(s, me, i, c)) << s << " " << i;
  int64_t sent_to_others = 0;
  for (int s = 0; s < R; ++s)
    if (s != me) sent_to_others += send_rows[s] * width * 4;
  EXPECT_EQ(w.stats().exchange_bytes, 8 * (R - 1) + sent_to_others);  // the counts, then the rows
}

template <class T>
void check_all_reduce(int64_t n) {
  Communicator w = world();
  const int R = w.size(), me = w.rank();
  auto v = [](int r, int64_t i) {
    if constexpr (std::is_integral_v<T>) return T(r * 1000003 + i);
    else {
      // volatile: the value is rounded to T before it is added (no fused multiply-add into the sum).
      volatile T x = T(std::sin(double(r * 7 + 1) * double(i + 1)) * (1 + r));
      return T(x);
    }
  };
  std::vector<T> data(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) data[i] = v(me, i);
  w.all_reduce_sum(data.data(), n);
  for (int64_t i = 0; i < n; ++i) {
    T expect = T(0);
    for (int r = 0; r < R; ++r) expect += v(r, i);  // rank order, as the communicator promises
    ASSERT_EQ(data[i], expect) << "element " << i << " of " << n << " rank " << me << " diff " << double(data[i]) - double(expect);
  }
  // Every rank holds the same bits.
  std::vector<T> first(data.begin(), data.begin() + std::min<int64_t>(n, 64));
  std::vector<T> all = w.all_gather_v(first);
  for (int r = 0; r < R; ++r)
    for (size_t i = 0; i < first.size(); ++i) ASSERT_EQ(all[r * first.size() + i], first[i]);
}

TEST(Communicator, AllReduceSumIsTheRankOrderSumOnEveryRank) {
  for (int64_t n : {0, 1, 2, 3, 5, 1000, 100003}) {
    check_all_reduce<float>(n);
    check_all_reduce<double>(n);
    check_all_reduce<int64_t>(n);
  }
  Communicator w = world();
  EXPECT_EQ(w.sum(int64_t(w.rank() + 1)), int64_t(w.size()) * (w.size() + 1) / 2);
  EXPECT_EQ(w.max(int64_t(w.rank() == w.size() - 1 ? 7 : 3)), 7);
}

TEST(Communicator, BroadcastFromEveryRoot) {
  Communicator w = world();
  for (int root = 0; root < w.size(); ++root) {
    std::vector<double> v(5, w.rank() == root ? 1.5 * (root + 1) : -1.0);
    w.broadcast(v.data(), 5, root);
    for (double x : v) EXPECT_EQ(x, 1.5 * (root + 1));
  }
  double x = 0;
  EXPECT_THROW(w.broadcast(&x, 1, w.size()), Error);
}

TEST(Communicator, GatherOfPerRankValuesAndUnevenVectors) {
  Communicator w = world();
  const int R = w.size(), me = w.rank();
  struct Stat {
    int rank;
    double rss;
  };
  const std::vector<Stat> s = w.all_gather(Stat{me, 10.0 * me});
  for (int r = 0; r < R; ++r) {
    EXPECT_EQ(s[r].rank, r);
    EXPECT_EQ(s[r].rss, 10.0 * r);
  }
  std::vector<int32_t> mine(size_t(me % 2 == 0 ? 0 : me + 2), me);  // even ranks send nothing
  std::vector<int64_t> counts;
  const std::vector<int32_t> all = w.all_gather_v(mine, &counts);
  size_t at = 0;
  for (int r = 0; r < R; ++r) {
    EXPECT_EQ(counts[r], r % 2 == 0 ? 0 : r + 2);
    for (int64_t i = 0; i < counts[r]; ++i) EXPECT_EQ(all[at++], r);
  }
  EXPECT_EQ(at, all.size());
  w.barrier();
}

TEST(Communicator, LayoutsSplitTheWorld) {
  Communicator w = world();
  const int W = w.size();
  for (int R = 1; R <= W; ++R) {
    if (W % R != 0) {
      EXPECT_THROW(ParallelLayout::make(w, R), Error);
      continue;
    }
    const ParallelLayout L = ParallelLayout::make(w, R);
    EXPECT_EQ(L.experts.size(), R);
    EXPECT_EQ(L.replica.size(), W / R);
    EXPECT_EQ(L.shard(), w.rank() % R);
    EXPECT_EQ(L.replica.rank(), w.rank() / R);
    // The expert group's sum covers exactly the ranks of this replica.
    const int64_t sum = L.experts.sum(int64_t(w.rank()));
    const int64_t base = int64_t(w.rank() / R) * R;
    EXPECT_EQ(sum, R * base + int64_t(R) * (R - 1) / 2);
  }
  EXPECT_THROW(ParallelLayout::make(w, 0), Error);
}

TEST(Communicator, SingleRankWithoutMpi) {
  Communicator one;
  EXPECT_EQ(one.size(), 1);
  EXPECT_EQ(one.backend(), "single");
  std::vector<float> v = {1, 2, 3};
  one.all_reduce_sum(v);
  EXPECT_EQ(v, (std::vector<float>{1, 2, 3}));
  std::vector<float> out(3);
  one.all_to_all_rows(v.data(), {3}, out.data(), {3}, 1);
  EXPECT_EQ(out, v);
}

}  // namespace
}  // namespace moe::dist
