#include "dist/communicator.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace moe::dist {

namespace {

// One rank: every collective is a copy (or nothing).
class SingleRank final : public CommunicatorImpl {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  std::string name() const override { return "single"; }
  void all_to_all_v(const void* send, const int64_t* send_bytes, const int64_t* send_off, void* recv,
                    const int64_t* recv_bytes, const int64_t* recv_off) override {
    MOE_ASSERT(send_bytes[0] == recv_bytes[0]);
    if (send_bytes[0] > 0)
      std::memmove(static_cast<char*>(recv) + recv_off[0], static_cast<const char*>(send) + send_off[0], size_t(send_bytes[0]));
  }
  void all_gather(const void* send, int64_t bytes, void* recv) override {
    if (bytes > 0) std::memmove(recv, send, size_t(bytes));
  }
  void broadcast(void*, int64_t, int) override {}
  void barrier() override {}
  std::shared_ptr<CommunicatorImpl> split(int, int) override { return std::make_shared<SingleRank>(); }
};

class Timer {
 public:
  explicit Timer(double& acc) : acc_(acc), t0_(std::chrono::steady_clock::now()) {}
  ~Timer() { acc_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0_).count(); }

 private:
  double& acc_;
  std::chrono::steady_clock::time_point t0_;
};

// Reductions run in slices so that the staging buffers stay bounded (and MPI's int counts hold).
constexpr int64_t kReduceSlice = int64_t(1) << 24;  // elements
// Up to this many elements a sum is one all-gather and every rank adds the copies itself: one
// collective instead of two, for the small statistics a step sums (router loads, the loss).
constexpr int64_t kGatherSum = 1024;

}  // namespace

Communicator::Communicator() : Communicator(std::make_shared<SingleRank>()) {}

Communicator::Communicator(std::shared_ptr<CommunicatorImpl> impl)
    : impl_(std::move(impl)), stats_(std::make_shared<CommStats>()) {
  MOE_ASSERT(impl_);
}

std::vector<int64_t> Communicator::all_to_all_counts(const std::vector<int64_t>& send) const {
  const int R = size();
  if (send.empty() || send.size() % size_t(R) != 0)
    throw Error("[dist] all_to_all_counts: " + std::to_string(send.size()) + " counts for " + std::to_string(R) + " ranks");
  const int64_t m = int64_t(send.size()) / R, b = 8 * m;
  std::vector<int64_t> recv(send.size()), bytes(R, b), off(R);
  for (int r = 0; r < R; ++r) off[r] = b * r;
  Timer t(stats_->exchange_s);
  impl_->all_to_all_v(send.data(), bytes.data(), off.data(), recv.data(), bytes.data(), off.data());
  stats_->exchange_bytes += b * (R - 1);
  return recv;
}

void Communicator::all_to_all_rows(const float* send, const std::vector<int64_t>& send_rows, float* recv,
                                   const std::vector<int64_t>& recv_rows, int64_t width) const {
  const int R = size();
  if (int(send_rows.size()) != R || int(recv_rows.size()) != R)
    throw Error("[dist] all_to_all_rows: counts for " + std::to_string(send_rows.size()) + "/" +
                std::to_string(recv_rows.size()) + " ranks in a group of " + std::to_string(R));
  const int64_t row = width * int64_t(sizeof(float));
  std::vector<int64_t> sb(R), so(R), rb(R), ro(R);
  int64_t s_acc = 0, r_acc = 0;
  for (int r = 0; r < R; ++r) {
    if (send_rows[r] < 0 || recv_rows[r] < 0) throw Error("[dist] all_to_all_rows: negative row count");
    sb[r] = send_rows[r] * row, so[r] = s_acc, s_acc += sb[r];
    rb[r] = recv_rows[r] * row, ro[r] = r_acc, r_acc += rb[r];
    if (r != rank()) stats_->exchange_bytes += sb[r];
  }
  Timer t(stats_->exchange_s);
  impl_->all_to_all_v(send, sb.data(), so.data(), recv, rb.data(), ro.data());
}

// Reduce-scatter by an all-to-all (rank j receives every rank's copy of slice j and sums the copies
// in rank order), then an all-gather of the summed slices.
template <class T>
void Communicator::reduce_impl(T* data, int64_t n) const {
  const int R = size();
  if (R == 1 || n == 0) return;
  if (n <= kGatherSum) {
    // The same order as below: 0 + rank 0's value + rank 1's + ...
    const std::vector<T> all = all_gather_n(data, n);
    for (int64_t i = 0; i < n; ++i) {
      T s = T(0);
      for (int r = 0; r < R; ++r) s += all[size_t(r) * size_t(n) + size_t(i)];
      data[i] = s;
    }
    return;
  }
  Timer t(stats_->reduce_s);
  const int me = rank();
  std::vector<T> recv, part;
  std::vector<int64_t> sb(R), so(R), rb(R), ro(R);
  for (int64_t base = 0; base < n; base += kReduceSlice) {
    const int64_t len = std::min(kReduceSlice, n - base);
    const int64_t chunk = (len + R - 1) / R;  // the last ranks' slices may be shorter or empty
    auto lo = [&](int r) { return std::min(len, int64_t(r) * chunk); };
    const int64_t mine = lo(me + 1) - lo(me);
    for (int r = 0; r < R; ++r) {
      sb[r] = (lo(r + 1) - lo(r)) * int64_t(sizeof(T));
      so[r] = lo(r) * int64_t(sizeof(T));
      rb[r] = mine * int64_t(sizeof(T));
      ro[r] = r * mine * int64_t(sizeof(T));
      if (r != me) stats_->reduce_bytes += sb[r];
    }
    recv.resize(size_t(R) * size_t(mine));
    impl_->all_to_all_v(data + base, sb.data(), so.data(), recv.data(), rb.data(), ro.data());
    part.assign(size_t(chunk), T(0));
    for (int r = 0; r < R; ++r)
      for (int64_t i = 0; i < mine; ++i) part[i] += recv[size_t(r) * mine + i];
    // All-gather the summed slices (padded to `chunk` so the blocks are equal).
    recv.resize(size_t(R) * size_t(chunk));
    impl_->all_gather(part.data(), chunk * int64_t(sizeof(T)), recv.data());
    stats_->reduce_bytes += (R - 1) * chunk * int64_t(sizeof(T));
    for (int r = 0; r < R; ++r)
      std::copy(recv.begin() + size_t(r) * chunk, recv.begin() + size_t(r) * chunk + (lo(r + 1) - lo(r)),
                data + base + lo(r));
  }
}

void Communicator::all_reduce_sum(float* d, int64_t n) const { reduce_impl(d, n); }
void Communicator::all_reduce_sum(double* d, int64_t n) const { reduce_impl(d, n); }
void Communicator::all_reduce_sum(int64_t* d, int64_t n) const { reduce_impl(d, n); }

int64_t Communicator::max(int64_t x) const {
  const std::vector<int64_t> all = all_gather(x);
  return *std::max_element(all.begin(), all.end());
}

void Communicator::timed_gather(const void* send, int64_t bytes, void* recv) const {
  Timer t(stats_->reduce_s);
  impl_->all_gather(send, bytes, recv);
  stats_->reduce_bytes += (size() - 1) * bytes;
}

void Communicator::timed_broadcast(void* data, int64_t bytes, int root) const {
  if (root < 0 || root >= size()) throw Error("[dist] broadcast from rank " + std::to_string(root) + " in a group of " + std::to_string(size()));
  Timer t(stats_->reduce_s);
  impl_->broadcast(data, bytes, root);
  if (rank() == root) stats_->reduce_bytes += (size() - 1) * bytes;
}

void Communicator::gather_v_bytes(const void* send, const std::vector<int64_t>& counts, void* recv, int64_t elem) const {
  const int R = size();
  const int64_t mine = counts[rank()] * elem;
  std::vector<int64_t> sb(R, mine), so(R, 0), rb(R), ro(R);
  int64_t acc = 0;
  for (int r = 0; r < R; ++r) rb[r] = counts[r] * elem, ro[r] = acc, acc += rb[r];
  Timer t(stats_->reduce_s);
  impl_->all_to_all_v(send, sb.data(), so.data(), recv, rb.data(), ro.data());
  stats_->reduce_bytes += (R - 1) * mine;
}

void Communicator::barrier() const {
  Timer t(stats_->reduce_s);
  impl_->barrier();
}

Communicator Communicator::split(int color, int key) const { return Communicator(impl_->split(color, key)); }

bool launched_by_mpirun() {
  return std::getenv("OMPI_COMM_WORLD_SIZE") != nullptr || std::getenv("PMIX_RANK") != nullptr;
}

namespace {
std::vector<const Communicator*> distinct(const ParallelLayout& L) {
  std::vector<const Communicator*> out = {&L.world};
  for (const Communicator* g : {&L.experts, &L.replica})
    if (!g->same_group(L.world) && (out.size() == 1 || !g->same_group(*out.back()))) out.push_back(g);
  return out;
}
}  // namespace

CommStats ParallelLayout::stats() const {
  CommStats s;
  for (const Communicator* g : distinct(*this)) {
    s.exchange_s += g->stats().exchange_s, s.reduce_s += g->stats().reduce_s;
    s.exchange_bytes += g->stats().exchange_bytes, s.reduce_bytes += g->stats().reduce_bytes;
  }
  return s;
}

void ParallelLayout::reset_stats() const {
  for (const Communicator* g : distinct(*this)) g->reset_stats();
}

ParallelLayout ParallelLayout::make(const Communicator& world, int R) {
  const int W = world.size();
  if (R < 1) throw Error("[dist] --expert-parallel must be positive, got " + std::to_string(R));
  if (W % R != 0)
    throw Error("[dist] --expert-parallel " + std::to_string(R) + " does not divide the " + std::to_string(W) +
                " ranks of the job (W / R data-parallel replicas of R expert shards)");
  ParallelLayout p;
  p.world = world;
  p.expert_parallel = R;
  const int w = world.rank();
  // Every rank calls split in the same order (MPI_Comm_split is collective over the world).
  p.experts = R == 1 ? Communicator() : R == W ? world : world.split(/*color=*/w / R, /*key=*/w % R);
  p.replica = R == W ? Communicator() : R == 1 ? world : world.split(/*color=*/w % R, /*key=*/w / R);
  return p;
}

}  // namespace moe::dist
