#include "core/tensor.h"

namespace moe {

std::string shape_str(const Shape& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (auto d : s) {
    if (d < 0) throw Error("[tensor] negative dimension in shape " + shape_str(s));
    n *= d;
  }
  return n;
}

}  // namespace moe
