#pragma once
// Reading a saved optimizer state back (moe train --resume): the AdamW moments of every parameter
// from the step's state files (one file, plus expert shards under expert parallelism), checked as
// input from disk: present, the right size, finite, and second moments >= 0 (a negative or NaN
// moment would turn the next update into NaN weights, far from the file that caused it).
#include <string>
#include <vector>

#include "io/safetensors.h"
#include "train/adamw.h"

namespace moe {

// Loads opt's moments from files (searched in order for each tensor) and sets its step count.
// moe::Error naming dir, the step and the tensor on anything missing or malformed.
void load_optimizer_state(AdamW& opt, const std::vector<SafetensorsFile>& files, int64_t step,
                          const std::string& dir);

}  // namespace moe
