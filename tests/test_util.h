#pragma once
// Shared helpers for the tests: random tensors and central finite differences.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "model/config.h"
#include <gtest/gtest.h>

namespace moe::test {

// A tiny MoE decoder for tests that need some model: 2 layers, d 16, 4 heads (2 key/value heads),
// 4 experts of width 24, top-2, 32 positions.
inline ModelConfig tiny_moe_config(int vocab_size = 256) {
  ModelConfig c;
  c.vocab_size = vocab_size;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.num_hidden_layers = 2;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 2;
  c.max_position_embeddings = 32;
  c.num_local_experts = 4;
  c.num_experts_per_tok = 2;
  return c;
}

inline void fill_normal(float* p, int64_t n, Rng& rng, float std = 1.0f) {
  for (int64_t i = 0; i < n; ++i) p[i] = float(rng.normal() * std);
}
inline void fill_normal(Tensor& t, Rng& rng, float std = 1.0f) { fill_normal(t.data(), t.numel(), rng, std); }

// Central difference of loss() w.r.t. *x, in double around the current value.
inline double finite_diff(float* x, const std::function<double()>& loss, float eps) {
  const float x0 = *x;
  *x = x0 + eps;
  const double lp = loss();
  *x = x0 - eps;
  const double lm = loss();
  *x = x0;
  return (lp - lm) / (2.0 * double(eps));
}

// The same central difference for a loss that is not differentiable everywhere (a routing decision
// may flip): `smooth` is false when same() -- asked right after each of the two evaluations --
// said the discrete state moved away from the unperturbed one.
struct FiniteDiff {
  double slope;
  bool smooth;
};
inline FiniteDiff finite_diff_where_smooth(float* x, const std::function<double()>& loss,
                                           const std::function<bool()>& same, float eps) {
  bool smooth = true;
  const double d = finite_diff(x, [&] {
    const double l = loss();
    smooth = smooth && same();
    return l;
  }, eps);
  return {d, smooth};
}

// |a - b| <= atol + rtol * max(|a|, |b|)
inline bool close(double a, double b, double rtol, double atol) {
  return std::abs(a - b) <= atol + rtol * std::max(std::abs(a), std::abs(b));
}

inline std::string source_dir() { return MOE_SOURCE_DIR; }

// A fresh directory under the test temp dir, removed with everything in it when destroyed.
struct ScratchDir {
  std::string path;
  ScratchDir() {
    std::string t = (std::filesystem::path(::testing::TempDir()) / "moe_XXXXXX").string();
    if (!::mkdtemp(t.data())) throw std::runtime_error("mkdtemp failed");
    path = t;
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string file(const std::string& name) const { return path + "/" + name; }
  std::vector<std::string> entries() const {
    std::vector<std::string> out;
    for (const auto& e : std::filesystem::directory_iterator(path)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
};

// A fresh, empty directory for one test (unique per process), left for inspection.
inline std::string fresh_dir(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/moe_" + name + "_" + std::to_string(::getpid());
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d;
}

// The message of the moe::Error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace moe::test
