#pragma once
// moe::Error: everything a user can get wrong (a file, a flag, a shape) throws this, with a message
// prefixed by where it arose, e.g. "[safetensors] model.safetensors: tensor 'x' ...".
#include <stdexcept>
#include <string>

namespace moe {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& msg) : std::runtime_error(msg) {}
};

// Internal invariant: not for user input. Active in every build type because the cost is tiny next
// to the kernels it guards.
#define MOE_ASSERT(cond)                                                                  \
  do {                                                                                    \
    if (!(cond)) throw ::moe::Error(std::string("[internal] assertion failed: ") + #cond + \
                                    " at " + __FILE__ + ":" + std::to_string(__LINE__));  \
  } while (0)

}  // namespace moe
