#pragma once
// Threading is OpenMP: oneDNN in Debian uses the OpenMP runtime too, so both share one thread pool
// instead of oversubscribing the cores.
#include <cstdint>

namespace moe {

int num_threads();
void set_num_threads(int n);

}  // namespace moe
