// Rotary embeddings (rotate-half) against two references: Hugging Face's float32 angle recipe
// (to ~1e-6) and exact double-precision angles (to the angle's float rounding); position 0 is the
// identity; the backward inverts the forward and is its transpose; finite differences.
#include "kernels/rope.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../test_util.h"

namespace moe::kernels {
namespace {

// The rotation in double, given the angle of frequency i at token t.
template <class AngleFn>
std::vector<double> rope_ref(const std::vector<float>& x, int64_t n, int64_t H, int64_t D,
                             AngleFn angle) {
  std::vector<double> y(x.size());
  const int64_t half = D / 2;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < half; ++i) {
        const double ang = angle(t, i);
        const double a = x[(t * H + h) * D + i], b = x[(t * H + h) * D + i + half];
        y[(t * H + h) * D + i] = a * std::cos(ang) - b * std::sin(ang);
        y[(t * H + h) * D + i + half] = b * std::cos(ang) + a * std::sin(ang);
      }
  return y;
}

TEST(Rope, MatchesHuggingFaceFloat32Angles) {
  // HF (PyTorch, float32): inv_freq = 1 / theta ** (arange(0, D, 2).float() / D),
  // angle = float(pos) * inv_freq, cos/sin of that float angle. We agree within 2e-6 absolute
  // (|x| ~ 1: a few float roundings; PyTorch's cos/sin are 1-ulp).
  Rng rng(61);
  const std::vector<int32_t> pos = {0, 1, 2, 7, 100, 4095, 32767};
  const int64_t n = int64_t(pos.size());
  for (auto [H, D, theta] : {std::tuple<int64_t, int64_t, float>{3, 8, 10000.0f}, {2, 128, 1e6f}, {1, 64, 500000.0f}}) {
    std::vector<float> x(n * H * D);
    test::fill_normal(x.data(), int64_t(x.size()), rng);
    std::vector<float> y = x;
    rope_forward(y.data(), pos.data(), n, H, D, theta);
    const auto ref = rope_ref(x, n, H, D, [&](int64_t t, int64_t i) {
      const float inv = 1.0f / std::pow(theta, float(2 * i) / float(D));
      return double(float(pos[t]) * inv);
    });
    for (size_t i = 0; i < x.size(); ++i) ASSERT_NEAR(y[i], ref[i], 2e-6) << "D=" << D << " " << i;
  }
}

TEST(Rope, MatchesExactAnglesUpToTheirFloatRounding) {
  // Against angles computed exactly in double: the float32 angle is off by at most ~2 ulp of
  // itself (inv_freq rounding, then the product), so the tolerance is 2e-6 + 3e-7 * angle * |x|.
  Rng rng(62);
  const std::vector<int32_t> pos = {0, 1, 3, 64, 1000, 20000};
  const int64_t n = int64_t(pos.size()), H = 2, D = 32;
  const double theta = 10000.0;
  std::vector<float> x(n * H * D);
  test::fill_normal(x.data(), int64_t(x.size()), rng);
  std::vector<float> y = x;
  rope_forward(y.data(), pos.data(), n, H, D, float(theta));
  auto angle = [&](int64_t t, int64_t i) { return pos[t] * std::pow(theta, -2.0 * double(i) / double(D)); };
  const auto ref = rope_ref(x, n, H, D, angle);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < D; ++i) {
        const int64_t e = (t * H + h) * D + i, base = (t * H + h) * D;
        const double mag = std::abs(x[base + i % (D / 2)]) + std::abs(x[base + i % (D / 2) + D / 2]);
        ASSERT_NEAR(y[e], ref[e], 2e-6 + 3e-7 * angle(t, i % (D / 2)) * mag) << "t=" << t << " i=" << i;
      }
}

TEST(Rope, PositionZeroIsIdentityAndBackwardInvertsForward) {
  Rng rng(63);
  const int64_t n = 5, H = 4, D = 16;
  const std::vector<int32_t> pos = {0, 0, 5, 17, 9000};
  std::vector<float> x(n * H * D);
  test::fill_normal(x.data(), int64_t(x.size()), rng);
  std::vector<float> y = x;
  rope_forward(y.data(), pos.data(), n, H, D, 10000.0f);
  for (int64_t j = 0; j < 2 * H * D; ++j) EXPECT_EQ(y[j], x[j]) << j;  // cos 0 = 1, sin 0 = 0
  // rope_backward(rope_forward(x)) == x up to float rounding of the two rotations (1e-6 abs).
  rope_backward(y.data(), pos.data(), n, H, D, 10000.0f);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], 1e-6) << i;
}

// The backward is the transpose: <rope(x), r> == <x, rope_backward(r)> (1e-5 relative), and
// central differences of loss = sum(rope(x) * r) (eps 1e-3; the loss is linear so the only error
// is float noise: |analytic - numeric| <= 1e-3 + 1e-2 * max(|analytic|, |numeric|)).
TEST(Rope, BackwardIsTransposeAndMatchesFiniteDifferences) {
  Rng rng(64);
  const int64_t n = 3, H = 2, D = 8;
  const std::vector<int32_t> pos = {1, 4, 13};
  std::vector<float> x(n * H * D), r(n * H * D), y(n * H * D);
  test::fill_normal(x.data(), int64_t(x.size()), rng);
  test::fill_normal(r.data(), int64_t(r.size()), rng);
  std::vector<float> dx = r;
  rope_backward(dx.data(), pos.data(), n, H, D, 10000.0f);
  auto loss = [&] {
    y = x;
    rope_forward(y.data(), pos.data(), n, H, D, 10000.0f);
    double s = 0;
    for (size_t i = 0; i < y.size(); ++i) s += double(y[i]) * r[i];
    return s;
  };
  double lhs = loss(), rhs = 0;
  for (size_t i = 0; i < x.size(); ++i) rhs += double(x[i]) * dx[i];
  EXPECT_NEAR(lhs, rhs, 1e-5 * (1 + std::abs(lhs)));
  for (size_t i = 0; i < x.size(); ++i)
    EXPECT_TRUE(test::close(dx[i], test::finite_diff(&x[i], loss, 1e-3f), 1e-2, 1e-3)) << i;
}

// Many tokens (multi-threaded path) equal the same tokens rotated one at a time (exactly: the
// same float operations per element).
TEST(Rope, ManyTokensEqualOneAtATime) {
  Rng rng(65);
  const int64_t n = 300, H = 4, D = 32;
  std::vector<int32_t> pos(n);
  for (int64_t t = 0; t < n; ++t) pos[t] = int32_t((t * 37) % 1000);
  std::vector<float> x(n * H * D);
  test::fill_normal(x.data(), int64_t(x.size()), rng);
  std::vector<float> all = x, one = x;
  rope_forward(all.data(), pos.data(), n, H, D, 10000.0f);
  for (int64_t t = 0; t < n; ++t) rope_forward(one.data() + t * H * D, &pos[t], 1, H, D, 10000.0f);
  EXPECT_EQ(all, one);
}

}  // namespace
}  // namespace moe::kernels
