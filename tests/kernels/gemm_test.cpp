// oneDNN GEMM against the naive double-accumulating gemm_ref: all four transpose combinations, odd
// sizes, leading dimensions larger than the width, beta 0 and 1; and the linear-layer helpers.
#include "kernels/gemm.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <tuple>
#include <vector>

#include "../test_util.h"

namespace moe::kernels {
namespace {

constexpr double kU = 0x1.0p-24;  // float32 unit roundoff

// Tolerance: the classical float GEMM bound K u sum_k |alpha a_ik b_kj| plus two roundings of the
// result (the beta C addition and the final store), computed from the same operands in double.
double gemm_bound(bool ta, bool tb, int64_t K, float alpha, const float* A, int64_t lda,
                  const float* B, int64_t ldb, double c_abs, int64_t i, int64_t j) {
  double s = 0;
  for (int64_t k = 0; k < K; ++k) {
    const float a = ta ? A[k * lda + i] : A[i * lda + k];
    const float b = tb ? B[j * ldb + k] : B[k * ldb + j];
    s += std::abs(double(alpha) * a * b);
  }
  return (double(K) + 2) * kU * (s + c_abs) + 1e-30;
}

TEST(Gemm, MatchesReferenceAllTransposesOddSizesPaddedLeadingDims) {
  Rng rng(11);
  const std::vector<std::tuple<int64_t, int64_t, int64_t>> sizes = {
      {1, 1, 1}, {7, 5, 3}, {3, 1, 17}, {33, 17, 65}, {64, 130, 9}, {5, 129, 257}};
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (float beta : {0.0f, 1.0f})
        for (auto [M, N, K] : sizes) {
          // Stored shapes: A is [M, K] or [K, M], B is [K, N] or [N, K]; ld > width everywhere.
          const int64_t lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 5;
          const float alpha = 0.75f;
          std::vector<float> A((ta ? K : M) * lda), B((tb ? N : K) * ldb), C(M * ldc);
          test::fill_normal(A.data(), int64_t(A.size()), rng);
          test::fill_normal(B.data(), int64_t(B.size()), rng);
          test::fill_normal(C.data(), int64_t(C.size()), rng);
          std::vector<float> R = C, C0 = C;
          gemm(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, C.data(), ldc);
          gemm_ref(ta, tb, M, N, K, alpha, A.data(), lda, B.data(), ldb, beta, R.data(), ldc);
          for (int64_t i = 0; i < M; ++i) {
            for (int64_t j = 0; j < N; ++j) {
              const double tol = gemm_bound(ta, tb, K, alpha, A.data(), lda, B.data(), ldb,
                                            std::abs(double(beta) * C0[i * ldc + j]), i, j);
              ASSERT_NEAR(C[i * ldc + j], R[i * ldc + j], tol)
                  << "ta=" << ta << " tb=" << tb << " beta=" << beta << " " << M << "x" << N
                  << "x" << K << " at " << i << "," << j;
            }
            for (int64_t j = N; j < ldc; ++j)  // the padding is never written
              ASSERT_EQ(C[i * ldc + j], C0[i * ldc + j]) << "padding at " << i << "," << j;
          }
        }
}

TEST(Gemm, BetaZeroOverwritesGarbage) {
  // BLAS semantics: with beta = 0, C is not read (NaN in C must not leak into the result).
  Rng rng(12);
  const int64_t M = 9, N = 11, K = 13;
  std::vector<float> A(M * K), B(K * N), C(M * N, std::numeric_limits<float>::quiet_NaN()),
      R(M * N, 0.0f);
  test::fill_normal(A.data(), M * K, rng);
  test::fill_normal(B.data(), K * N, rng);
  gemm(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, C.data(), N);
  gemm_ref(false, false, M, N, K, 1.0f, A.data(), K, B.data(), N, 0.0f, R.data(), N);
  for (int64_t i = 0; i < M * N; ++i) EXPECT_NEAR(C[i], R[i], 1e-5) << i;
}

TEST(Gemm, LargerThreadedCaseMatchesReference) {
  Rng rng(13);
  const int64_t M = 150, N = 190, K = 170;
  std::vector<float> A(M * K), B(N * K), C(M * N), R(M * N);
  test::fill_normal(A.data(), M * K, rng);
  test::fill_normal(B.data(), N * K, rng);
  gemm(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, C.data(), N);
  gemm_ref(false, true, M, N, K, 1.0f, A.data(), K, B.data(), K, 0.0f, R.data(), N);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j)
      ASSERT_NEAR(C[i * N + j], R[i * N + j],
                  gemm_bound(false, true, K, 1.0f, A.data(), K, B.data(), K, 0.0, i, j));
}

TEST(Gemm, ZeroKScalesCAndEmptyIsANoOp) {
  std::vector<float> C = {1, 2, 3, 4};
  gemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 1.0f, C.data(), 2);
  EXPECT_EQ(C, (std::vector<float>{1, 2, 3, 4}));  // C = 1 * C
  gemm(false, false, 2, 2, 0, 1.0f, nullptr, 1, nullptr, 2, 0.0f, C.data(), 2);
  EXPECT_EQ(C, (std::vector<float>{0, 0, 0, 0}));
  C = {5, 6, 7, 8};
  gemm(false, false, 0, 2, 3, 1.0f, nullptr, 3, nullptr, 2, 0.0f, C.data(), 2);
  gemm(false, false, 2, 0, 3, 1.0f, nullptr, 3, nullptr, 1, 0.0f, C.data(), 1);
  EXPECT_EQ(C, (std::vector<float>{5, 6, 7, 8}));
}

// Linear helpers, weights [out, in], against plain loops in double (tolerance 1e-5 absolute for
// sums of 3..7 products of unit normals).
TEST(Linear, ForwardAndBackwardMatchLoops) {
  Rng rng(14);
  const int64_t n = 5, in = 7, out = 3;
  std::vector<float> x(n * in), W(out * in), y(n * out, 2.0f), dy(n * out), dx(n * in, 3.0f),
      dW(out * in, 1.0f);
  test::fill_normal(x.data(), n * in, rng);
  test::fill_normal(W.data(), out * in, rng);
  test::fill_normal(dy.data(), n * out, rng);

  linear_forward(y.data(), x.data(), W.data(), n, in, out);  // assigns
  for (int64_t i = 0; i < n; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t j = 0; j < in; ++j) s += double(x[i * in + j]) * W[o * in + j];
      EXPECT_NEAR(y[i * out + o], s, 1e-5);
    }
  std::vector<float> y2 = y;
  linear_forward(y2.data(), x.data(), W.data(), n, in, out, /*accumulate=*/true);
  for (int64_t i = 0; i < n * out; ++i) EXPECT_NEAR(y2[i], 2 * y[i], 1e-5);

  linear_backward_input(dx.data(), dy.data(), W.data(), n, in, out);  // assigns
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < in; ++j) {
      double s = 0;
      for (int64_t o = 0; o < out; ++o) s += double(dy[i * out + o]) * W[o * in + j];
      EXPECT_NEAR(dx[i * in + j], s, 1e-5);
    }
  std::vector<float> dx2 = dx;
  linear_backward_input(dx2.data(), dy.data(), W.data(), n, in, out, /*accumulate=*/true);
  for (int64_t i = 0; i < n * in; ++i) EXPECT_NEAR(dx2[i], 2 * dx[i], 1e-5);

  linear_backward_weight(dW.data(), dy.data(), x.data(), n, in, out);  // accumulates
  for (int64_t o = 0; o < out; ++o)
    for (int64_t j = 0; j < in; ++j) {
      double s = 1.0;  // onto the initial 1
      for (int64_t i = 0; i < n; ++i) s += double(dy[i * out + o]) * x[i * in + j];
      EXPECT_NEAR(dW[o * in + j], s, 1e-5);
    }
}

// Thin products with a leading dimension that is a multiple of 256 floats take the padded-copy path
// of linear_backward_input on AVX2 (and the direct path elsewhere): both must match the reference,
// assigning and accumulating, also when called from inside a parallel region (per-thread buffers).
TEST(Linear, BackwardInputThinPowerOfTwoShapesMatchReference) {
  Rng rng(15);
  for (auto [n, in, out] : {std::tuple<int64_t, int64_t, int64_t>{64, 256, 96}, {128, 512, 40}, {100, 1024, 33}, {63, 512, 8}}) {
    std::vector<float> W(out * in), dy(n * out), ref(n * in), dx(n * in, 0.5f);
    test::fill_normal(W.data(), out * in, rng);
    test::fill_normal(dy.data(), n * out, rng);
    gemm_ref(false, false, n, in, out, 1.0f, dy.data(), out, W.data(), in, 0.0f, ref.data(), in);
    linear_backward_input(dx.data(), dy.data(), W.data(), n, in, out);
    for (int64_t i = 0; i < n * in; ++i) ASSERT_NEAR(dx[i], ref[i], 1e-4) << n << "x" << in << "x" << out << " at " << i;
    linear_backward_input(dx.data(), dy.data(), W.data(), n, in, out, /*accumulate=*/true);
    for (int64_t i = 0; i < n * in; ++i) ASSERT_NEAR(dx[i], 2 * ref[i], 2e-4);
    std::vector<float> dx2(2 * n * in);
#pragma omp parallel for num_threads(2)
    for (int t = 0; t < 2; ++t) linear_backward_input(dx2.data() + t * n * in, dy.data(), W.data(), n, in, out);
    for (int t = 0; t < 2; ++t)
      for (int64_t i = 0; i < n * in; ++i) ASSERT_NEAR(dx2[t * n * in + i], ref[i], 1e-4);
  }
}

// The same for dW += dy^T x, whose thin shapes get padded copies of dy and x.
TEST(Linear, BackwardWeightThinPowerOfTwoShapesMatchReference) {
  Rng rng(16);
  for (auto [n, in, out] : {std::tuple<int64_t, int64_t, int64_t>{64, 512, 256}, {96, 256, 512}, {128, 512, 100}, {70, 100, 256}, {63, 512, 256}}) {
    std::vector<float> x(n * in), dy(n * out), ref(out * in, 0.25f), dW(out * in, 0.25f);
    test::fill_normal(x.data(), n * in, rng);
    test::fill_normal(dy.data(), n * out, rng);
    gemm_ref(true, false, out, in, n, 1.0f, dy.data(), out, x.data(), in, 1.0f, ref.data(), in);
    linear_backward_weight(dW.data(), dy.data(), x.data(), n, in, out);
    for (int64_t i = 0; i < out * in; ++i) ASSERT_NEAR(dW[i], ref[i], 1e-4) << n << "x" << in << "x" << out << " at " << i;
    std::vector<float> dW2(2 * out * in, 0.25f);
#pragma omp parallel for num_threads(2)
    for (int t = 0; t < 2; ++t) linear_backward_weight(dW2.data() + t * out * in, dy.data(), x.data(), n, in, out);
    for (int t = 0; t < 2; ++t)
      for (int64_t i = 0; i < out * in; ++i) ASSERT_NEAR(dW2[t * out * in + i], ref[i], 1e-4);
  }
}

}  // namespace
}  // namespace moe::kernels
