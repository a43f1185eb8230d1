// Micro-benchmarks (Google Benchmark) of the kernels the MoE and PEER layers spend their time in,
// at the shapes they run: expert GEMMs, decode's bf16 matrix-vector products, SwiGLU, top-k routing,
// dispatch, product-key retrieval.
// Whole-layer figures and their ratios come from `moe bench`; these isolate one kernel each.
//   build/bench/kernels_bench --benchmark_filter=Gemm
#include <benchmark/benchmark.h>

#include "core/rng.h"
#include "core/tensor.h"
#include "kernels/activations.h"
#include "kernels/gemm.h"
#include "kernels/gemm_16bit.h"
#include "kernels/product_keys.h"
#include "kernels/softmax.h"
#include "kernels/topk.h"
#include "moe/dispatch.h"

namespace moe {
namespace {

Tensor noise(Shape s, uint64_t seed) {
  Tensor t(std::move(s));
  Rng rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t[i] = float(rng.normal());
  return t;
}

// One expert's forward projection: [rows, d] x [d, F]^T, as linear_forward runs it.
void BM_ExpertGemm(benchmark::State& st) {
  const int64_t M = st.range(0), D = st.range(1), F = st.range(2);
  Tensor x = noise({M, D}, 1), w = noise({F, D}, 2), y({M, F});
  for (auto _ : st) kernels::linear_forward(y.data(), x.data(), w.data(), M, D, F);
  st.counters["GFLOP/s"] = benchmark::Counter(2e-9 * M * D * F, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ExpertGemm)->Args({1024, 512, 1024})->Args({512, 512, 256})->Args({128, 1024, 2048})->Args({4096, 512, 6144});

// The weight gradient dW += dY^T X of the same expert (a transposed-A GEMM over the rows), as
// linear_backward_weight runs it (direct = 0: on AVX2, thin shapes with power-of-two strides go
// through padded copies of dY and X) and as one direct oneDNN call (direct = 1).
void BM_ExpertGemmWeightGrad(benchmark::State& st) {
  const int64_t M = st.range(0), D = st.range(1), F = st.range(2);
  const bool direct = st.range(3) != 0;
  Tensor x = noise({M, D}, 1), dy = noise({M, F}, 2), dw({F, D});
  for (auto _ : st) {
    if (direct) kernels::gemm(true, false, F, D, M, 1.0f, dy.data(), F, x.data(), D, 1.0f, dw.data(), D);
    else kernels::linear_backward_weight(dw.data(), dy.data(), x.data(), M, D, F);
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2e-9 * M * D * F, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ExpertGemmWeightGrad)->ArgNames({"rows", "d", "f", "direct"})
    ->Args({1024, 512, 1024, 0})->Args({512, 512, 256, 0})->Args({512, 512, 256, 1})
    ->Args({128, 1024, 2048, 0})->Args({128, 2048, 1024, 0});

// The input gradient dX = dY W, as linear_backward_input runs it (direct = 0: on AVX2, thin shapes
// with a power-of-two row stride go through a padded copy of W) and as one direct oneDNN call.
void BM_ExpertGemmInputGrad(benchmark::State& st) {
  const int64_t M = st.range(0), D = st.range(1), F = st.range(2);
  const bool direct = st.range(3) != 0;
  Tensor dy = noise({M, F}, 1), w = noise({F, D}, 2), dx({M, D});
  for (auto _ : st) {
    if (direct) kernels::gemm(false, false, M, D, F, 1.0f, dy.data(), F, w.data(), D, 0.0f, dx.data(), D);
    else kernels::linear_backward_input(dx.data(), dy.data(), w.data(), M, D, F);
  }
  st.counters["GFLOP/s"] = benchmark::Counter(2e-9 * M * D * F, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_ExpertGemmInputGrad)->ArgNames({"rows", "d", "f", "direct"})
    ->Args({128, 1024, 2048, 0})->Args({128, 1024, 2048, 1})->Args({128, 2048, 1024, 0})->Args({128, 2048, 1024, 1})
    ->Args({512, 512, 256, 0})->Args({512, 512, 256, 1})->Args({1024, 512, 1024, 0});

void BM_SwiGLUForward(benchmark::State& st) {
  const int64_t n = st.range(0);
  Tensor g = noise({n}, 1), u = noise({n}, 2), h({n});
  for (auto _ : st) kernels::swiglu_forward(h.data(), g.data(), u.data(), n);
  st.SetBytesProcessed(int64_t(st.iterations()) * n * 3 * 4);
}
BENCHMARK(BM_SwiGLUForward)->Arg(1 << 20)->Arg(1 << 23);

void BM_SwiGLUBackwardInPlace(benchmark::State& st) {
  const int64_t n = st.range(0);
  Tensor g = noise({n}, 1), u = noise({n}, 2), dh = noise({n}, 3);
  for (auto _ : st) kernels::swiglu_backward(g.data(), u.data(), g.data(), u.data(), dh.data(), n);
  st.SetBytesProcessed(int64_t(st.iterations()) * n * 5 * 4);
}
BENCHMARK(BM_SwiGLUBackwardInPlace)->Arg(1 << 20)->Arg(1 << 23);

// Router: softmax over E logits and top-k per token.
void BM_RouterSoftmaxTopK(benchmark::State& st) {
  const int64_t T = st.range(0), E = st.range(1);
  const int k = int(st.range(2));
  Tensor logits = noise({T, E}, 1), p({T, E}), val({T, k});
  std::vector<int32_t> idx(T * k);
  for (auto _ : st) {
    kernels::softmax_forward(p.data(), logits.data(), T, E);
    kernels::topk_rows(idx.data(), val.data(), p.data(), T, E, k);
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * T);
}
BENCHMARK(BM_RouterSoftmaxTopK)->Args({4096, 8, 2})->Args({4096, 64, 8});

// Dispatch: counting sort of the T*k slots, gather into expert order, weighted combine back.
void BM_DispatchGatherCombine(benchmark::State& st) {
  const int64_t T = st.range(0), D = st.range(1);
  const int E = int(st.range(2)), k = int(st.range(3));
  RoutingPlan plan;
  plan.n_tok = T, plan.k = k, plan.n_expert = E;
  plan.expert.resize(T * k);
  plan.weight.assign(T * k, 1.0f / float(k));
  Rng rng(4);
  for (int64_t t = 0; t < T; ++t)
    for (int j = 0; j < k; ++j) plan.expert[t * k + j] = int32_t((rng.below(uint64_t(E / k)) * k + j) % E);
  Tensor x = noise({T, D}, 5), xs({T * k, D}), y({T, D});
  Dispatch d;
  for (auto _ : st) {
    d.build(plan);
    d.gather(xs.data(), x.data(), D);
    d.combine(y.data(), xs.data(), plan, D);
  }
  st.SetItemsProcessed(int64_t(st.iterations()) * T);
}
BENCHMARK(BM_DispatchGatherCombine)->Args({4096, 512, 8, 2})->Args({4096, 512, 64, 8});

// PEER retrieval of one head for 256 queries: two sub-key GEMMs and the product-key top-k.
void BM_ProductKeySearch(benchmark::State& st) {
  const int64_t ns = st.range(0), nb = 256;
  const int half = 64, k = 16;
  Tensor q = noise({nb, 2 * half}, 1), k1 = noise({ns, half}, 2), k2 = noise({ns, half}, 3), sub({2, nb, ns}), sc({nb, k});
  std::vector<int32_t> ids(nb * k);
  kernels::ProductKeyScratch scratch;
  for (auto _ : st)
    kernels::product_key_search(ids.data(), sc.data(), k, q.data(), 2 * half, k1.data(), k2.data(), nb, ns, half, k,
                                sub.data(), scratch);
  st.SetItemsProcessed(int64_t(st.iterations()) * nb);
}
BENCHMARK(BM_ProductKeySearch)->Arg(64)->Arg(256)->Arg(1024);

// Decode's product of one row with bf16 weights [out, in], streamed from memory as decode reads
// them: the matrices cycle through 512 MiB (beyond any cache), so bytes/s is the weights' read
// rate, to set beside the machine's bandwidth (`moe bench generate --model` measures both).
void BM_GemvBf16(benchmark::State& st) {
  if (!kernels::gemv_16bit_available()) return st.SkipWithError("no AVX-512 matrix-vector loop in this build");
  const int64_t out = st.range(0), in = st.range(1), rows = st.range(2);
  const int64_t count = (int64_t(512) << 20) / (2 * out * in);
  std::vector<uint16_t> w(size_t(count * out * in));
  for (size_t i = 0; i < w.size(); ++i) w[i] = uint16_t(0x3f80 + (i % 64));  // bf16 values near 1
  Tensor x = noise({rows, in}, 3), y({rows, out});
  int64_t m = 0;
  for (auto _ : st) {
    kernels::linear_forward(y.data(), x.data(), kernels::MatrixRef(w.data() + m * out * in, DType::BF16), rows, in,
                            out);
    m = (m + 1) % count;
  }
  // Bytes of weights read (each matrix once per product, whatever the rows): compare with the
  // machine's DRAM bandwidth; a product of many rows falls below it where arithmetic bounds it.
  st.SetBytesProcessed(int64_t(st.iterations()) * out * in * 2);
}
// An expert's gate or up projection and its down projection (the 2.55 GB qwen3_moe of
// docs/performance.md), an attention projection, and a dense FFN projection; 1 row (batch-1
// decode) to 8 (a decode step of 8 requests).
BENCHMARK(BM_GemvBf16)
    ->ArgsProduct({{256}, {1024}, {1, 2, 4, 8}})
    ->ArgsProduct({{1024}, {256}, {1, 2, 4, 8}})
    ->ArgsProduct({{2048}, {1024}, {1, 8}})
    ->ArgsProduct({{6144}, {2048}, {1, 2, 4, 8}})
    ->UseRealTime();

}  // namespace
}  // namespace moe
