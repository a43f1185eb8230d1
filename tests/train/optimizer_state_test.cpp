// Reading an optimizer state back: moments restored exactly, and a clear error naming the tensor
// for a missing, mis-sized, non-finite or negative-second-moment one.
#include "train/optimizer_state.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "core/error.h"
#include "../test_util.h"

namespace moe {
namespace {

struct Fixture {
  test::ScratchDir d;
  Param a{"a", Shape{4, 3}}, b{"b", Shape{5}};
  AdamW opt{ParamList{&a, &b}, {}};
  // The state tensors "adam.m.a", "adam.v.a", "adam.m.b", "adam.v.b" with values value(name, i).
  std::string write(const std::function<float(const std::string&, int64_t)>& value,
                    const std::string& drop = "", int64_t b_size = 5) {
    Tensor ma{Shape{4, 3}}, va{Shape{4, 3}}, mb{Shape{b_size}}, vb{Shape{b_size}};
    NamedTensors t;
    for (auto& [n, x] : std::vector<std::pair<std::string, Tensor*>>{{"adam.m.a", &ma}, {"adam.v.a", &va}, {"adam.m.b", &mb}, {"adam.v.b", &vb}}) {
      for (int64_t i = 0; i < x->numel(); ++i) (*x)[i] = value(n, i);
      if (n != drop) t.emplace_back(n, x);
    }
    const std::string path = d.file("trainer_state-7.safetensors");
    write_safetensors(path, t, {{"step", "7"}});
    return path;
  }
  std::string load_error(const std::string& path) {
    try {
      load_optimizer_state(opt, {SafetensorsFile::open(path)}, 7, d.path);
    } catch (const Error& e) {
      return e.what();
    }
    return "(no error)";
  }
};

TEST(OptimizerState, RestoresTheMomentsAndStep) {
  Fixture f;
  const std::string path = f.write([](const std::string& n, int64_t i) { return float(n.size() + i) * 0.25f; });
  EXPECT_EQ(f.load_error(path), "(no error)");
  EXPECT_EQ(f.opt.steps_done(), 7);
  const auto st = f.opt.state_tensors();
  ASSERT_EQ(st.size(), 4u);
  for (const auto& [n, t] : st)
    for (int64_t i = 0; i < t->numel(); ++i) ASSERT_EQ((*t)[i], float(n.size() + i) * 0.25f) << n;
}

TEST(OptimizerState, MalformedStatesAreClearErrors) {
  auto ok = [](const std::string&, int64_t) { return 0.5f; };
  Fixture f;
  EXPECT_NE(f.load_error(f.write(ok, "adam.v.b")).find("of step 7 has no tensor 'adam.v.b'"), std::string::npos);
  EXPECT_NE(f.load_error(f.write(ok, "", 6)).find("adam.m.b"), std::string::npos);
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  EXPECT_NE(f.load_error(f.write([&](const std::string& n, int64_t i) { return n == "adam.m.a" && i == 4 ? nan : 0.5f; }))
                .find("tensor 'adam.m.a' holds nan at element 4 (must be finite)"), std::string::npos);
  EXPECT_NE(f.load_error(f.write([&](const std::string& n, int64_t i) { return n == "adam.m.b" && i == 0 ? inf : 0.5f; }))
                .find("'adam.m.b' holds inf"), std::string::npos);
  EXPECT_NE(f.load_error(f.write([](const std::string& n, int64_t i) { return n == "adam.v.a" && i == 2 ? -1e-3f : 0.5f; }))
                .find("'adam.v.a' holds -0.001000 at element 2 (second moments must be finite and >= 0)"), std::string::npos);
  // Negative first moments are ordinary.
  EXPECT_EQ(f.load_error(f.write([](const std::string& n, int64_t) { return n.rfind("adam.m.", 0) == 0 ? -2.0f : 0.5f; })),
            "(no error)");
}

}  // namespace
}  // namespace moe
