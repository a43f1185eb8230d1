#pragma once
// Products with weights kept in a checkpoint's 16-bit dtype (bf16 or f16), read in place from the
// memory-mapped file: a published model then costs its file size in memory, and decoding, bound by
// reading the weights, reads half the bytes of f32.
#include <cstdint>

#include "core/dtype.h"

namespace moe::kernels {

// A weight matrix [rows, cols], row-major, as forward passes read it: f32, or 16-bit in place.
struct MatrixRef {
  const float* f32 = nullptr;
  const uint16_t* half = nullptr;  // set: the values are 16-bit, of type dtype
  DType dtype = DType::F32;

  MatrixRef() = default;
  MatrixRef(const float* p) : f32(p) {}  // NOLINT: f32 buffers pass wherever a MatrixRef is taken
  MatrixRef(const uint16_t* p, DType t) : half(p), dtype(t) {}
  bool is_f32() const { return half == nullptr; }
  // The f32 values; throws for a 16-bit matrix (a backward pass needs f32 weights).
  const float* need_f32(const char* what) const;
};

// y[n, out] = x[n, in] W^T (+ y when accumulate), W [out, in].
//  - f32 W: kernels::linear_forward.
//  - 16-bit W and n <= kGemvMaxRows (decode) on an AVX-512 build: a matrix-vector loop streaming
//    the weights; bf16 W on a CPU with AVX512-BF16 multiplies in bf16 pairs (x rounded to bf16,
//    sums in f32), otherwise it widens the weights and keeps x f32.
//  - bf16 W, where oneDNN has a bf16 kernel for this CPU (AVX512-BF16, AMX, or AVX-512 emulation):
//    one bf16 matmul, x rounded to bf16, products accumulated in f32.
//  - f16 W, or bf16 without such a kernel (AVX2): linear_forward_blocks.
void linear_forward(float* y, const float* x, const MatrixRef& W, int64_t n, int64_t in, int64_t out,
                    bool accumulate = false);
// The portable path: W widened to f32 a block of rows at a time (a block stays in the cache) and
// multiplied in f32, so x keeps its precision.
void linear_forward_blocks(float* y, const float* x, const MatrixRef& W, int64_t n, int64_t in, int64_t out,
                           bool accumulate = false);
// Whether linear_forward multiplies bf16 weights in bf16 on this CPU (n > kGemvMaxRows).
bool bf16_matmul_available();
// Whether products of at most kGemvMaxRows rows with 16-bit weights take the matrix-vector loop.
inline constexpr int64_t kGemvMaxRows = 8;
bool gemv_16bit_available();
// Whether that loop rounds x to bf16 for bf16 weights (AVX512-BF16 build); f16 weights never.
bool gemv_bf16_rounds_x();

// dst[count, cols] = rows [r0, r0 + count) of W, widened to f32.
void matrix_rows(float* dst, const MatrixRef& W, int64_t cols, int64_t r0, int64_t count);

}  // namespace moe::kernels
