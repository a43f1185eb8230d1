#pragma once
// The typical size of recent values (output or gradient RMS): a bounded window and its median. The
// guards against lying peers compare a new value with it; the median, unlike a mean, stays put while
// fewer than half of the values come from a liar.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <cstddef>
#include <deque>
#include <vector>

namespace moe::net {

class ScaleWindow {
 public:
  explicit ScaleWindow(size_t capacity = 64) : cap_(capacity) {}
  void add(double v) {
    w_.push_back(v);
    if (w_.size() > cap_) w_.pop_front();
  }
  size_t size() const { return w_.size(); }
  double median() const {
    std::vector<double> v(w_.begin(), w_.end());
    if (v.empty()) return 0;
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  }

 private:
  size_t cap_;
  std::deque<double> w_;
};

// Root mean square of n floats.
inline double rms(const float* x, size_t n) {
  double s = 0;
  for (size_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
  return n ? std::sqrt(s / double(n)) : 0.0;
}

// RMS of floats stored as unaligned bytes (a protobuf Matrix's data), without copying them out.
inline double rms_of_bytes(const std::string& bytes) {
  double s = 0;
  const size_t n = bytes.size() / sizeof(float);
  for (size_t i = 0; i < n; ++i) {
    float v;
    std::memcpy(&v, bytes.data() + i * sizeof(float), sizeof v);
    s += double(v) * v;
  }
  return n ? std::sqrt(s / double(n)) : 0.0;
}

}  // namespace moe::net
