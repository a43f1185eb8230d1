// moe bench train / generate: a whole training step and batch-1 decoding of a model config,
// against the GEMM rate and the memory bandwidth measured in the same run.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "bench_generate.h"
#include "bench_util.h"
#include "commands.h"
#include "dist/gradient_sync.h"
#include "parallel.h"
#include "core/rng.h"
#include "core/threading.h"
#include "default_config.h"
#include "infer/generator.h"
#include "kernels/gemm.h"
#include "train/adamw.h"
#include "cli_checks.h"

namespace moe::cli {

namespace {

ModelConfig load_config(const std::string& path) {
  return path.empty() ? ModelConfig::from_json(nlohmann::json::parse(kDefaultConfigJson), "<built-in default config>")
                      : ModelConfig::load(path);
}

// Matmul FLOPs of one token's forward (weights touched by the token, attention over T positions),
// layer by layer: dense, sparse MoE (+ shared expert) or PEER FFNs.
double forward_flops_per_token(const ModelConfig& c, int64_t T) {
  const double d = c.hidden_size, hd = c.hdim(), H = c.num_attention_heads, Hkv = c.num_key_value_heads;
  const double attn_proj = d * hd * (2 * H + 2 * Hkv);
  const double scores = 2.0 * double(T) * H * hd;  // QK^T and PV over the full window (as computed)
  double total = 2.0 * d * c.vocab_size;
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    double ffn;
    if (c.peer_layer(i)) {  // query, sub-key scores of both halves, h*k neurons (u . x and v)
      const PEERConfig p = c.peer_config();
      const double Hq = double(p.heads) * p.key_dim;
      ffn = d * Hq + Hq * double(p.n_sub()) + 2.0 * p.heads * p.top_k * d;
    } else if (c.sparse_layer(i)) {
      ffn = double(c.num_experts_per_tok) * 3 * d * c.intermediate_size + d * c.num_local_experts + 3 * d * c.shared_ffn();
    } else {
      ffn = 3 * d * (c.is_moe() ? c.dense_intermediate_size : c.intermediate_size);
    }
    total += 2.0 * (attn_proj + ffn) + scores;
  }
  return total;
}

// Bytes a training step cannot do without: parameters, their gradients and two AdamW moments (PEER
// tables: weights and moments, and gradients only for the rows a step retrieves), and the
// activations the backward reads (per layer: block input, normed inputs, q/k/v, attention
// probabilities [B, H, T, T] and output, the FFN's saved values; then the final norm and logits).
double memory_floor_bytes(const ModelConfig& c, int64_t B, int64_t T) {
  const double n = double(B) * T, d = c.hidden_size, qd = double(c.num_attention_heads) * c.hdim(),
               kvd = double(c.num_key_value_heads) * c.hdim();
  double tables = 0, table_grad_rows = 0, act = n * (2 * d + c.vocab_size);
  for (int i = 0; i < c.num_hidden_layers; ++i) {
    act += n * (5 * d + 2 * qd + 2 * kvd) + double(B) * c.num_attention_heads * T * T;
    if (c.peer_layer(i)) {
      const PEERConfig p = c.peer_config();
      const double Hq = double(p.heads) * p.key_dim, slots = double(p.slots());
      tables += 2.0 * double(p.n_experts) * d;
      table_grad_rows += 2.0 * std::min(double(p.n_experts), n * slots) * d;
      act += n * (3 * Hq + 3 * slots);  // raw, normalised and BN-centred queries; pre-activations etc.
    } else if (c.sparse_layer(i)) {
      const double k = c.num_experts_per_tok, F = c.intermediate_size;
      act += n * k * (2 * d + 3 * F) + 3.0 * n * c.num_local_experts + 3.0 * n * c.shared_ffn();
    } else {
      act += 3.0 * n * (c.is_moe() ? c.dense_intermediate_size : c.intermediate_size);
    }
  }
  const double dense_params = double(c.total_params()) - tables;
  return 4.0 * (4.0 * dense_params + 3.0 * tables + table_grad_rows + act);
}

struct TrainBenchArgs {
  std::string config;
  int64_t batch = 32, context = 0, steps = 7;
  double peak = 0;  // 0: measured in the run
  int threads = 0;
  int expert_parallel = 0;
  bool json = false;
};

// Under mpirun: the same training step split over the ranks (each runs B / W sequences of the
// global batch, experts split R ways, gradients summed), timed step by step between barriers.
// Reports the global tokens/s, the share of the step spent in collectives, the bytes every rank
// sent per token, and each rank's peak resident memory.
int run_train_bench_parallel(const TrainBenchArgs& a, const ModelConfig& c, const dist::ParallelLayout& L) {
  const int W = L.world.size();
  const int64_t B = a.batch, T = a.context > 0 ? a.context : c.max_position_embeddings;
  if (B % W != 0) throw Error("[bench] --batch-size " + std::to_string(B) + " must be a multiple of the " + std::to_string(W) + " ranks");
  const int64_t b = B / W, n = b * T;
  DecoderLM model(c, L);
  model.init_weights(0);
  ParamList ps = model.params();
  AdamW opt(ps, {});
  Rng rng(1 + uint64_t(L.world.rank()));
  std::vector<int32_t> tok(n), tgt(n);
  for (int64_t i = 0; i < n; ++i) tok[i] = int32_t(rng.below(256)), tgt[i] = int32_t(rng.below(256));
  auto step = [&] {
    model.zero_grad();
    model.forward(tok.data(), tgt.data(), b, T);
    model.backward();
    dist::all_reduce_gradients(ps, L);
    dist::clip_grad_norm(ps, 1.0, L);
    opt.step(1e-4f);
  };
  step();
  step();
  // The median step (every round ends at a barrier: all ranks agree within its latency).
  std::vector<ParallelRound> rounds = time_parallel_rounds(L, int(a.steps), step);
  int64_t sent = 0;
  for (auto& r : rounds) sent += r.bytes_sent;
  std::sort(rounds.begin(), rounds.end(), [](auto& p, auto& q) { return p.seconds < q.seconds; });
  const double t = rounds[rounds.size() / 2].seconds, comm_med = rounds[rounds.size() / 2].comm_seconds;
  const std::vector<int64_t> bytes = L.world.all_gather(sent / a.steps);
  const std::vector<double> rss = L.world.all_gather(peak_rss_bytes());
  const std::vector<double> comm_share = L.world.all_gather(comm_med / t);
  int64_t total_bytes = 0;
  for (int64_t x : bytes) total_bytes += x;
  const double bytes_per_token = double(total_bytes) / double(B * T);
  const double flops = 3.0 * forward_flops_per_token(c, T) * double(B * T);
  nlohmann::json j = {{"world_size", W}, {"expert_parallel", L.expert_parallel}, {"tokens_per_step", B * T},
                      {"step_s", t}, {"tokens_per_s", double(B * T) / t}, {"model_gflops", flops / t / 1e9},
                      {"comm_share_per_rank", comm_share}, {"bytes_sent_per_rank_per_step", bytes},
                      {"bytes_per_token", bytes_per_token}, {"peak_rss_bytes_per_rank", rss},
                      {"threads", num_threads()}};
  std::printf("training step on %d ranks (experts split %d ways): %lld tokens in %.3f s = %.0f tokens/s, %.1f GFLOP/s\n",
              W, L.expert_parallel, (long long)(B * T), t, double(B * T) / t, flops / t / 1e9);
  std::printf("  time in collectives (median step):");
  for (double x : comm_share) std::printf(" %.1f%%", 100 * x);
  std::printf(" per rank; %.0f bytes sent per token (all ranks)\n", bytes_per_token);
  std::printf("  peak resident memory per rank:");
  for (double x : rss) std::printf(" %.1f MB", x / 1e6);
  std::printf("\n");
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}

int run_train_bench(const TrainBenchArgs& a) {
  set_num_threads(a.threads);
  const ModelConfig c = load_config(a.config);
  if (a.expert_parallel > 0 || dist::Communicator::world().size() > 1)
    return run_train_bench_parallel(a, c, job_layout(a.expert_parallel, "bench train"));
  const int64_t B = a.batch, T = a.context > 0 ? a.context : c.max_position_embeddings, n = B * T;
  DecoderLM model(c);
  model.init_weights(0);
  ParamList ps = model.params();
  AdamW opt(ps, {});
  Rng rng(1);
  std::vector<int32_t> tok(n), tgt(n);
  for (int64_t i = 0; i < n; ++i) tok[i] = int32_t(rng.below(256)), tgt[i] = int32_t(rng.below(256));
  auto step = [&] {
    model.zero_grad();
    model.forward(tok.data(), tgt.data(), B, T);
    model.backward();
    clip_grad_norm(ps, 1.0);
    opt.step(1e-4f);
  };
  step();  // warm-up: sizes every buffer
  step();
  const double rss = peak_rss_bytes();  // before the GEMM's own buffers exist
  // The step and a 2048^3 GEMM in alternating rounds (see Interleaved).
  const int64_t G = 2048;
  Tensor A({G, G}), Bm({G, G}), C({G, G});
  Rng grng(2);
  fill_normal(A, grng, 0.01f);
  fill_normal(Bm, grng, 0.01f);
  Interleaved bench;
  const int i_step = bench.add(step);
  const int i_gemm = bench.add([&] { kernels::gemm(false, true, G, G, G, 1.0f, A.data(), G, Bm.data(), G, 0.0f, C.data(), G); });
  bench.run(int(a.steps));
  const double t = bench.best(i_step);
  const double flops = 3.0 * forward_flops_per_token(c, T) * double(n);
  const double gemm_flops = 2.0 * double(G) * G * G;
  const double gemm = gemm_flops / bench.best(i_gemm) / 1e9;
  const double mfu_gemm = flops / t / 1e9 / gemm;
  const double peak = a.peak > 0 ? a.peak : measure_fma_peak();
  const double floor = memory_floor_bytes(c, B, T);
  nlohmann::json j = {{"tokens_per_step", n}, {"step_s", t}, {"tokens_per_s", double(n) / t},
                      {"model_gflops", flops / t / 1e9}, {"gemm_gflops", gemm},
                      {"mfu_vs_gemm", mfu_gemm}, {"mfu_vs_peak", flops / t / 1e9 / peak}, {"fma_peak_gflops", peak},
                      {"peak_rss_bytes", rss}, {"memory_floor_bytes", floor}, {"rss_over_floor", rss / floor},
                      {"threads", num_threads()}};
  std::printf("training step: %lld tokens in %.3f s = %.0f tokens/s, %.1f GFLOP/s (model FLOPs)\n",
              (long long)n, t, double(n) / t, flops / t / 1e9);
  std::printf("  vs measured GEMM %.1f GFLOP/s: %.1f%%; vs FMA peak %.0f GFLOP/s: %.1f%%\n", gemm,
              100 * mfu_gemm, peak, 100 * flops / t / 1e9 / peak);
  std::printf("  peak resident memory %.1f MB; floor (params+grads+AdamW+activations) %.1f MB; ratio %.2f\n",
              rss / 1e6, floor / 1e6, rss / floor);
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}

struct GenBenchArgs {
  std::string config;
  int64_t prompt = 64, tokens = 64;
  int threads = 0;
  bool json = false;
};

int run_generate_bench(const GenBenchArgs& a) {
  set_num_threads(a.threads);
  const ModelConfig c = load_config(a.config);
  DecoderLM model(c);
  model.init_weights(0);
  const int64_t W = c.max_position_embeddings;
  if (a.prompt + a.tokens > W) throw Error("[bench] --prompt + --tokens must fit in max_position_embeddings (" + std::to_string(W) + ")");
  std::vector<LayerKVCache> caches;
  model.init_cache(caches, W);
  std::vector<int32_t> prompt(a.prompt);
  for (int64_t i = 0; i < a.prompt; ++i) prompt[i] = int32_t('a' + i % 26);
  std::vector<float> logits(c.vocab_size);
  model.forward_cached(logits.data(), prompt.data(), a.prompt, caches);  // warm-up
  for (auto& cc : caches) cc.len = 0;
  auto t0 = bench_clock::now();
  model.forward_cached(logits.data(), prompt.data(), a.prompt, caches);
  const double prefill = seconds_since(t0);
  int32_t tok = 'a';
  t0 = bench_clock::now();
  for (int64_t i = 0; i < a.tokens; ++i) model.forward_cached(logits.data(), &tok, 1, caches);
  const double decode = seconds_since(t0) / double(a.tokens);
  // Weights a decoded token reads: everything active except the embedding table (one row).
  const double bytes = 4.0 * double(c.active_params() - int64_t(c.vocab_size) * c.hidden_size * (c.tie_word_embeddings ? 0 : 1));
  const double bw = measure_bandwidth();
  const double floor_s = bytes / (bw * 1e9);
  nlohmann::json j = {{"prefill_tokens_per_s", double(a.prompt) / prefill}, {"decode_tokens_per_s", 1.0 / decode},
                      {"decode_s_per_token", decode}, {"weight_bytes_per_token", bytes},
                      {"bandwidth_gb_s", bw}, {"bandwidth_floor_s_per_token", floor_s},
                      {"decode_over_floor", decode / floor_s}, {"threads", num_threads()}};
  std::printf("prefill %lld tokens: %.0f tokens/s; decode at batch 1: %.0f tokens/s (%.3f ms/token)\n",
              (long long)a.prompt, double(a.prompt) / prefill, 1.0 / decode, decode * 1e3);
  std::printf("  active weights read per token %.2f MB; at the measured %.1f GB/s that is %.3f ms: decode takes %.2fx that\n",
              bytes / 1e6, bw, floor_s * 1e3, decode / floor_s);
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace

void add_model_benches(CLI::App& bench, std::vector<std::pair<CLI::App*, Runner>>& out) {
  auto ta = std::make_shared<TrainBenchArgs>();
  CLI::App* t = bench.add_subcommand("train", "a full training step (forward, backward, AdamW)");
  t->add_option("--model-config", ta->config, "config.json (default: the built-in default MoE)")->check(CLI::ExistingFile);
  t->add_option("--batch-size", ta->batch, "sequences per step")->capture_default_str()->check(moe::cli::Positive);
  t->add_option("--context", ta->context, "tokens per sequence (default: max_position_embeddings)")->check(moe::cli::Positive);
  t->add_option("--steps", ta->steps, "timed rounds of a step and a GEMM (the best of each reported)")->capture_default_str()->check(moe::cli::Positive);
  t->add_option("--peak-gflops", ta->peak, "FMA peak of the machine (default: measured in the run)");
  t->add_option("--threads", ta->threads, "threads (default: all cores)")->check(moe::cli::NonNegative);
  t->add_option("--expert-parallel", ta->expert_parallel, "under mpirun: experts split over R ranks (the ranks split the batch)")->check(moe::cli::Positive);
  t->add_flag("--json", ta->json, "end with one JSON line");
  out.emplace_back(t, [ta] { return run_train_bench(*ta); });
  auto ga = std::make_shared<GenBenchArgs>();
  auto ma = std::make_shared<GenerateModelBenchArgs>();  // with --model: cmd_bench_generate.cpp
  CLI::App* g = bench.add_subcommand("generate", "prefill and batch-1 decode speed of a config's random model; with --model DIR, "
                                                 "decode of a checkpoint through the serving engine, batch 1 and --concurrency requests");
  CLI::Option* mc = g->add_option("--model-config", ga->config, "config.json (default: the built-in default MoE)")->check(CLI::ExistingFile);
  CLI::Option* md = g->add_option("--model", ma->model, "checkpoint directory: bench it through the serving engine (see docs/performance.md)");
  md->excludes(mc);
  g->add_option("--prompt", ga->prompt, "prompt tokens")->capture_default_str()->check(moe::cli::Positive);
  g->add_option("--tokens", ga->tokens, "decoded tokens (per request)")->capture_default_str()->check(moe::cli::Positive);
  CLI::Option* cc = g->add_option("--concurrency", ma->concurrency, "with --model: requests submitted together (max_batch)")->capture_default_str();
  CLI::Option* ww = g->add_option("--weights", ma->weights, "with --model: stored (bf16/f16 matrices kept as stored, memory-mapped) or f32 (widened on load)")
                        ->capture_default_str()
                        ->check(CLI::IsMember({"stored", "f32"}));
  CLI::Option* cold = g->add_flag("--cold", ma->cold, "with --model: evict the weight files from the page cache first (time the load and first token as after a boot)");
  CLI::Option* rr = g->add_option("--rounds", ma->rounds, "with --model: rounds of bandwidth, batch 1 and concurrent runs (the best of each reported)")->capture_default_str();
  g->add_option("--threads", ga->threads, "threads (default: all cores)")->check(moe::cli::NonNegative);
  g->add_flag("--json", ga->json, "end with one JSON line");
  out.emplace_back(g, [ga, ma, md, cc, rr, ww, cold] {
    if (md->count() == 0) {
      if (cc->count() > 0 || rr->count() > 0 || ww->count() > 0 || cold->count() > 0)
        throw Error("[bench] --concurrency, --rounds, --weights and --cold need --model DIR");
      return run_generate_bench(*ga);
    }
    ma->prompt = ga->prompt, ma->tokens = ga->tokens, ma->threads = ga->threads, ma->json = ga->json;
    return run_generate_model_bench(*ma);
  });
}

}  // namespace moe::cli
