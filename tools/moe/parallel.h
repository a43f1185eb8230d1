#pragma once
// The CLI under mpirun: which ranks do what, from --expert-parallel and mpirun's world.
#include <functional>
#include <string>
#include <vector>

#include "dist/communicator.h"

namespace moe::cli {

// expert_parallel: the flag's value, 0 when not given. Throws moe::Error when the flag does not
// fit the job: mpirun without it, R > 1 without mpirun, R not dividing the ranks.
dist::ParallelLayout job_layout(int expert_parallel, const std::string& command);

// One timed round of a collective piece of work: the ranks start together (barrier) and the round
// ends when the slowest is done.
struct ParallelRound {
  double seconds = 0;       // wall time of the round
  double comm_seconds = 0;  // this rank's time inside collectives
  int64_t bytes_sent = 0;   // this rank's bytes to other ranks
};
std::vector<ParallelRound> time_parallel_rounds(const dist::ParallelLayout& L, int rounds, const std::function<void()>& fn);

// World rank 0 prints; other ranks stay silent (their stdout goes to /dev/null, progress is off).
bool is_printing_rank();

}  // namespace moe::cli
