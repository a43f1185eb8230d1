#include "parallel.h"

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

bool is_printing_rank() { return dist::Communicator::world().rank() == 0; }

}  // namespace moe::cli
