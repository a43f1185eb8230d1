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
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "kernels/gemm.h"
#include "kernels/product_keys.h"
#include "kernels/topk.h"
#include "moe/peer_layer.h"
#include "cli_checks.h"

namespace moe::cli {

namespace {

struct PeerBenchArgs {
  int64_t experts = 0;  // 0: sweep 2^12 ... 2^20
  int heads = 8, top_k = 16, key_dim = 128, d_model = 256;
  int64_t tokens = 2048, brute_tokens = 256;
  int threads = 0, reps = 3;
  uint64_t seed = 7;
  std::string queries, ids_out;  // --queries FILE.safetensors, --ids-out FILE.json
  bool layer = true, json = false;
};

// The retrieval problem: h heads' queries and sub-keys, random or read from a file.
struct RetrievalInputs {
  int64_t n_sub = 0;
  int heads = 0, key_dim = 0;
  int64_t tokens = 0;
  Tensor keys;  // [h, 2, n_sub, dk/2]
  Tensor q;     // [h, tokens, dk]
};

RetrievalInputs random_inputs(const PeerBenchArgs& a, int64_t N) {
  RetrievalInputs in;
  in.n_sub = int64_t(std::llround(std::sqrt(double(N))));
  in.heads = a.heads, in.key_dim = a.key_dim, in.tokens = a.tokens;
  Rng rng(a.seed);
  in.keys = Tensor({int64_t(a.heads), 2, in.n_sub, a.key_dim / 2});
  in.q = Tensor({int64_t(a.heads), a.tokens, a.key_dim});
  fill_normal(in.keys, rng, 1.0f);
  fill_normal(in.q, rng, 1.0f);
  return in;
}

// A user's own problem: `queries` [T, dk] or [h, T, dk] and `sub_keys` [2, sqrt(N), dk/2] or
// [h, 2, sqrt(N), dk/2] (f32, f16 or bf16), so that retrieval can be checked against any reference.
RetrievalInputs file_inputs(const std::string& path) {
  const SafetensorsFile f = SafetensorsFile::open(path);
  const std::string where = "[bench] " + path + ": ";
  const Shape qs = f.info("queries").shape, ks = f.info("sub_keys").shape;
  if (qs.size() != 2 && qs.size() != 3) throw Error(where + "queries must be [tokens, key_dim] or [heads, tokens, key_dim]");
  if (ks.size() != qs.size() + 1)
    throw Error(where + "sub_keys must be [2, sqrt(N), key_dim/2]" + (qs.size() == 3 ? " per head: [heads, 2, sqrt(N), key_dim/2]" : ""));
  const int64_t h = qs.size() == 3 ? qs[0] : 1, T = qs[qs.size() - 2], dk = qs.back();
  const size_t o = ks.size() - 3;  // sub_keys' dims after the head dim
  if (dk < 2 || dk % 2) throw Error(where + "queries' key_dim must be even and >= 2, got " + std::to_string(dk));
  if (T < 1) throw Error(where + "queries hold no token");
  if ((o == 1 && ks[0] != h) || ks[o] != 2 || ks[o + 2] != dk / 2)
    throw Error(where + "sub_keys must be [" + (o ? std::to_string(h) + ", " : std::string()) + "2, sqrt(N), " +
                std::to_string(dk / 2) + "] for queries of key_dim " + std::to_string(dk));
  if (ks[o + 1] < 1 || ks[o + 1] > (int64_t(1) << 15)) throw Error(where + "sub_keys: sqrt(N) must be in [1, 32768]");
  RetrievalInputs in;
  in.n_sub = ks[o + 1], in.heads = int(h), in.key_dim = int(dk), in.tokens = T;
  in.keys = Tensor({h, 2, in.n_sub, dk / 2});
  in.q = Tensor({h, T, dk});
  f.read_into("sub_keys", in.keys.data(), in.keys.numel());
  f.read_into("queries", in.q.data(), in.q.numel());
  return in;
}

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
// top-k of each row. Queries go in chunks of 256 (fewer only past N = 2^20), so the keys are read once
// per chunk and the GEMM is wide enough to run near the machine's GEMM rate: a 64 MB score block
// (16 queries a chunk at N = 2^20) made brute force 2.7x slower there. The block is at most 1 GiB.
void brute_force(int32_t* ids, float* scores, const float* q, const float* full_keys, int64_t n, int64_t N, int dk,
                 int k, Tensor& block) {
  const int64_t kChunk = std::clamp<int64_t>((int64_t(1) << 28) / N, 8, 256);
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
  double brute_flops = 0;   // brute force's GEMM FLOPs per token: 2 N dk per head
  double brute_gflops() const { return brute_flops / brute_us * 1e-3; }
  // Brute force's time per token at an FMA peak (GFLOP/s): no implementation can be faster.
  double floor_us(double peak_gflops) const { return brute_flops / peak_gflops * 1e-3; }
};

// Per-token time of h heads' retrieval, both ways. Each head has its own sub-keys; the queries are
// the same for both methods, and `agreement` is the fraction of brute-force ids that retrieval also
// returned (the two differ only where float rounding reorders near-ties). ids, scores: when not
// null, filled with every token's retrieval [h, tokens, k].
RetrievalFigures bench_retrieval(const PeerBenchArgs& a, const RetrievalInputs& in, std::vector<int32_t>* all_ids,
                                 std::vector<float>* all_scores) {
  const int64_t ns = in.n_sub, N = ns * ns, T = in.tokens;
  const int dk = in.key_dim, half = dk / 2, k = a.top_k, h = in.heads;
  std::vector<int32_t> ids(size_t(T) * k * h);
  std::vector<float> sc(size_t(T) * k * h);
  std::vector<Tensor> sub(omp_get_max_threads());
  std::vector<kernels::ProductKeyScratch> scratch(omp_get_max_threads());
  const double tr = time_median(a.reps, [&] {
    for (int head = 0; head < h; ++head)
      retrieve(ids.data() + head * T * k, sc.data() + head * T * k, in.q.data() + head * T * dk,
               in.keys.data() + head * 2 * ns * half, T, ns, dk, k, sub, scratch);
  });
  RetrievalFigures f;
  f.retrieval_us = tr / double(T) * 1e6;

  // Brute force on the first brute_tokens queries of each head, with its full keys materialised.
  const int64_t nb = std::min(a.brute_tokens, T);
  Tensor full({N, dk}), block;
  std::vector<int32_t> bids(size_t(nb) * k * h);
  std::vector<float> bsc(size_t(nb) * k);
  double tb = 0;
  for (int head = 0; head < h; ++head) {
    const float* K1 = in.keys.data() + head * 2 * ns * half;
    const float* K2 = K1 + ns * half;
#pragma omp parallel for schedule(static)
    for (int64_t id = 0; id < N; ++id) {
      std::copy(K1 + (id / ns) * half, K1 + (id / ns + 1) * half, full.data() + id * dk);
      std::copy(K2 + (id % ns) * half, K2 + (id % ns + 1) * half, full.data() + id * dk + half);
    }
    const float* qh = in.q.data() + head * T * dk;
    tb += time_median(a.reps, [&] { brute_force(bids.data() + head * nb * k, bsc.data(), qh, full.data(), nb, N, dk, k, block); });
  }
  f.brute_us = tb / double(nb) * 1e6;
  f.brute_flops = 2.0 * double(N) * dk * h;
  int64_t same = 0;
  for (int head = 0; head < h; ++head)
    for (int64_t t = 0; t < nb; ++t) {
      const int32_t* r = ids.data() + (head * T + t) * k;
      for (int i = 0; i < k; ++i) same += std::find(r, r + k, bids[(head * nb + t) * k + i]) != r + k;
    }
  f.agreement = double(same) / double(nb * h * k);
  if (all_ids) *all_ids = std::move(ids);
  if (all_scores) *all_scores = std::move(sc);
  return f;
}

// {"experts", "heads", "top_k", "ids": [h][T][k], "scores": [h][T][k]}, best first (ties: lower id).
void write_ids(const std::string& path, const RetrievalInputs& in, int k, const std::vector<int32_t>& ids,
               const std::vector<float>& scores) {
  nlohmann::json ji = nlohmann::json::array(), js = nlohmann::json::array();
  for (int head = 0; head < in.heads; ++head) {
    nlohmann::json hi = nlohmann::json::array(), hs = nlohmann::json::array();
    for (int64_t t = 0; t < in.tokens; ++t) {
      const size_t o = size_t((head * in.tokens + t) * k);
      hi.push_back(std::vector<int32_t>(ids.begin() + o, ids.begin() + o + k));
      hs.push_back(std::vector<float>(scores.begin() + o, scores.begin() + o + k));
    }
    ji.push_back(std::move(hi));
    js.push_back(std::move(hs));
  }
  const nlohmann::json out = {{"experts", in.n_sub * in.n_sub}, {"heads", in.heads}, {"top_k", k},
                              {"ids", std::move(ji)}, {"scores", std::move(js)}};
  atomic_write_file(path, out.dump() + "\n");
}

struct LayerFigures {
  double fwd_tokens_per_s = 0, fwdbwd_tokens_per_s = 0, fwd_gather_gb_s = 0, fwdbwd_gather_gb_s = 0;
  double bank_fwd_gather_gb_s = 0;  // the expert bank's forward alone (the rows it reads / its time)
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
  // The bank alone on the last forward's plan: what gathering the rows costs without retrieval.
  const double bank = time_median(a.reps, [&] { layer.bank.forward(y.data(), x.data(), layer.plan()); });
  const double row_bytes = double(T) * c.slots() * 2.0 * double(d) * sizeof(float);
  return {double(T) / fwd, double(T) / fb, row_bytes / fwd / 1e9, 2.0 * row_bytes / fb / 1e9, row_bytes / bank / 1e9};
}

int run_peer_bench(PeerBenchArgs a) {
  set_num_threads(a.threads);
  RetrievalInputs given;
  if (!a.queries.empty()) {  // the problem's shape comes from the file
    given = file_inputs(a.queries);
    const int64_t N = given.n_sub * given.n_sub;
    if (a.experts > 0 && a.experts != N)
      throw Error("[bench] --experts " + std::to_string(a.experts) + " contradicts " + a.queries + "'s sub_keys (N = " + std::to_string(N) + ")");
    a.experts = N;
    a.heads = given.heads, a.key_dim = given.key_dim, a.tokens = given.tokens;
  }
  std::vector<int64_t> sizes;
  if (a.experts > 0) {
    const int64_t ns = int64_t(std::llround(std::sqrt(double(a.experts))));
    if (ns * ns != a.experts) throw Error("[bench] --experts must be a perfect square (N = n_sub^2), got " + std::to_string(a.experts));
    if (a.top_k > ns) throw Error("[bench] --top-k " + std::to_string(a.top_k) + " must not exceed sqrt(N) = " + std::to_string(ns));
    // Brute force materialises the N full keys and a [chunk, N] score block (at most 1 GiB).
    const double brute_gib = double(a.experts) * a.key_dim * 4 / double(1 << 30) + 1.0;
    if (brute_gib > 16)
      throw Error("[bench] brute force at N = " + std::to_string(a.experts) + " would need ~" +
                  std::to_string(int(brute_gib)) + " GiB (N x key_dim floats of full keys); use a smaller --experts or --key-dim");
    sizes.push_back(a.experts);
  } else {
    if (!a.ids_out.empty()) throw Error("[bench] --ids-out needs one N: pass --experts or --queries");
    for (int p = 12; p <= 20; p += 2) sizes.push_back(int64_t(1) << p);  // the powers of 2 that are squares
  }
  if (a.key_dim % 2) throw Error("[bench] --key-dim must be even");
  const double bw = a.layer ? measure_bandwidth() : 0.0;
  // Brute force can be no faster than its GEMM FLOPs at the FMA peak: a speedup over that floor
  // does not depend on how well our brute force is written.
  const double peak = measure_fma_peak();
  std::printf("PEER: %d heads, top-%d, key dim %d, d_model %d, %d threads%s\n", a.heads, a.top_k, a.key_dim,
              a.d_model, num_threads(), a.layer ? "" : " (retrieval only)");
  std::printf("  FMA peak measured in this run: %.0f GFLOP/s\n", peak);
  if (a.layer) std::printf("  memory read bandwidth measured in this run: %.1f GB/s\n", bw);
  std::printf("  %9s %14s %14s %9s %12s %12s %9s", "N", "retrieval us", "brute us", "speedup", "brute GF/s",
              "vs floor", "agree");
  if (a.layer) std::printf(" %11s %11s %9s %9s %9s", "fwd tok/s", "f+b tok/s", "fwd GB/s", "f+b GB/s", "bank GB/s");
  std::printf("\n");
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t N : sizes) {
    const RetrievalInputs in = a.queries.empty() ? random_inputs(a, N) : std::move(given);
    std::vector<int32_t> ids;
    std::vector<float> scores;
    const bool keep = !a.ids_out.empty();
    const RetrievalFigures r = bench_retrieval(a, in, keep ? &ids : nullptr, keep ? &scores : nullptr);
    if (keep) write_ids(a.ids_out, in, a.top_k, ids, scores);
    nlohmann::json j = {{"experts", N}, {"heads", a.heads}, {"top_k", a.top_k}, {"key_dim", a.key_dim},
                        {"retrieval_us_per_token", r.retrieval_us}, {"brute_force_us_per_token", r.brute_us},
                        {"speedup", r.brute_us / r.retrieval_us}, {"agreement", r.agreement},
                        {"brute_force_gflops", r.brute_gflops()}, {"fma_peak_gflops", peak},
                        {"brute_force_floor_us_per_token", r.floor_us(peak)},
                        {"speedup_vs_floor", r.floor_us(peak) / r.retrieval_us}};
    std::printf("  %9lld %14.2f %14.1f %8.0fx %12.0f %11.0fx %9.4f", (long long)N, r.retrieval_us, r.brute_us,
                r.brute_us / r.retrieval_us, r.brute_gflops(), r.floor_us(peak) / r.retrieval_us, r.agreement);
    if (a.layer) {
      const LayerFigures l = bench_layer(a, N);
      j.update({{"d_model", a.d_model}, {"layer_fwd_tokens_per_s", l.fwd_tokens_per_s},
                {"layer_fwdbwd_tokens_per_s", l.fwdbwd_tokens_per_s}, {"fwd_gather_gb_s", l.fwd_gather_gb_s},
                {"fwdbwd_gather_gb_s", l.fwdbwd_gather_gb_s}, {"bandwidth_gb_s", bw},
                {"fwd_gather_over_bandwidth", l.fwd_gather_gb_s / bw}, {"bank_fwd_gather_gb_s", l.bank_fwd_gather_gb_s},
                {"bank_fwd_gather_over_bandwidth", l.bank_fwd_gather_gb_s / bw}});
      std::printf(" %11.0f %11.0f %9.1f %9.1f %9.1f", l.fwd_tokens_per_s, l.fwdbwd_tokens_per_s, l.fwd_gather_gb_s,
                  l.fwdbwd_gather_gb_s, l.bank_fwd_gather_gb_s);
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
  p->add_option("--experts", a->experts, "N, a perfect square (default: sweep 2^12 ... 2^20)")->check(moe::cli::Positive);
  p->add_option("--heads", a->heads, "retrieval heads")->capture_default_str()->check(moe::cli::Positive);
  p->add_option("--top-k", a->top_k, "experts per head")->capture_default_str()->check(moe::cli::Positive);
  p->add_option("--key-dim", a->key_dim, "query width per head")->capture_default_str()->check(moe::cli::Positive);
  p->add_option("--d-model", a->d_model, "model width of the layer benchmark")->capture_default_str()->check(moe::cli::Positive);
  p->add_option("--tokens", a->tokens, "tokens per batch")->capture_default_str()->check(moe::cli::Positive);
  p->add_option("--brute-tokens", a->brute_tokens, "tokens scored by brute force")->capture_default_str()->check(moe::cli::Positive);
  p->add_option("--threads", a->threads, "threads (default: all cores)")->check(moe::cli::NonNegative);
  p->add_option("--reps", a->reps, "timed repetitions (median reported)")->capture_default_str()->check(moe::cli::Positive);
  p->add_option("--seed", a->seed, "seed of the random queries and sub-keys")->capture_default_str();
  p->add_option("--queries", a->queries,
                "safetensors file with your own `queries` [T, dk] or [h, T, dk] and `sub_keys` [2, sqrt(N), dk/2] or "
                "[h, 2, sqrt(N), dk/2] (sets N, heads, key dim and tokens)")->check(CLI::ExistingFile);
  p->add_option("--ids-out", a->ids_out, "write every token's retrieved ids and scores, [h][T][k], best first, to this JSON file");
  p->add_flag("!--no-layer", a->layer, "retrieval only: skip the layer benchmark");
  p->add_flag("--json", a->json, "end with one JSON line");
  out.emplace_back(p, [a] { return run_peer_bench(*a); });
}

}  // namespace moe::cli
