// Products with 16-bit weights against the naive double-accumulating reference: the bf16 matmul (x
// rounded to bf16, as it computes), the portable block path (x kept f32), bf16 and f16, odd sizes,
// accumulate, and row reads.
#include "kernels/gemm_16bit.h"

#include <gtest/gtest.h>

#include <cmath>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "kernels/gemm.h"
#include "../test_util.h"

namespace moe::kernels {
namespace {

struct Case {
  std::vector<float> x, y0;       // [n, in], [n, out] (the accumulate start)
  std::vector<uint16_t> w16;      // [out, in]
  std::vector<float> w;           // w16 widened
};

Case make_case(int64_t n, int64_t in, int64_t out, DType t, uint64_t seed) {
  Rng rng(seed);
  Case c;
  for (int64_t i = 0; i < n * in; ++i) c.x.push_back(float(rng.normal()));
  for (int64_t i = 0; i < n * out; ++i) c.y0.push_back(float(rng.normal()));
  for (int64_t i = 0; i < out * in; ++i) {
    const float v = float(rng.normal() * 0.1);
    c.w16.push_back(t == DType::BF16 ? f32_to_bf16(v) : f32_to_f16(v));
    c.w.push_back(t == DType::BF16 ? bf16_to_f32(c.w16.back()) : f16_to_f32(c.w16.back()));
  }
  return c;
}

// y = x W^T (+ y0) in double from the given x, and the bound (in + 2) u sum |x w| (+ |y0|).
void reference(const Case& c, const std::vector<float>& x, int64_t n, int64_t in, int64_t out, bool acc,
               std::vector<double>& y, std::vector<double>& bound) {
  y.assign(size_t(n * out), 0), bound.assign(size_t(n * out), 0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < out; ++j) {
      double s = acc ? c.y0[i * out + j] : 0, a = acc ? std::abs(c.y0[i * out + j]) : 0;
      for (int64_t k = 0; k < in; ++k) s += double(x[i * in + k]) * c.w[j * in + k], a += std::abs(double(x[i * in + k]) * c.w[j * in + k]);
      y[i * out + j] = s;
      bound[i * out + j] = (double(in) + 2) * 0x1.0p-24 * a + 1e-30;
    }
}

const std::vector<std::tuple<int64_t, int64_t, int64_t>> kSizes = {
    {1, 1, 1}, {1, 64, 48}, {3, 17, 5}, {7, 300, 129}, {33, 65, 70}, {2, 4100, 9}, {1, 40, 2050}};

TEST(Gemm16, BlockPathMatchesReferenceForBf16AndF16) {
  for (DType t : {DType::BF16, DType::F16})
    for (bool acc : {false, true})
      for (auto [n, in, out] : kSizes) {
        const Case c = make_case(n, in, out, t, uint64_t(n * 131 + in * 7 + out));
        std::vector<double> ref, bound;
        reference(c, c.x, n, in, out, acc, ref, bound);
        std::vector<float> y = acc ? c.y0 : std::vector<float>(size_t(n * out), 99.0f);
        linear_forward_blocks(y.data(), c.x.data(), MatrixRef(c.w16.data(), t), n, in, out, acc);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_NEAR(y[i], ref[i], bound[i]) << dtype_name(t) << " n=" << n << " in=" << in << " out=" << out << " acc=" << acc << " at " << i;
      }
}

// linear_forward as dispatched: up to kGemvMaxRows rows by the matrix-vector loop on an AVX-512
// build (x rounded to bf16 for bf16 weights where the CPU has AVX512-BF16, else f32); more rows by oneDNN's bf16 matmul (x rounded to bf16) for bf16 where it has a
// kernel, else (and for f16) by the block path (x in f32). Each against the reference on what it
// computes.
TEST(Gemm16, DispatchedProductsMatchReferenceOnWhatTheyCompute) {
  std::vector<std::tuple<int64_t, int64_t, int64_t>> sizes = kSizes;
  // {8, 2100, 67} and {3, 1500, 90}: x too large for L1, so the matrix-vector loop takes a tile of
  // rows a block at a time (several tiles, blocks and a ragged last block), on several threads.
  sizes.insert(sizes.end(), {{4, 17, 5}, {2, 1000, 300}, {4, 31, 4}, {5, 64, 9}, {8, 2100, 67}, {3, 1500, 90}});
  for (DType t : {DType::BF16, DType::F16})
    for (bool acc : {false, true})
      for (auto [n, in, out] : sizes) {
        const bool gemv = gemv_16bit_available() && n <= kGemvMaxRows;
        const bool rounds_x = t == DType::BF16 && (gemv ? gemv_bf16_rounds_x() : bf16_matmul_available());
        const Case c = make_case(n, in, out, t, uint64_t(n * 17 + in * 3 + out));
        std::vector<float> xr(c.x.size());
        for (size_t i = 0; i < xr.size(); ++i) xr[i] = rounds_x ? bf16_to_f32(f32_to_bf16(c.x[i])) : c.x[i];
        std::vector<double> ref, bound;
        reference(c, xr, n, in, out, acc, ref, bound);
        std::vector<float> y = acc ? c.y0 : std::vector<float>(size_t(n * out), 99.0f);
        linear_forward(y.data(), c.x.data(), MatrixRef(c.w16.data(), t), n, in, out, acc);
        for (size_t i = 0; i < y.size(); ++i)
          ASSERT_NEAR(y[i], ref[i], bound[i]) << dtype_name(t) << " n=" << n << " in=" << in << " out=" << out
                                              << " acc=" << acc << " gemv=" << gemv << " at " << i;
      }
}

// The matrix-vector loop sums each row of x in one order whatever rows come with it: a sequence
// decodes to the same bits alone and in a batch of 2 to kGemvMaxRows, whichever loop nest the
// batch takes (2100 x 67 takes the tiled nest from 2 rows with f16 weights, from 4 with bf16 ones
// multiplied in bf16 pairs; 77 x 5 keeps rows whole).
TEST(Gemm16, MatrixVectorRowsAreTheSameAloneAndTogether) {
  if (!gemv_16bit_available()) GTEST_SKIP() << "no AVX-512 matrix-vector loop in this build";
  for (DType t : {DType::BF16, DType::F16})
    for (auto [in, out] : {std::pair<int64_t, int64_t>{1000, 300}, {77, 5}, {2100, 67}}) {
      const Case c = make_case(kGemvMaxRows, in, out, t, uint64_t(in + out));
      std::vector<float> alone(size_t(kGemvMaxRows * out));
      for (int64_t i = 0; i < kGemvMaxRows; ++i)
        linear_forward(alone.data() + i * out, c.x.data() + i * in, MatrixRef(c.w16.data(), t), 1, in, out);
      for (int64_t n = 2; n <= kGemvMaxRows; ++n) {
        std::vector<float> together(size_t(n * out));
        linear_forward(together.data(), c.x.data(), MatrixRef(c.w16.data(), t), n, in, out);
        for (int64_t i = 0; i < n * out; ++i)
          ASSERT_EQ(alone[size_t(i)], together[size_t(i)])
              << dtype_name(t) << " in=" << in << " n=" << n << " row " << i / out << " col " << i % out;
      }
    }
}

TEST(Gemm16, F32MatrixRefIsTheF32Product) {
  const Case c = make_case(5, 33, 7, DType::BF16, 3);
  std::vector<float> a(35), b(35);
  linear_forward(a.data(), c.x.data(), c.w.data(), 5, 33, 7);
  linear_forward(b.data(), c.x.data(), MatrixRef(c.w.data()), 5, 33, 7);
  EXPECT_EQ(a, b);
}

TEST(Gemm16, EmptyInnerDimensionGivesZerosOrKeepsY) {
  std::vector<uint16_t> w(1);
  std::vector<float> x(1), y = {5.0f, 6.0f};
  linear_forward(y.data(), x.data(), MatrixRef(w.data(), DType::BF16), 1, 0, 2, /*accumulate=*/true);
  EXPECT_EQ(y, (std::vector<float>{5.0f, 6.0f}));
  linear_forward(y.data(), x.data(), MatrixRef(w.data(), DType::BF16), 1, 0, 2);
  EXPECT_EQ(y, (std::vector<float>{0.0f, 0.0f}));
}

TEST(Gemm16, MatrixRowsWidenExactly) {
  const Case c = make_case(1, 6, 5, DType::F16, 9);
  std::vector<float> rows(12);
  matrix_rows(rows.data(), MatrixRef(c.w16.data(), DType::F16), 6, 2, 2);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(rows[i], c.w[12 + i]);
  matrix_rows(rows.data(), MatrixRef(c.w.data()), 6, 3, 2);
  for (int i = 0; i < 12; ++i) EXPECT_EQ(rows[i], c.w[18 + i]);
}

TEST(Gemm16, BackwardNeedsF32Weights) {
  std::vector<uint16_t> w(4);
  const std::string msg = test::error_of([&] { MatrixRef(w.data(), DType::BF16).need_f32("backward"); });
  EXPECT_NE(msg.find("BF16"), std::string::npos) << msg;
  EXPECT_NE(msg.find("backward"), std::string::npos) << msg;
  float f = 1;
  EXPECT_EQ(MatrixRef(&f).need_f32("backward"), &f);
}

}  // namespace
}  // namespace moe::kernels
