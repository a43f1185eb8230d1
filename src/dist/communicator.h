#pragma once
// A group of ranks and the collectives expert parallelism needs, as a value type over an
// implementation (Open MPI, or a single rank so that a build without MPI runs everything else).
// Copies share the implementation and the traffic counters.
//
// Determinism: all_reduce_sum never relies on the MPI library's reduction order. Each element is
// summed in rank order 0..R-1, by one rank whose sums are then gathered (or, for a few elements, by
// every rank from an all-gather of all copies): every rank gets the same bits, whatever algorithm
// MPI picks, and a run repeats bit for bit.
//
// This header depends only on core/: routers (moe/) sum their batch statistics over a group, and
// the expert-parallel bank (dist/) exchanges rows over one.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

namespace moe {
class ExpertBank;
}

namespace moe::dist {

// What one rank's collectives cost since the counters were last reset: seconds spent in them and
// bytes sent to other ranks (a rank's bytes to itself are not counted).
struct CommStats {
  double exchange_s = 0;      // all-to-all row exchanges
  double reduce_s = 0;        // all-reduce, all-gather, broadcast, barrier
  int64_t exchange_bytes = 0;
  int64_t reduce_bytes = 0;
};

// The transport. Byte counts and offsets are per peer rank, in rank order.
class CommunicatorImpl {
 public:
  virtual ~CommunicatorImpl() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual std::string name() const = 0;  // "mpi", "single"
  // Rank r receives send_bytes[r] bytes from send + send_off[r]; this rank receives recv_bytes[s]
  // bytes from rank s into recv + recv_off[s].
  virtual void all_to_all_v(const void* send, const int64_t* send_bytes, const int64_t* send_off,
                            void* recv, const int64_t* recv_bytes, const int64_t* recv_off) = 0;
  // recv: size() * bytes, rank s's block at s * bytes.
  virtual void all_gather(const void* send, int64_t bytes, void* recv) = 0;
  virtual void broadcast(void* data, int64_t bytes, int root) = 0;
  virtual void barrier() = 0;
  // Ranks with the same color form a new group, ordered by key (then by rank).
  virtual std::shared_ptr<CommunicatorImpl> split(int color, int key) = 0;
};

class Communicator {
 public:
  Communicator();  // a single rank
  explicit Communicator(std::shared_ptr<CommunicatorImpl> impl);

  // All ranks of the job: Open MPI's world when the process was started by mpirun (and moe was
  // built with MPI), else a single rank. init_world() must have run first for the MPI world.
  static Communicator world();

  int rank() const { return impl_->rank(); }
  int size() const { return impl_->size(); }
  std::string backend() const { return impl_->name(); }

  // m counts per rank (send.size() = m * size()): block r of send goes to rank r; returns the
  // blocks each rank sent to this one, in rank order.
  std::vector<int64_t> all_to_all_counts(const std::vector<int64_t>& send) const;
  // Uneven exchange of rows of `width` floats: send holds send_rows[r] rows for rank r, one rank
  // after another; recv gets recv_rows[s] rows from rank s, in rank order (recv_rows as returned
  // by all_to_all_counts(send_rows)). Zero rows to or from any rank are fine.
  void all_to_all_rows(const float* send, const std::vector<int64_t>& send_rows, float* recv,
                       const std::vector<int64_t>& recv_rows, int64_t width) const;

  // In-place sum over all ranks, deterministic (see above).
  void all_reduce_sum(float* data, int64_t n) const;
  void all_reduce_sum(double* data, int64_t n) const;
  void all_reduce_sum(int64_t* data, int64_t n) const;
  template <class T>
  void all_reduce_sum(std::vector<T>& v) const { all_reduce_sum(v.data(), int64_t(v.size())); }
  double sum(double x) const { all_reduce_sum(&x, 1); return x; }
  int64_t sum(int64_t x) const { all_reduce_sum(&x, 1); return x; }
  // The largest value over ranks (used to agree on flags, e.g. "some rank was interrupted").
  int64_t max(int64_t x) const;

  // Every rank's value, in rank order (per-rank statistics: RSS, bytes sent, step time).
  template <class T>
  std::vector<T> all_gather(const T& value) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<T> out(size());
    timed_gather(&value, int64_t(sizeof(T)), out.data());
    return out;
  }
  // Every rank's n values (the same n on every rank), in rank order: [size(), n]. One collective.
  template <class T>
  std::vector<T> all_gather_n(const T* mine, int64_t n) const {
    static_assert(std::is_trivially_copyable_v<T>);
    std::vector<T> out(size_t(size()) * size_t(n));
    timed_gather(mine, n * int64_t(sizeof(T)), out.data());
    return out;
  }
  // Every rank's vector (lengths may differ), concatenated in rank order; counts[s] = rank s's length.
  template <class T>
  std::vector<T> all_gather_v(const std::vector<T>& mine, std::vector<int64_t>* counts = nullptr) const {
    static_assert(std::is_trivially_copyable_v<T>);
    const std::vector<int64_t> n = all_gather(int64_t(mine.size()));
    int64_t total = 0;
    for (int64_t c : n) total += c;
    std::vector<T> out(total);
    gather_v_bytes(mine.data(), n, out.data(), int64_t(sizeof(T)));
    if (counts) *counts = n;
    return out;
  }

  template <class T>
  void broadcast(T* data, int64_t n, int root) const {
    static_assert(std::is_trivially_copyable_v<T>);
    timed_broadcast(data, n * int64_t(sizeof(T)), root);
  }
  void barrier() const;

  Communicator split(int color, int key) const;

  const CommStats& stats() const { return *stats_; }
  void reset_stats() const { *stats_ = CommStats{}; }
  // Whether two handles share their counters (copies of one group).
  bool same_group(const Communicator& o) const { return stats_ == o.stats_; }

 private:
  template <class T>
  void reduce_impl(T* data, int64_t n) const;
  void timed_gather(const void* send, int64_t bytes, void* recv) const;
  void timed_broadcast(void* data, int64_t bytes, int root) const;
  void gather_v_bytes(const void* send, const std::vector<int64_t>& counts, void* recv, int64_t elem) const;

  std::shared_ptr<CommunicatorImpl> impl_;
  std::shared_ptr<CommStats> stats_;
};

// Starts MPI when this process was launched by mpirun (Open MPI's environment is set) and moe was
// built with MPI; a no-op otherwise. Idempotent; MPI is finalised at exit. Returns world().size().
int init_world(int* argc, char*** argv);
// True when this process runs under mpirun (whether or not MPI could be started).
bool launched_by_mpirun();

// The layout of a job of W ranks with expert parallelism R (R divides W): W / R data-parallel
// replicas of R expert shards. Rank w is shard w % R of replica w / R.
struct ParallelLayout {
  Communicator world;    // all W ranks: they split every batch; non-expert gradients sum here
  Communicator experts;  // the R ranks of this replica: rows are exchanged here
  Communicator replica;  // the W / R ranks holding the same expert shard: expert gradients sum here
  int expert_parallel = 1;
  // Experts hosted outside this job, on decentralized expert servers: when set, MoE layer l's
  // experts are remote_experts(layer) instead of local (or expert-parallel) ones.
  struct RemoteLayer {
    int layer = 0, n_experts = 0, d_model = 0;
    std::vector<int> grid;  // the experts' grid dimensions (grid router); empty: a line of n_experts
  };
  std::function<std::unique_ptr<ExpertBank>(const RemoteLayer&)> remote_experts;
  int shard() const { return experts.rank(); }
  // This rank's traffic over all three groups (each distinct group counted once), and its reset.
  CommStats stats() const;
  void reset_stats() const;

  // Throws moe::Error when R does not divide W or is not positive.
  static ParallelLayout make(const Communicator& world, int expert_parallel);
};

}  // namespace moe::dist
