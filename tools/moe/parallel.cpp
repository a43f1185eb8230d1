#include "parallel.h"

#include <chrono>

#include "core/error.h"

namespace moe::cli {

dist::ParallelLayout job_layout(int R, const std::string& command) {
  const dist::Communicator world = dist::Communicator::world();
  const int W = world.size();
  if (W > 1 && R == 0)
    throw Error("[dist] moe " + command + " runs under mpirun with " + std::to_string(W) +
                " ranks: pass --expert-parallel R (R divides " + std::to_string(W) +
                "; each rank then holds 1/R of every MoE layer's experts, and " + std::to_string(W) +
                "/R data-parallel replicas split each batch; 1: data parallelism only)");
  if (W == 1 && R > 1)
    throw Error("[dist] --expert-parallel " + std::to_string(R) + " needs " + std::to_string(R) +
                " ranks (or a multiple): run it as mpirun -np " + std::to_string(R) + " moe " + command + " ...");
  return dist::ParallelLayout::make(world, R == 0 ? 1 : R);
}

std::vector<ParallelRound> time_parallel_rounds(const dist::ParallelLayout& L, int rounds, const std::function<void()>& fn) {
  std::vector<ParallelRound> out;
  for (int r = 0; r < rounds; ++r) {
    L.world.barrier();
    L.reset_stats();
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    L.world.barrier();
    const dist::CommStats s = L.stats();
    out.push_back({.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(),
                   .comm_seconds = s.exchange_s + s.reduce_s,
                   .bytes_sent = s.exchange_bytes + s.reduce_bytes});
  }
  return out;
}

bool is_printing_rank() { return dist::Communicator::world().rank() == 0; }

}  // namespace moe::cli
