// oneDNN GEMM against the naive triple loop: all transpose combinations, odd sizes, padded
// leading dimensions, beta 0 and 1, and the linear-layer helpers.
#include "kernels/gemm.h"

#include <gtest/gtest.h>

#include "../test_util.h"

namespace moe::kernels {
namespace {

TEST(Gemm, MatchesReferenceAllLayouts) {
  Rng rng(1);
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f})
        for (auto [M, N, K] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1}, {7, 5, 3}, {33, 17, 65}, {64, 130, 9}}) {
          const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
          std::vector<float> A((ta ? K : M) * lda), B((tb ? N : K) * ldb), C(M * ldc), R;
          test::fill_normal(A.data(), A.size(), rng);
          test::fill_normal(B.data(), B.size(), rng);
          test::fill_normal(C.data(), C.size(), rng);
          R = C;
          gemm(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
          gemm_ref(ta, tb, M, N, K, 0.5f, A.data(), lda, B.data(), ldb, beta, R.data(), ldc);
          for (int64_t i = 0; i < M; ++i)
            for (int64_t j = 0; j < ldc; ++j)
              ASSERT_NEAR(C[i * ldc + j], R[i * ldc + j], 1e-4 * (1 + std::abs(R[i * ldc + j])))
                  << ta << tb << beta << " " << M << "x" << N << "x" << K << " at " << i << "," << j;
        }
}

TEST(Gemm, ZeroKAndEmpty) {
  std::vector<float> C = {1, 2, 3, 4};
  gemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.0f, C.data(), 2);
  for (float v : C) EXPECT_EQ(v, 0.0f);
  gemm(false, false, 0, 2, 3, 1.0f, nullptr, 3, nullptr, 2, 0.0f, C.data(), 2);  // no-op
}

TEST(Linear, ForwardAndBackwardMatchLoops) {
  Rng rng(2);
  const int64_t n = 5, in = 7, out = 3;
  std::vector<float> x(n * in), W(out * in), y(n * out), dy(n * out), dx(n * in), dW(out * in, 1.0f);
  test::fill_normal(x.data(), x.size(), rng);
  test::fill_normal(W.data(), W.size(), rng);
  test::fill_normal(dy.data(), dy.size(), rng);
  linear_forward(y.data(), x.data(), W.data(), n, in, out);
  linear_backward_input(dx.data(), dy.data(), W.data(), n, in, out);
  linear_backward_weight(dW.data(), dy.data(), x.data(), n, in, out);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t j = 0; j < in; ++j) s += double(x[i * in + j]) * W[o * in + j];
      EXPECT_NEAR(y[i * out + o], s, 1e-5);
    }
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < in; ++j) {
      double s = 0;
      for (int64_t o = 0; o < out; ++o) s += double(dy[i * out + o]) * W[o * in + j];
      EXPECT_NEAR(dx[i * in + j], s, 1e-5);
    }
  for (int64_t o = 0; o < out; ++o)
    for (int64_t j = 0; j < in; ++j) {
      double s = 1.0;  // accumulates onto the initial 1
      for (int64_t i = 0; i < n; ++i) s += double(dy[i * out + o]) * x[i * in + j];
      EXPECT_NEAR(dW[o * in + j], s, 1e-5);
    }
}

}  // namespace
}  // namespace moe::kernels
