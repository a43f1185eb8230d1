#pragma once
// The CLI under mpirun: which ranks do what, from --expert-parallel and mpirun's world.
#include <string>

#include "dist/communicator.h"

namespace moe::cli {

// expert_parallel: the flag's value, 0 when not given. Throws moe::Error when the flag does not
// fit the job: mpirun without it, R > 1 without mpirun, R not dividing the ranks.
dist::ParallelLayout job_layout(int expert_parallel, const std::string& command);

// World rank 0 prints; other ranks stay silent (their stdout goes to /dev/null, progress is off).
bool is_printing_rank();

}  // namespace moe::cli
