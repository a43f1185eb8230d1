// Layout-exact sums (core/exact_sums.h): in that mode a row of a product does not depend on how many
// rows its GEMM had, and a weight gradient summed over a whole batch in G blocks rounds to the same
// floats as the gradients of the batch's parts (as ranks hold them) summed afterwards.
#include "core/exact_sums.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "../test_util.h"
#include "kernels/gemm.h"
#include "kernels/rmsnorm.h"

namespace moe {
namespace {

// Turns the mode on for one test, and off again whatever happens.
struct ExactMode {
  ExactMode(int blocks, int world) { exact::configure(blocks, world); }
  ~ExactMode() {
    exact::configure(0, 1);
    exact::clear_accumulators();
  }
};

bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, sizeof(float) * n) == 0; }

TEST(ExactSums, ARowOfAProductDoesNotDependOnTheRowsAroundIt) {
  ExactMode on(4, 1);
  Rng rng(3);
  const int64_t M = 203, K = 96, N = 72;  // a partial last chunk, and parts of 1 to 100 rows
  std::vector<float> x(M * K), w(N * K), dy(M * N);
  test::fill_normal(x.data(), M * K, rng);
  test::fill_normal(w.data(), N * K, rng);
  test::fill_normal(dy.data(), M * N, rng);
  std::vector<float> y(M * N), y_parts(M * N), dx(M * K), dx_parts(M * K);
  kernels::linear_forward(y.data(), x.data(), w.data(), M, K, N);
  kernels::linear_backward_input(dx.data(), dy.data(), w.data(), M, K, N);
  for (int64_t r0 = 0, len = 1; r0 < M; r0 += len, len = std::min<int64_t>(len * 3, 100)) {
    const int64_t m = std::min(len, M - r0);
    kernels::linear_forward(y_parts.data() + r0 * N, x.data() + r0 * K, w.data(), m, K, N);
    kernels::linear_backward_input(dx_parts.data() + r0 * K, dy.data() + r0 * N, w.data(), m, K, N);
  }
  EXPECT_TRUE(same_bits(y.data(), y_parts.data(), M * N));
  EXPECT_TRUE(same_bits(dx.data(), dx_parts.data(), M * K));
  // And the chunked product is still the product.
  std::vector<float> ref(M * N);
  kernels::gemm_ref(false, true, M, N, K, 1.0f, x.data(), K, w.data(), K, 0.0f, ref.data(), N);
  for (int64_t i = 0; i < M * N; ++i) ASSERT_NEAR(y[i], ref[i], 1e-4 * (1 + std::abs(ref[i])));
}

// dW = dy^T x over 4 blocks of 48 rows: one process holding all 4 blocks, and two "ranks" holding 2
// each whose accumulators are then added, round to the same floats; both match the reference.
TEST(ExactSums, AWeightGradientInBlocksMatchesItsPartsSummedAfterwards) {
  const int64_t n = 192, in = 40, out = 24;
  Rng rng(5);
  std::vector<float> x(n * in), dy(n * out);
  test::fill_normal(x.data(), n * in, rng);
  test::fill_normal(dy.data(), n * out, rng);
  std::vector<float> g(out * in), g_half(out * in);
  std::vector<double> whole(out * in, 0.0), half0(out * in, 0.0), half1(out * in, 0.0);
  {
    ExactMode on(4, 1);
    exact::register_accumulator(g.data(), whole.data());
    kernels::linear_backward_weight(g.data(), dy.data(), x.data(), n, in, out);
  }
  {
    ExactMode on(4, 2);  // two blocks per rank
    exact::register_accumulator(g_half.data(), half0.data());
    kernels::linear_backward_weight(g_half.data(), dy.data(), x.data(), n / 2, in, out);
    exact::register_accumulator(g_half.data(), half1.data());
    kernels::linear_backward_weight(g_half.data(), dy.data() + (n / 2) * out, x.data() + (n / 2) * in, n / 2, in, out);
  }
  std::vector<float> ref(out * in);
  kernels::gemm_ref(true, false, out, in, n, 1.0f, dy.data(), out, x.data(), in, 0.0f, ref.data(), in);
  for (int64_t i = 0; i < out * in; ++i) {
    const float a = float(whole[i]), b = float(half0[i] + half1[i]);
    ASSERT_EQ(a, b) << i;
    ASSERT_NEAR(a, ref[i], 1e-4 * (1 + std::abs(ref[i])));
    ASSERT_EQ(g[i], 0.0f);  // the float gradient is left alone until the step rounds it
  }
}

// An explicit scope (an expert's rows per block, which need not be equal) replaces equal blocks.
TEST(ExactSums, ExplicitRowBlocksAreUsed) {
  ExactMode on(2, 1);
  EXPECT_EQ(exact::row_blocks(10), (std::vector<int64_t>{5, 5}));
  const int64_t counts[3] = {0, 7, 3};
  {
    exact::RowBlocks scope(counts, 3);
    EXPECT_EQ(exact::row_blocks(10), (std::vector<int64_t>{0, 7, 3}));
  }
  EXPECT_EQ(exact::row_blocks(10), (std::vector<int64_t>{5, 5}));
}

// RMSNorm's weight gradient: rows summed in double, so halves add up to the whole.
TEST(ExactSums, NormWeightGradientOfHalvesAddsUpToTheWhole) {
  const int64_t rows = 64, dim = 48;
  Rng rng(9);
  std::vector<float> x(rows * dim), dy(rows * dim), w(dim), y(rows * dim), rstd(rows), dx(rows * dim);
  test::fill_normal(x.data(), rows * dim, rng);
  test::fill_normal(dy.data(), rows * dim, rng);
  test::fill_normal(w.data(), dim, rng);
  kernels::rmsnorm_forward(y.data(), rstd.data(), x.data(), w.data(), rows, dim, 1e-5f);
  std::vector<float> dw(dim, 0.0f);
  std::vector<double> whole(dim, 0.0), halves(dim, 0.0);
  ExactMode on(2, 1);
  exact::register_accumulator(dw.data(), whole.data());
  kernels::rmsnorm_backward(dx.data(), dw.data(), dy.data(), x.data(), w.data(), rstd.data(), rows, dim);
  exact::register_accumulator(dw.data(), halves.data());
  for (int64_t r0 : {int64_t(0), rows / 2})
    kernels::rmsnorm_backward(dx.data(), dw.data(), dy.data() + r0 * dim, x.data() + r0 * dim, w.data(),
                              rstd.data() + r0, rows / 2, dim);
  for (int64_t i = 0; i < dim; ++i) {
    double ref = 0;
    for (int64_t r = 0; r < rows; ++r) ref += double(dy[r * dim + i]) * x[r * dim + i] * rstd[r];
    ASSERT_EQ(float(whole[i]), float(halves[i])) << i;
    ASSERT_NEAR(whole[i], ref, 1e-5 * (1 + std::abs(ref)));
    ASSERT_EQ(dw[i], 0.0f);
  }
}

}  // namespace
}  // namespace moe
