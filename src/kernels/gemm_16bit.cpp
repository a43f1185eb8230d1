#include "kernels/gemm_16bit.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <dnnl.hpp>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>

#include "core/error.h"
#include "core/tensor.h"
#include "kernels/gemm.h"

namespace moe::kernels {

const float* MatrixRef::need_f32(const char* what) const {
  if (!is_f32())
    throw Error(std::string("[model] ") + what + " needs f32 weights; this model holds its " + dtype_name(dtype) +
                " weights in place (load it for training, or with f32 weights)");
  return f32;
}

namespace {

using dt = dnnl::memory::data_type;

const dnnl::engine& cpu_engine() {
  static const dnnl::engine eng(dnnl::engine::kind::cpu, 0);
  return eng;
}

// One matmul per (in, out, accumulate), its row count given at run time: decode steps route a
// different number of tokens to each expert every step, and creating a primitive costs more than a
// small product. oneDNN's primitives may run on several threads at once.
struct Bf16Matmul {
  bool tried = false;
  std::unique_ptr<dnnl::matmul> prim;  // null: oneDNN has only its reference kernel here
};

const Bf16Matmul& bf16_matmul(int64_t in, int64_t out, bool accumulate) {
  static std::mutex mu;
  static std::map<std::tuple<int64_t, int64_t, bool>, Bf16Matmul> cache;
  std::lock_guard<std::mutex> lock(mu);
  Bf16Matmul& m = cache[{in, out, accumulate}];
  if (m.tried) return m;
  m.tried = true;
  using md = dnnl::memory::desc;
  const md src({DNNL_RUNTIME_DIM_VAL, in}, dt::bf16, {in, 1});
  const md wei({in, out}, dt::bf16, {1, in});  // W [out, in] row-major read as its transpose [in, out]
  const md dst({DNNL_RUNTIME_DIM_VAL, out}, dt::f32, {out, 1});
  dnnl::primitive_attr attr;
  if (accumulate) {
    dnnl::post_ops po;
    po.append_sum(1.0f);
    attr.set_post_ops(po);
  }
  try {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, wei, dst), attr, cpu_engine());
    // The reference kernel is correct but slow: the block path is faster.
    if (std::string(pd.impl_info_str()).rfind("ref", 0) != 0) m.prim = std::make_unique<dnnl::matmul>(pd);
  } catch (const dnnl::error&) {  // no bf16 matmul on this CPU
  }
  return m;
}

bool bf16_kernel_for(int64_t in, int64_t out, bool accumulate) {
  return bf16_matmul(in, out, accumulate).prim != nullptr;
}

void linear_forward_bf16(float* y, const float* x, const MatrixRef& W, int64_t n, int64_t in, int64_t out,
                         bool accumulate) {
  const Bf16Matmul& m = bf16_matmul(in, out, accumulate);
  static thread_local avector<uint16_t> xb_buf;
  avector<uint16_t>& xb = xb_buf;
  if (int64_t(xb.size()) < n * in) xb.resize(size_t(n * in));
  for (int64_t i = 0; i < n * in; ++i) xb[size_t(i)] = f32_to_bf16(x[i]);
  static thread_local dnnl::stream stream(cpu_engine());
  using md = dnnl::memory::desc;
  dnnl::memory src(md({n, in}, dt::bf16, {in, 1}), cpu_engine(), xb.data());
  dnnl::memory wei(md({in, out}, dt::bf16, {1, in}), cpu_engine(), const_cast<uint16_t*>(W.half));
  dnnl::memory dst(md({n, out}, dt::f32, {out, 1}), cpu_engine(), y);
  m.prim->execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}});
  stream.wait();
}

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
constexpr bool kHaveGemv = true;

// GCC 12's AVX-512 headers start some intrinsics from an "undefined" vector and then warn about it.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// 16 16-bit values widened to f32, exactly: a bf16 is the top half of an f32; an f16 converts with
// AVX-512's vcvtph2ps.
template <DType T>
inline __m512 load_16bit(const uint16_t* p, __mmask16 m) {
  const __m256i h = _mm256_maskz_loadu_epi16(m, p);
  if constexpr (T == DType::BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  else return _mm512_cvtph_ps(h);
}

// Two ways to multiply a row of 16-bit W by rows of x:
//  - Widened<T>: x in f32, W widened to f32 16 values at a time, f32 FMAs (f16 weights, and bf16 on
//    CPUs without AVX512-BF16): rounds nothing but the weights;
//  - Bf16Pairs: bf16 W and x rounded to bf16 once per product, vdpbf16ps (AVX512-BF16): each
//    instruction multiplies 32 pairs and adds them into 16 f32 sums, half the instructions of the
//    widening loop and no widening. At 8 rows of x the widening loop is bound by its f32 FMAs
//    (8 rows x 2 flops per weight) before it is bound by reading the weights.
// Each sums a row of x against a row of W in steps of kStep values over two accumulators (the first
// and second half of each step), a masked tail of half steps into the first, then one reduction.
// Both loop nests of gemv_rows keep this order, so a sequence decodes to the same bits alone and in
// a batch whichever nest its batch takes.
//
// span: acc[i] += a stretch of one row of W (len values at w; len a multiple of kStep unless the
// stretch ends the row) against N rows of x (row stride ldx), read front to back once. pf: where to
// prefetch, one cache line per 32 values. Always inlined: called through a reference, GCC would
// otherwise keep acc in memory. The i-loops are unrolled before GCC decides where acc lives, so the
// accumulators stay in registers (left as loops, GCC 12 also stored all 2N of them to the stack on
// every step, which bound the loop at 3+ rows by the stores: 7 GB/s at 8 rows against 33 at one).
template <DType T>
struct Widened {
  using X = float;
  static constexpr int64_t kStep = 32;
  static const float* prepare(const float* x, int64_t) { return x; }
  template <int N>
  __attribute__((always_inline)) static void span(__m512 (&acc)[N][2], const float* x, int64_t ldx,
                                                  const uint16_t* w, int64_t len, const uint16_t* pf) {
    int64_t k = 0;
    for (; k + 32 <= len; k += 32) {
      _mm_prefetch(reinterpret_cast<const char*>(pf + k), _MM_HINT_T0);  // a prefetch never faults
      const __m512 w0 = load_16bit<T>(w + k, 0xffff), w1 = load_16bit<T>(w + k + 16, 0xffff);
#pragma GCC unroll 8
      for (int i = 0; i < N; ++i) {
        acc[i][0] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i * ldx + k), w0, acc[i][0]);
        acc[i][1] = _mm512_fmadd_ps(_mm512_loadu_ps(x + i * ldx + k + 16), w1, acc[i][1]);
      }
    }
    for (; k < len; k += 16) {
      const __mmask16 m = len - k >= 16 ? __mmask16(0xffff) : __mmask16((1u << (len - k)) - 1);
      const __m512 wv = load_16bit<T>(w + k, m);
#pragma GCC unroll 8
      for (int i = 0; i < N; ++i)
        acc[i][0] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, x + i * ldx + k), wv, acc[i][0]);
    }
  }
};

#if defined(__AVX512BF16__)
constexpr bool kBf16Pairs = true;
struct Bf16Pairs {
  using X = uint16_t;
  static constexpr int64_t kStep = 64;
  // x [count] rounded to bf16 (nearest even) into a per-thread buffer the product then reads.
  // Every value by the same instruction, the last ones masked: a scalar tail would round subnormals
  // differently, and which values fall in the tail depends on how many rows share the product.
  static const uint16_t* prepare(const float* x, int64_t count) {
    static thread_local avector<uint16_t> buf;
    if (int64_t(buf.size()) < count) buf.resize(size_t(count));
    for (int64_t i = 0; i < count; i += 16) {
      const __mmask16 m = count - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (count - i)) - 1);
      const __m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + i));
      _mm256_mask_storeu_epi16(buf.data() + i, m, reinterpret_cast<__m256i>(h));
    }
    return buf.data();
  }
  static __m512bh load(const uint16_t* p, __mmask32 m) {
    return reinterpret_cast<__m512bh>(_mm512_maskz_loadu_epi16(m, p));
  }
  template <int N>
  __attribute__((always_inline)) static void span(__m512 (&acc)[N][2], const uint16_t* x, int64_t ldx,
                                                  const uint16_t* w, int64_t len, const uint16_t* pf) {
    int64_t k = 0;
    for (; k + 64 <= len; k += 64) {
      _mm_prefetch(reinterpret_cast<const char*>(pf + k), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(pf + k + 32), _MM_HINT_T0);
      const __m512bh w0 = load(w + k, ~0u), w1 = load(w + k + 32, ~0u);
#pragma GCC unroll 8
      for (int i = 0; i < N; ++i) {
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], load(x + i * ldx + k, ~0u), w0);
        acc[i][1] = _mm512_dpbf16_ps(acc[i][1], load(x + i * ldx + k + 32, ~0u), w1);
      }
    }
    for (; k < len; k += 32) {
      const __mmask32 m = len - k >= 32 ? ~0u : (1u << (len - k)) - 1;
      const __m512bh wv = load(w + k, m);
#pragma GCC unroll 8
      for (int i = 0; i < N; ++i) acc[i][0] = _mm512_dpbf16_ps(acc[i][0], load(x + i * ldx + k, m), wv);
    }
  }
};
#else
constexpr bool kBf16Pairs = false;
using Bf16Pairs = Widened<DType::BF16>;
#endif

template <int N>
__attribute__((always_inline)) inline void zero(__m512 (&acc)[N][2]) {
#pragma GCC unroll 8
  for (int i = 0; i < N; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
}

// y[i, j] (+)= the row's sum, for the N rows of x.
template <int N>
__attribute__((always_inline)) inline void finish(float* y, int64_t out, int64_t j, bool accumulate,
                                                  const __m512 (&acc)[N][2]) {
#pragma GCC unroll 8
  for (int i = 0; i < N; ++i) {
    const float d = _mm512_reduce_add_ps(_mm512_add_ps(acc[i][0], acc[i][1]));
    y[i * out + j] = accumulate ? y[i * out + j] + d : d;
  }
}

// Rows [j0, j1) of y[n, out] (+)= x W^T for N rows of x, by one of two loop nests:
//  - x small enough to stay in L1 beside the weights (one row, or few values): each row of W read
//    whole, in order, one sequential stream per thread (on Zen 4 one stream reads 19-20 GB/s per
//    core where four rows read side by side got 10.5), prefetched 1 KiB ahead;
//  - else a tile of kTile rows of W a block of kBlock values at a time, the accumulators kept in
//    memory between blocks: the block of x (N x kBlock values, 16 KiB at 8 rows of f32) stays in L1
//    while the tile's rows pass, where otherwise all of x came from L2 for every row of W (which
//    bound 8 rows at 9 GB/s on a 6144 x 2048 matrix). Each row's block two rows on is prefetched,
//    as the stride between a tile's rows defeats the hardware's stream.
template <class Dot, int N>
void gemv_rows(float* y, const typename Dot::X* x, const uint16_t* W, int64_t in, int64_t out, bool accumulate,
               int64_t j0, int64_t j1) {
  constexpr int64_t kTile = 8, kL1Bytes = 16 << 10;
  constexpr int64_t kBlock = kL1Bytes / (kGemvMaxRows * int64_t(sizeof(typename Dot::X)));  // 512 f32, 1024 bf16
  static_assert(kBlock % Dot::kStep == 0);
  if (N == 1 || int64_t(sizeof(typename Dot::X)) * N * in <= kL1Bytes) {
    for (int64_t j = j0; j < j1; ++j) {
      const uint16_t* w = W + j * in;
      __m512 acc[N][2];
      zero(acc);
      Dot::span(acc, x, in, w, in, w + kBlock);
      finish<N>(y, out, j, accumulate, acc);
    }
    return;
  }
  alignas(64) __m512 state[kTile][N][2];
  for (int64_t t0 = j0; t0 < j1; t0 += kTile) {
    const int64_t rows = std::min(kTile, j1 - t0);
    for (int64_t k = 0; k < in; k += kBlock) {
      const int64_t len = std::min(kBlock, in - k);
      for (int64_t r = 0; r < rows; ++r) {
        const uint16_t* w = W + (t0 + r) * in + k;
        __m512 acc[N][2];
        if (k == 0) zero(acc);
        else std::memcpy(acc, state[r], sizeof acc);
        Dot::span(acc, x + k, in, w, len, w + 2 * in);
        if (k + len < in) std::memcpy(state[r], acc, sizeof acc);
        else finish<N>(y, out, t0 + r, accumulate, acc);
      }
    }
  }
}

// y[n, out] (+)= x W^T for a few rows of x. Hand-written because decode is a few hundred products
// of 1-8 rows per token, bound by reading the weights, and there oneDNN 2.6's bf16 matmul read them
// at 65-68% of the DRAM bandwidth (Intel Xeon, docs/performance.md), and at 2-8 rows on a Zen 4 at
// 8.7-13 GB/s where this loop reads 11-27 (kernels_bench BM_GemvBf16). Each thread takes a
// contiguous share of W's rows; more rows take the block path.
template <class Dot>
void gemv_16bit(float* y, const float* x32, const uint16_t* W, int64_t n, int64_t in, int64_t out, bool accumulate) {
  static_assert(kGemvMaxRows == 8);
  MOE_ASSERT(n >= 1 && n <= kGemvMaxRows);
  const typename Dot::X* x = Dot::prepare(x32, n * in);  // the caller's buffer, read by every thread
  auto run = [&](int64_t j0, int64_t j1) {
    switch (n) {
      case 1: return gemv_rows<Dot, 1>(y, x, W, in, out, accumulate, j0, j1);
      case 2: return gemv_rows<Dot, 2>(y, x, W, in, out, accumulate, j0, j1);
      case 3: return gemv_rows<Dot, 3>(y, x, W, in, out, accumulate, j0, j1);
      case 4: return gemv_rows<Dot, 4>(y, x, W, in, out, accumulate, j0, j1);
      case 5: return gemv_rows<Dot, 5>(y, x, W, in, out, accumulate, j0, j1);
      case 6: return gemv_rows<Dot, 6>(y, x, W, in, out, accumulate, j0, j1);
      case 7: return gemv_rows<Dot, 7>(y, x, W, in, out, accumulate, j0, j1);
      default: return gemv_rows<Dot, 8>(y, x, W, in, out, accumulate, j0, j1);
    }
  };
  if (omp_in_parallel() || out * in < (int64_t(1) << 17) || omp_get_max_threads() == 1) return run(0, out);
#pragma omp parallel
  {
    const int64_t threads = omp_get_num_threads(), t = omp_get_thread_num();
    run(out * t / threads, out * (t + 1) / threads);
  }
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

void gemv(float* y, const float* x, const MatrixRef& W, int64_t n, int64_t in, int64_t out, bool accumulate) {
  if (W.dtype == DType::BF16) gemv_16bit<Bf16Pairs>(y, x, W.half, n, in, out, accumulate);
  else gemv_16bit<Widened<DType::F16>>(y, x, W.half, n, in, out, accumulate);
}
#else
constexpr bool kHaveGemv = false;
constexpr bool kBf16Pairs = false;
void gemv(float*, const float*, const MatrixRef&, int64_t, int64_t, int64_t, bool) {}
#endif

void widen(float* dst, const uint16_t* src, int64_t count, DType t) {
  if (t == DType::BF16)
    for (int64_t i = 0; i < count; ++i) dst[i] = bf16_to_f32(src[i]);
  else
    for (int64_t i = 0; i < count; ++i) dst[i] = f16_to_f32(src[i]);
}

}  // namespace

bool gemv_16bit_available() { return kHaveGemv; }
bool gemv_bf16_rounds_x() { return kHaveGemv && kBf16Pairs; }

bool bf16_matmul_available() {
  static const bool ok = bf16_kernel_for(256, 256, false);
  return ok;
}

void linear_forward_blocks(float* y, const float* x, const MatrixRef& W, int64_t n, int64_t in, int64_t out,
                           bool accumulate) {
  if (W.is_f32()) return linear_forward(y, x, W.f32, n, in, out, accumulate);
  if (n == 0 || out == 0) return;
  // Blocks of about 128 KiB of f32: converted, then used while still in L2.
  const int64_t rows = std::clamp<int64_t>((int64_t(1) << 15) / std::max<int64_t>(in, 1), 8, 1024);
  const int64_t blocks = (out + rows - 1) / rows;
  const float beta = accumulate ? 1.0f : 0.0f;
#pragma omp parallel for schedule(static) if (!omp_in_parallel() && blocks > 1)
  for (int64_t b = 0; b < blocks; ++b) {
    static thread_local avector<float> buf;
    const int64_t r0 = b * rows, m = std::min(rows, out - r0);
    if (int64_t(buf.size()) < m * in) buf.resize(size_t(m * in));
    widen(buf.data(), W.half + r0 * in, m * in, W.dtype);
    gemm(false, true, n, m, in, 1.0f, x, in, buf.data(), in, beta, y + r0, out);
  }
}

void linear_forward(float* y, const float* x, const MatrixRef& W, int64_t n, int64_t in, int64_t out,
                    bool accumulate) {
  if (W.is_f32()) return linear_forward(y, x, W.f32, n, in, out, accumulate);
  if (n == 0 || out == 0) return;
  if (in == 0) {
    if (!accumulate) std::memset(y, 0, sizeof(float) * size_t(n * out));
    return;
  }
  if (kHaveGemv && n <= kGemvMaxRows) return gemv(y, x, W, n, in, out, accumulate);
  if (W.dtype == DType::BF16 && bf16_kernel_for(in, out, accumulate)) return linear_forward_bf16(y, x, W, n, in, out, accumulate);
  linear_forward_blocks(y, x, W, n, in, out, accumulate);
}

void matrix_rows(float* dst, const MatrixRef& W, int64_t cols, int64_t r0, int64_t count) {
  if (W.is_f32()) {
    std::memcpy(dst, W.f32 + r0 * cols, sizeof(float) * size_t(count * cols));
    return;
  }
  widen(dst, W.half + r0 * cols, count * cols, W.dtype);
}

}  // namespace moe::kernels
