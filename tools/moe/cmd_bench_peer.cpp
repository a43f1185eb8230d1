// moe bench peer: product-key retrieval against brute-force scoring of all N keys, and the PEER
// layer's forward / forward+backward speed against the memory bandwidth measured in the same run.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "commands.h"
#include "core/threading.h"
#include "kernels/gemm.h"
#include "kernels/product_keys.h"
#include "kernels/topk.h"
#include "moe/peer_layer.h"

namespace moe::cli {

namespace {

struct PeerBenchArgs {
  int64_t experts = 0;  // 0: sweep 2^12 ... 2^20
  int heads = 8, top_k = 16, key_dim = 128, d_model = 256;
  int64_t tokens = 2048, brute_tokens = 256;
  int threads = 0, reps = 3;
  bool layer = true, json = false;
};

// One head's retrieval for n queries q [n, dk]: the two halves scored against sqrt(N) sub-keys each
// (one GEMM per half), then the exact top-k of the N product keys from the two top-k lists.
// keys: [2, ns, dk/2]; ids: [n, k].
void retrieve(int32_t* ids, float* scores, const float* q, const float* keys, int64_t n, int64_t ns, int dk, int k,
              std::vector<Tensor>& sub, std::vector<kernels::ProductKeyScratch>& scratch) {
  const int half = dk / 2;
  constexpr int64_t kChunk = 256;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel
  {
    const int tid = omp_get_thread_num();
    Tensor& sc = sub[tid];
    sc.resize({2, kChunk, ns});
#pragma omp for schedule(dynamic, 1)
    for (int64_t c = 0; c < chunks; ++c) {
      const int64_t t0 = c * kChunk, nb = std::min(kChunk, n - t0);
      kernels::product_key_search(ids + t0 * k, scores + t0 * k, k, q + t0 * dk, dk, keys, keys + ns * half, nb, ns,
                                  half, k, sc.data(), scratch[tid]);
    }
  }
}

// Brute force, as a key-value memory without product keys would do it: every one of the N full keys
// [N, dk] (sub-key i of the first set next to sub-key j of the second) scored by a GEMM, then the
// top-k of each row. Queries go in chunks of up to 256, so the keys are read once per chunk, with the
// [chunk, N] score block kept to 64 MB.
void brute_force(int32_t* ids, float* scores, const float* q, const float* full_keys, int64_t n, int64_t N, int dk,
                 int k, Tensor& block) {
  const int64_t kChunk = std::clamp<int64_t>((int64_t(1) << 24) / N, 8, 256);
  block.resize({kChunk, N});
  for (int64_t t0 = 0; t0 < n; t0 += kChunk) {
    const int64_t nb = std::min(kChunk, n - t0);
    kernels::gemm(false, true, nb, N, dk, 1.0f, q + t0 * dk, dk, full_keys, dk, 0.0f, block.data(), N);
#pragma omp parallel for schedule(static)
    for (int64_t t = 0; t < nb; ++t)
      kernels::topk_rows(ids + (t0 + t) * k, scores + (t0 + t) * k, block.data() + t * N, 1, N, k);
  }
}

struct RetrievalFigures {
  double retrieval_us = 0, brute_us = 0, agreement = 0;
};

// Per-token time of h heads' retrieval, both ways. Each head has its own sub-keys; the queries are
// the same for both methods, and `agreement` is the fraction of brute-force ids that retrieval also
// returned (the two differ only where float rounding reorders near-ties).
RetrievalFigures bench_retrieval(const PeerBenchArgs& a, int64_t N) {
  const int64_t ns = int64_t(std::llround(std::sqrt(double(N))));
  const int dk = a.key_dim, half = dk / 2, k = a.top_k, h = a.heads;
  Rng rng(7);
  Tensor keys({int64_t(h), 2, ns, half}), q({int64_t(h), a.tokens, dk});
  fill_normal(keys, rng, 1.0f);
  fill_normal(q, rng, 1.0f);
  std::vector<int32_t> ids(size_t(a.tokens) * k);
  std::vector<float> sc(size_t(a.tokens) * k);
  std::vector<Tensor> sub(omp_get_max_threads());
  std::vector<kernels::ProductKeyScratch> scratch(omp_get_max_threads());
  const double tr = time_median(a.reps, [&] {
    for (int head = 0; head < h; ++head)
      retrieve(ids.data(), sc.data(), q.data() + head * a.tokens * dk, keys.data() + head * 2 * ns * half, a.tokens,
               ns, dk, k, sub, scratch);
  });
  RetrievalFigures f;
  f.retrieval_us = tr / double(a.tokens) * 1e6;

  // Brute force on the first brute_tokens queries of each head, with its full keys materialised.
  const int64_t nb = std::min(a.brute_tokens, a.tokens);
  Tensor full({N, dk}), block;
  std::vector<int32_t> bids(size_t(nb) * k * h), rids(size_t(nb) * k * h);
  std::vector<float> bsc(size_t(nb) * k);
  double tb = 0;
  for (int head = 0; head < h; ++head) {
    const float* K1 = keys.data() + head * 2 * ns * half;
    const float* K2 = K1 + ns * half;
#pragma omp parallel for schedule(static)
    for (int64_t id = 0; id < N; ++id) {
      std::copy(K1 + (id / ns) * half, K1 + (id / ns + 1) * half, full.data() + id * dk);
      std::copy(K2 + (id % ns) * half, K2 + (id % ns + 1) * half, full.data() + id * dk + half);
    }
    const float* qh = q.data() + head * a.tokens * dk;
    tb += time_median(a.reps, [&] { brute_force(bids.data() + head * nb * k, bsc.data(), qh, full.data(), nb, N, dk, k, block); });
    retrieve(rids.data() + head * nb * k, sc.data(), qh, K1, nb, ns, dk, k, sub, scratch);
  }
  f.brute_us = tb / double(nb) * 1e6;
  int64_t same = 0;
  for (int64_t r = 0; r < nb * h; ++r)
    for (int i = 0; i < k; ++i)
      same += std::find(rids.begin() + r * k, rids.begin() + (r + 1) * k, bids[r * k + i]) != rids.begin() + (r + 1) * k;
  f.agreement = double(same) / double(nb * h * k);
  return f;
}

struct LayerFigures {
  double fwd_tokens_per_s = 0, fwdbwd_tokens_per_s = 0, fwd_gather_gb_s = 0, fwdbwd_gather_gb_s = 0;
};

// The whole PEER layer (query projection, retrieval, softmax, the h*k neurons, combine; backward with
// row-sparse table gradients). Rows gathered: u_e and v_e per slot forward, both again backward.
LayerFigures bench_layer(const PeerBenchArgs& a, int64_t N) {
  const PEERConfig c{.d_model = a.d_model, .n_experts = N, .heads = a.heads, .top_k = a.top_k, .key_dim = a.key_dim,
                     .batch_norm = true};
  PEERLayer layer("peer", c);
  layer.router.set_training(true);
  ParamList ps;
  layer.params(ps);
  Rng rng(3);
  for (Param* p : ps)
    if (p->trainable && p != &layer.router.bn_weight) fill_normal(p->w, rng, 1.0f / std::sqrt(float(a.d_model)));
  const int64_t T = a.tokens, d = a.d_model;
  Tensor x({T, d}), y({T, d}), dy({T, d}), dx({T, d});
  fill_normal(x, rng, 1.0f);
  fill_normal(dy, rng, 1.0f);
  const double fwd = time_median(a.reps, [&] { layer.forward(y.data(), x.data(), T); });
  const double fb = time_median(a.reps, [&] {
    for (Param* p : ps) p->zero_grad();
    layer.forward(y.data(), x.data(), T);
    layer.backward(dx.data(), dy.data());
  });
  const double row_bytes = double(T) * c.slots() * 2.0 * double(d) * sizeof(float);
  return {double(T) / fwd, double(T) / fb, row_bytes / fwd / 1e9, 2.0 * row_bytes / fb / 1e9};
}

int run_peer_bench(const PeerBenchArgs& a) {
  set_num_threads(a.threads);
  std::vector<int64_t> sizes;
  if (a.experts > 0) {
    const int64_t ns = int64_t(std::llround(std::sqrt(double(a.experts))));
    if (ns * ns != a.experts) throw Error("[bench] --experts must be a perfect square (N = n_sub^2), got " + std::to_string(a.experts));
    if (a.top_k > ns) throw Error("[bench] --top-k must not exceed sqrt(--experts)");
    sizes.push_back(a.experts);
  } else {
    for (int p = 12; p <= 20; p += 2) sizes.push_back(int64_t(1) << p);  // the powers of 2 that are squares
  }
  if (a.key_dim % 2) throw Error("[bench] --key-dim must be even");
  const double bw = a.layer ? measure_bandwidth() : 0.0;
  std::printf("PEER: %d heads, top-%d, key dim %d, d_model %d, %d threads%s\n", a.heads, a.top_k, a.key_dim,
              a.d_model, num_threads(), a.layer ? "" : " (retrieval only)");
  if (a.layer) std::printf("  memory read bandwidth measured in this run: %.1f GB/s\n", bw);
  std::printf("  %9s %14s %14s %9s %9s", "N", "retrieval us", "brute us", "speedup", "agree");
  if (a.layer) std::printf(" %11s %11s %9s %9s", "fwd tok/s", "f+b tok/s", "fwd GB/s", "f+b GB/s");
  std::printf("\n");
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t N : sizes) {
    const RetrievalFigures r = bench_retrieval(a, N);
    nlohmann::json j = {{"experts", N}, {"heads", a.heads}, {"top_k", a.top_k}, {"key_dim", a.key_dim},
                        {"retrieval_us_per_token", r.retrieval_us}, {"brute_force_us_per_token", r.brute_us},
                        {"speedup", r.brute_us / r.retrieval_us}, {"agreement", r.agreement}};
    std::printf("  %9lld %14.2f %14.1f %8.0fx %9.4f", (long long)N, r.retrieval_us, r.brute_us, r.brute_us / r.retrieval_us,
                r.agreement);
    if (a.layer) {
      const LayerFigures l = bench_layer(a, N);
      j.update({{"d_model", a.d_model}, {"layer_fwd_tokens_per_s", l.fwd_tokens_per_s},
                {"layer_fwdbwd_tokens_per_s", l.fwdbwd_tokens_per_s}, {"fwd_gather_gb_s", l.fwd_gather_gb_s},
                {"fwdbwd_gather_gb_s", l.fwdbwd_gather_gb_s}, {"bandwidth_gb_s", bw},
                {"fwd_gather_over_bandwidth", l.fwd_gather_gb_s / bw}});
      std::printf(" %11.0f %11.0f %9.1f %9.1f", l.fwd_tokens_per_s, l.fwdbwd_tokens_per_s, l.fwd_gather_gb_s,
                  l.fwdbwd_gather_gb_s);
    }
    std::printf("\n");
    std::fflush(stdout);
    rows.push_back(j);
  }
  nlohmann::json out = rows.back();
  if (sizes.size() > 1) {  // least-squares slope of log(retrieval time) against log(N)
    double sx = 0, sy = 0, sxx = 0, sxy = 0;
    const double m = double(rows.size());
    for (const auto& j : rows) {
      const double lx = std::log(j["experts"].get<double>()), ly = std::log(j["retrieval_us_per_token"].get<double>());
      sx += lx, sy += ly, sxx += lx * lx, sxy += lx * ly;
    }
    const double slope = (m * sxy - sx * sy) / (m * sxx - sx * sx);
    std::printf("  fitted log-log slope of retrieval time against N: %.3f (brute force scales as N^1)\n", slope);
    out["slope"] = slope;
    out["sweep"] = rows;
  }
  if (a.json) std::printf("%s\n", out.dump().c_str());
  return 0;
}

}  // namespace

void add_peer_bench(CLI::App& bench, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto a = std::make_shared<PeerBenchArgs>();
  CLI::App* p = bench.add_subcommand("peer", "PEER product-key retrieval vs brute force, and the PEER layer's speed");
  p->add_option("--experts", a->experts, "N, a perfect square (default: sweep 2^12 ... 2^20)")->check(CLI::PositiveNumber);
  p->add_option("--heads", a->heads, "retrieval heads")->capture_default_str()->check(CLI::PositiveNumber);
  p->add_option("--top-k", a->top_k, "experts per head")->capture_default_str()->check(CLI::PositiveNumber);
  p->add_option("--key-dim", a->key_dim, "query width per head")->capture_default_str()->check(CLI::PositiveNumber);
  p->add_option("--d-model", a->d_model, "model width of the layer benchmark")->capture_default_str()->check(CLI::PositiveNumber);
  p->add_option("--tokens", a->tokens, "tokens per batch")->capture_default_str()->check(CLI::PositiveNumber);
  p->add_option("--brute-tokens", a->brute_tokens, "tokens scored by brute force")->capture_default_str()->check(CLI::PositiveNumber);
  p->add_option("--threads", a->threads, "threads (default: all cores)")->check(CLI::NonNegativeNumber);
  p->add_option("--reps", a->reps, "timed repetitions (median reported)")->capture_default_str()->check(CLI::PositiveNumber);
  p->add_flag("!--no-layer", a->layer, "retrieval only: skip the layer benchmark");
  p->add_flag("--json", a->json, "end with one JSON line");
  out.emplace_back(p, [a] { return run_peer_bench(*a); });
}

}  // namespace moe::cli
