// Rotary embeddings and causal grouped-query attention against naive references and finite
// differences; the decode kernel against the full one.
#include "kernels/attention.h"

#include <gtest/gtest.h>

#include "kernels/rope.h"
#include "../test_util.h"
#include "kernels_ref.h"

namespace moe::kernels {
namespace {

TEST(Rope, MatchesRotateHalfReferenceAndInverts) {
  Rng rng(1);
  const int64_t n = 5, H = 3, D = 8;
  std::vector<float> x(n * H * D), y;
  std::vector<int32_t> pos = {0, 1, 2, 7, 100};
  test::fill_normal(x.data(), x.size(), rng);
  y = x;
  rope_forward(y.data(), pos.data(), n, H, D, 10000.0f);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t i = 0; i < D / 2; ++i) {
        const double ang = pos[t] * std::pow(10000.0, -2.0 * i / D);
        const float* a = &x[(t * H + h) * D];
        EXPECT_NEAR(y[(t * H + h) * D + i], a[i] * std::cos(ang) - a[i + D / 2] * std::sin(ang), 1e-4);
        EXPECT_NEAR(y[(t * H + h) * D + i + D / 2], a[i + D / 2] * std::cos(ang) + a[i] * std::sin(ang), 1e-4);
      }
  for (int64_t j = 0; j < H * D; ++j) EXPECT_EQ(y[j], x[j]);  // position 0 is the identity
  rope_backward(y.data(), pos.data(), n, H, D, 10000.0f);
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], x[i], 1e-5);
}

// Naive causal GQA in double.
std::vector<double> attn_ref(const std::vector<float>& q, const std::vector<float>& k, const std::vector<float>& v,
                             int64_t B, int64_t T, int64_t Hq, int64_t Hkv, int64_t D) {
  std::vector<double> out(B * T * Hq * D, 0.0);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t g = h / (Hq / Hkv);
      for (int64_t i = 0; i < T; ++i) {
        std::vector<double> s(i + 1);
        double mx = -1e300, z = 0;
        for (int64_t j = 0; j <= i; ++j) {
          double a = 0;
          for (int64_t d = 0; d < D; ++d) a += double(q[((b * T + i) * Hq + h) * D + d]) * k[((b * T + j) * Hkv + g) * D + d];
          s[j] = a / std::sqrt(double(D));
          mx = std::max(mx, s[j]);
        }
        for (auto& e : s) z += e = std::exp(e - mx);
        for (int64_t d = 0; d < D; ++d) {
          double acc = 0;
          for (int64_t j = 0; j <= i; ++j) acc += s[j] / z * v[((b * T + j) * Hkv + g) * D + d];
          out[((b * T + i) * Hq + h) * D + d] = acc;
        }
      }
    }
  return out;
}

TEST(Attention, ForwardGQAMatchesReferenceAndIsCausal) {
  Rng rng(2);
  const int64_t B = 2, T = 7, Hq = 4, Hkv = 2, D = 6;
  std::vector<float> q(B * T * Hq * D), k(B * T * Hkv * D), v(k.size()), out(q.size()), probs(B * Hq * T * T);
  test::fill_normal(q.data(), q.size(), rng);
  test::fill_normal(k.data(), k.size(), rng);
  test::fill_normal(v.data(), v.size(), rng);
  attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, D);
  auto ref = attn_ref(q, k, v, B, T, Hq, Hkv, D);
  for (size_t i = 0; i < out.size(); ++i) EXPECT_NEAR(out[i], ref[i], 1e-5);
  for (int64_t i = 0; i < T; ++i)
    for (int64_t j = i + 1; j < T; ++j) EXPECT_EQ(probs[i * T + j], 0.0f);
  // A change at the last position leaves earlier outputs untouched.
  std::vector<float> k2 = k, v2 = v, out2(out.size());
  for (int64_t d = 0; d < Hkv * D; ++d) k2[(T - 1) * Hkv * D + d] += 1, v2[(T - 1) * Hkv * D + d] -= 1;
  attention_forward(out2.data(), probs.data(), q.data(), k2.data(), v2.data(), B, T, Hq, Hkv, D);
  for (int64_t i = 0; i < (T - 1) * Hq * D; ++i) EXPECT_EQ(out2[i], out[i]);
}

TEST(Attention, BackwardMatchesFiniteDifferences) {
  Rng rng(3);
  const int64_t B = 2, T = 5, Hq = 4, Hkv = 2, D = 4;
  std::vector<float> q(B * T * Hq * D), k(B * T * Hkv * D), v(k.size()), out(q.size()), probs(B * Hq * T * T), r(q.size());
  std::vector<float> dq(q.size()), dk(k.size()), dv(v.size());
  for (auto* t : {&q, &k, &v, &r}) test::fill_normal(t->data(), t->size(), rng);
  auto loss = [&] {
    attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, D);
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += double(out[i]) * r[i];
    return s;
  };
  loss();
  attention_backward(dq.data(), dk.data(), dv.data(), r.data(), probs.data(), q.data(), k.data(), v.data(), B, T, Hq, Hkv, D);
  // float32 central differences, eps 1e-2: rtol 2e-2, atol 2e-3
  for (auto [x, g, name] : {std::tuple{&q, &dq, "dq"}, {&k, &dk, "dk"}, {&v, &dv, "dv"}})
    for (size_t i = 0; i < x->size(); i += 3)
      EXPECT_TRUE(test::close((*g)[i], test::finite_diff(&(*x)[i], loss, 1e-2f), 2e-2, 2e-3)) << name << "[" << i << "]";
}

TEST(Attention, DecodeEqualsLastRowOfFullAttention) {
  Rng rng(4);
  const int64_t T = 9, Hq = 4, Hkv = 1, D = 8;
  std::vector<float> q(T * Hq * D), k(T * Hkv * D), v(k.size()), out(q.size()), probs(Hq * T * T), dec(Hq * D), scratch(T);
  for (auto* t : {&q, &k, &v}) test::fill_normal(t->data(), t->size(), rng);
  attention_forward(out.data(), probs.data(), q.data(), k.data(), v.data(), 1, T, Hq, Hkv, D);
  attention_decode(dec.data(), q.data() + (T - 1) * Hq * D, k.data(), v.data(), T, Hq, Hkv, D, scratch.data());
  for (int64_t i = 0; i < Hq * D; ++i) EXPECT_NEAR(dec[i], out[(T - 1) * Hq * D + i], 1e-5);
}

}  // namespace
}  // namespace moe::kernels
