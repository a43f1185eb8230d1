// moe bench: speed of the MoE layer against a dense layer of the same active FLOPs and a plain GEMM,
// all timed in the same run (these machines are shared and noisy: ratios, not absolute figures).
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "bench_util.h"
#include "commands.h"
#include "core/rng.h"
#include "core/threading.h"
#include "dist/expert_bank_parallel.h"
#include "kernels/gemm.h"
#include "parallel.h"
#include "moe/expert_bank_swiglu.h"
#include "moe/expert_schedule.h"
#include "moe/moe_layer.h"
#include "moe/router_topk.h"
#include "nn/dense_ffn.h"
#include "train/adamw.h"
#include "cli_checks.h"

namespace moe::cli {

void add_model_benches(CLI::App& bench, std::vector<std::pair<CLI::App*, Runner>>& out);
void add_peer_bench(CLI::App& bench, std::vector<std::pair<CLI::App*, Runner>>& out);  // cmd_bench_peer.cpp
void add_remote_bench(CLI::App& bench, std::vector<std::pair<CLI::App*, Runner>>& out);  // cmd_bench_remote.cpp

namespace {

struct LayerBenchArgs {
  int64_t d = 512, f = 1024, experts = 8, top_k = 2, tokens = 4096;
  std::string routing = "uniform";
  int threads = 0, reps = 9;
  int expert_parallel = 0;
  bool json = false;
};

// Under mpirun: the layer with its experts split over the ranks of each replica; the ranks split
// the --tokens of the batch. Forward+backward timed between barriers; reports the global tokens/s,
// each rank's share of time in collectives and the bytes sent per token (all ranks).
int run_layer_bench_parallel(const LayerBenchArgs& a, const dist::ParallelLayout& L) {
  const int W = L.world.size(), R = L.expert_parallel;
  const int64_t D = a.d, F = a.f, E = a.experts, K = a.top_k, T = a.tokens;
  if (a.routing != "uniform") throw Error("[bench] under mpirun only --routing uniform is measured");
  if (T % W != 0) throw Error("[bench] --tokens " + std::to_string(T) + " must be a multiple of the " + std::to_string(W) + " ranks");
  const int64_t n = T / W;
  auto router = std::make_unique<TopKRouter>("gate", TopKRouterConfig{.d_model = int(D), .n_expert = int(E), .k = int(K), .norm_topk_prob = K > 1, .aux_coef = 0.01f, .z_coef = 0.001f});
  router->set_data_group(L.world);
  MoELayer layer(std::move(router),
                 dist::make_swiglu_experts("b", {.d_model = int(D), .d_ff = int(F), .n_experts = int(E)}, L), int(D));
  ParamList ps;
  layer.params(ps);
  Rng rng(1 + uint64_t(L.world.rank()));
  for (Param* p : ps) fill_normal(p->w, rng, 0.02f);
  Tensor x({n, D}), y({n, D}), dy({n, D}), dx({n, D});
  fill_normal(x, rng, 1.0f);
  fill_normal(dy, rng, 1.0f);
  auto fb = [&] {
    layer.forward(y.data(), x.data(), n);
    layer.backward(dx.data(), dy.data());
  };
  fb();
  const std::vector<ParallelRound> rounds = time_parallel_rounds(L, a.reps, fb);
  const ParallelRound& b = *std::min_element(rounds.begin(), rounds.end(), [](auto& p, auto& q) { return p.seconds < q.seconds; });
  const double t = b.seconds;
  int64_t sent = 0;
  for (auto& r : rounds) sent += r.bytes_sent;
  const std::vector<double> share = L.world.all_gather(b.comm_seconds / t);
  const std::vector<int64_t> bytes = L.world.all_gather(sent / a.reps);
  int64_t total = 0;
  for (int64_t per_rank : bytes) total += per_rank;
  const double flops_fb = 3.0 * 2.0 * double(K) * 3.0 * double(D) * double(F) * double(T);
  nlohmann::json j = {{"d_model", D}, {"d_ff", F}, {"experts", E}, {"top_k", K}, {"tokens", T},
                      {"world_size", W}, {"expert_parallel", R}, {"threads", num_threads()},
                      {"fwdbwd_tokens_per_s", double(T) / t}, {"fwdbwd_gflops", flops_fb / t / 1e9},
                      {"comm_share_per_rank", share}, {"bytes_per_token", double(total) / double(T)},
                      {"rounds", a.reps}};
  std::printf("MoE layer D=%lld F=%lld E=%lld K=%lld T=%lld on %d ranks (experts split %d ways), %d threads each\n",
              (long long)D, (long long)F, (long long)E, (long long)K, (long long)T, W, R, num_threads());
  std::printf("  forward+backward %9.0f tokens/s  %7.1f GFLOP/s; time in collectives:", double(T) / t, flops_fb / t / 1e9);
  for (double s_r : share) std::printf(" %.1f%%", 100 * s_r);
  std::printf(" per rank; %.0f bytes sent per token\n", double(total) / double(T));
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}

int run_layer_bench(const LayerBenchArgs& a) {
  set_num_threads(a.threads);
  if (a.expert_parallel > 0 || dist::Communicator::world().size() > 1)
    return run_layer_bench_parallel(a, job_layout(a.expert_parallel, "bench moe-layer"));
  if (a.top_k > a.experts) throw Error("[bench] --top-k must not exceed --experts");
  if (a.routing != "uniform" && a.routing != "skewed" && a.routing != "learned")
    throw Error("[bench] --routing must be uniform, skewed or learned, got '" + a.routing + "'");
  const int64_t D = a.d, F = a.f, E = a.experts, K = a.top_k, T = a.tokens;
  Rng rng(1);
  auto router = std::make_unique<TopKRouter>("gate", TopKRouterConfig{.d_model = int(D), .n_expert = int(E), .k = int(K), .norm_topk_prob = K > 1, .aux_coef = 0.01f, .z_coef = 0.001f});
  auto bank = std::make_unique<SwiGLUExpertBank>("b", SwiGLUBankConfig{.d_model = int(D), .d_ff = int(F), .n_experts = int(E)});
  TopKRouter* rt = router.get();
  MoELayer layer(std::move(router), std::move(bank), int(D));
  ParamList ps;
  layer.params(ps);
  for (Param* p : ps) fill_normal(p->w, rng, 0.02f);
  Tensor x({T, D}), y({T, D}), dy({T, D}), dx({T, D});
  fill_normal(x, rng, 1.0f);
  fill_normal(dy, rng, 1.0f);
  if (a.routing == "skewed") {
    // Zipf-like popularity: feature 0 is a constant 1 and its gate column a log-popularity bias,
    // log(1 / (e+1)^1.2) * 4, so the first expert gets several times the mean load.
    for (int64_t t = 0; t < T; ++t) x[t * D] = 1.0f;
    for (int64_t e = 0; e < E; ++e) rt->gate.w[e * D] = float(-1.2 * std::log(double(e + 1)) * 0.2);
    for (int64_t e = 0; e < E; ++e)
      for (int64_t i = 1; i < D; ++i) rt->gate.w[e * D + i] *= 0.5f;
  }
  if (a.routing == "learned") {
    // Tokens from 4E clusters, each with its own target output; the layer (router and experts)
    // first learns that mapping for 30 AdamW steps under its balancing and z-losses, so the timed
    // routing is a trained router's on clustered data: uneven, but kept in check by the loss.
    const int64_t C = 4 * E;
    Tensor centre({C, D}), target({C, D});
    fill_normal(centre, rng, 1.0f);
    fill_normal(target, rng, 0.1f);
    std::vector<int64_t> cluster(T);
    for (int64_t t = 0; t < T; ++t) {
      cluster[t] = int64_t(rng.below(uint64_t(C)));
      for (int64_t i = 0; i < D; ++i) x[t * D + i] = centre[cluster[t] * D + i] + float(rng.normal() * 0.5);
    }
    AdamW opt(ps, {.weight_decay = 0.0f});
    for (int step = 0; step < 30; ++step) {
      for (Param* p : ps) p->zero_grad();
      layer.forward(y.data(), x.data(), T);
      for (int64_t t = 0; t < T; ++t)  // d/dy of the mean squared error
        for (int64_t i = 0; i < D; ++i) dy[t * D + i] = 2.0f * (y[t * D + i] - target[cluster[t] * D + i]) / float(T);
      layer.backward(dx.data(), dy.data());
      opt.step(1e-2f);
    }
    fill_normal(dy, rng, 1.0f);
  }
  layer.forward(y.data(), x.data(), T);
  std::vector<int64_t> load = layer.plan().stats.tokens_per_expert;
  const double mean_load = double(T * K) / double(E);
  const double max_load = double(*std::max_element(load.begin(), load.end()));

  // Bank-only work on the same plan: what the expert GEMMs (and their SwiGLU) cost.
  Tensor xs({int64_t(layer.plan().expert.size()), D}), ys(xs.shape()), dys(xs.shape()), dxs(xs.shape());
  fill_normal(xs, rng, 1.0f);
  fill_normal(dys, rng, 1.0f);
  Dispatch disp;
  disp.build(layer.plan());
  DenseFFN dense("dense", int(D), int(K * F));
  ParamList dps;
  dense.params(dps);
  for (Param* p : dps) fill_normal(p->w, rng, 0.02f);
  // The ceiling: one plain GEMM with the forward's FLOPs, [T, D] x [D, 3*K*F].
  Tensor W({3 * K * F, D}), out({T, 3 * K * F});
  fill_normal(W, rng, 0.02f);

  // Every case in the same rounds (see Interleaved); figures and ratios come from each case's best round.
  Interleaved bench;
  const int i_fwd = bench.add([&] { layer.forward(y.data(), x.data(), T); });
  const int i_fb = bench.add([&] {
    layer.forward(y.data(), x.data(), T);
    layer.backward(dx.data(), dy.data());
  });
  const int i_bank = bench.add([&] {
    layer.bank().forward(ys.data(), xs.data(), disp.offsets);
    layer.bank().backward(dxs.data(), dys.data());
  });
  // The expert GEMMs alone, scheduled as the bank schedules them: forward x W1^T, x W3^T, h W2^T;
  // backward dW2, dh, dW1, dW3 and the two dx products. Everything else the layer does is overhead.
  Tensor gs({xs.dim(0), F}), us(gs.shape()), hs(gs.shape());
  auto* sb = dynamic_cast<SwiGLUExpertBank*>(&layer.bank());
  const int i_gemms = bench.add([&] {
    for_each_expert(disp.offsets, [&](int e) {
      const int64_t r0 = disp.offsets[e], m = disp.offsets[e + 1] - r0;
      const float *x0 = xs.data() + r0 * D, *dy0 = dys.data() + r0 * D;
      float *g0 = gs.data() + r0 * F, *u0 = us.data() + r0 * F, *h0 = hs.data() + r0 * F;
      const float *w1 = sb->w1[e]->w.data(), *w3 = sb->w3[e]->w.data(), *w2 = sb->w2[e]->w.data();
      kernels::linear_forward(g0, x0, w1, m, D, F);
      kernels::linear_forward(u0, x0, w3, m, D, F);
      kernels::linear_forward(ys.data() + r0 * D, h0, w2, m, F, D);
      kernels::linear_backward_weight(sb->w2[e]->g.data(), dy0, h0, m, F, D);
      kernels::linear_backward_input(h0, dy0, w2, m, F, D);
      kernels::linear_backward_weight(sb->w1[e]->g.data(), g0, x0, m, D, F);
      kernels::linear_backward_weight(sb->w3[e]->g.data(), u0, x0, m, D, F);
      kernels::linear_backward_input(dxs.data() + r0 * D, g0, w1, m, D, F);
      kernels::linear_backward_input(dxs.data() + r0 * D, u0, w3, m, D, F, true);
    });
  });
  const int i_dfwd = bench.add([&] { dense.forward(y.data(), x.data(), T); });
  const int i_dfb = bench.add([&] {
    dense.forward(y.data(), x.data(), T);
    dense.backward(dx.data(), dy.data());
  });
  const int i_gemm = bench.add([&] { kernels::linear_forward(out.data(), x.data(), W.data(), T, D, 3 * K * F); });
  bench.run(a.reps);
  const double fwd = bench.best(i_fwd), fwdbwd = bench.best(i_fb), dfwd = bench.best(i_dfwd),
               dfwdbwd = bench.best(i_dfb), g = bench.best(i_gemm);

  const double flops_fwd = 2.0 * double(K) * 3.0 * double(D) * double(F) * double(T);
  const double flops_fb = 3.0 * flops_fwd;
  nlohmann::json j = {
      {"d_model", D}, {"d_ff", F}, {"experts", E}, {"top_k", K}, {"tokens", T}, {"routing", a.routing},
      {"threads", num_threads()},
      {"max_load_over_mean", max_load / mean_load},
      {"fwd_tokens_per_s", double(T) / fwd},
      {"fwdbwd_tokens_per_s", double(T) / fwdbwd},
      {"fwd_gflops", flops_fwd / fwd / 1e9},
      {"fwdbwd_gflops", flops_fb / fwdbwd / 1e9},
      {"dense_fwd_gflops", flops_fwd / dfwd / 1e9},
      {"dense_fwdbwd_gflops", flops_fb / dfwdbwd / 1e9},
      {"ratio", dfwdbwd / fwdbwd},  // = fwdbwd_gflops / dense_fwdbwd_gflops
      {"ratio_round_median", bench.ratio(i_dfb, i_fb)},
      {"fwd_ratio", dfwd / fwd},
      {"gemm_gflops", flops_fwd / g / 1e9},
      {"ratio_vs_gemm", (flops_fb / fwdbwd) / (flops_fwd / g)},  // = fwdbwd_gflops / gemm_gflops
      {"share_outside_expert_bank", std::max(0.0, 1.0 - bench.ratio(i_bank, i_fb))},
      {"share_outside_expert_gemms", std::max(0.0, 1.0 - bench.ratio(i_gemms, i_fb))},
      {"rounds", a.reps},
  };
  std::printf("MoE layer D=%lld F=%lld E=%lld K=%lld T=%lld routing=%s (max load %.2fx mean), %d threads\n",
              (long long)D, (long long)F, (long long)E, (long long)K, (long long)T, a.routing.c_str(),
              max_load / mean_load, num_threads());
  std::printf("  forward          %9.0f tokens/s  %7.1f GFLOP/s   dense %7.1f GFLOP/s   ratio %.3f\n", double(T) / fwd,
              flops_fwd / fwd / 1e9, flops_fwd / dfwd / 1e9, j["fwd_ratio"].get<double>());
  std::printf("  forward+backward %9.0f tokens/s  %7.1f GFLOP/s   dense %7.1f GFLOP/s   ratio %.3f\n",
              double(T) / fwdbwd, flops_fb / fwdbwd / 1e9, flops_fb / dfwdbwd / 1e9, j["ratio"].get<double>());
  std::printf("  plain GEMM (same forward FLOPs) %7.1f GFLOP/s (fwd+bwd over it: %.3f); time outside the expert GEMMs %.1f%% (outside the bank %.1f%%)\n",
              flops_fwd / g / 1e9, j["ratio_vs_gemm"].get<double>(), 100.0 * j["share_outside_expert_gemms"].get<double>(),
              100.0 * j["share_outside_expert_bank"].get<double>());
  std::printf("  (best of %d interleaved rounds; the median of per-round dense/MoE ratios is %.3f)\n", a.reps,
              j["ratio_round_median"].get<double>());
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace

Runner add_bench(CLI::App& app) {
  CLI::App* c = app.add_subcommand("bench", "measure speed (see docs/performance.md)");
  c->require_subcommand(1);
  auto a = std::make_shared<LayerBenchArgs>();
  CLI::App* l = c->add_subcommand("moe-layer", "one MoE layer vs a dense layer of the same active FLOPs");
  l->add_option("--d-model", a->d, "model width")->capture_default_str()->check(moe::cli::Positive);
  l->add_option("--d-ff", a->f, "expert hidden width")->capture_default_str()->check(moe::cli::Positive);
  l->add_option("--experts", a->experts, "experts")->capture_default_str()->check(moe::cli::Positive);
  l->add_option("--top-k", a->top_k, "experts per token")->capture_default_str()->check(moe::cli::Positive);
  l->add_option("--tokens", a->tokens, "tokens per batch")->capture_default_str()->check(moe::cli::Positive);
  l->add_option("--routing", a->routing, "uniform | skewed (Zipf-like) | learned (a router trained on clustered tokens)")->capture_default_str();
  l->add_option("--threads", a->threads, "threads (default: all cores)")->check(moe::cli::NonNegative);
  l->add_option("--reps", a->reps, "interleaved timing rounds (the best of each reported)")->capture_default_str()->check(moe::cli::Positive);
  l->add_option("--expert-parallel", a->expert_parallel, "under mpirun: experts split over R ranks (the ranks split --tokens)")->check(moe::cli::Positive);
  l->add_flag("--json", a->json, "end with one JSON line");
  std::vector<std::pair<CLI::App*, Runner>> more;
  add_model_benches(*c, more);
  add_peer_bench(*c, more);
  add_remote_bench(*c, more);
  return [l, a, more]() -> int {
    if (l->parsed()) return run_layer_bench(*a);
    for (const auto& [sub, run] : more)
      if (sub->parsed()) return run();
    return 2;
  };
}

}  // namespace moe::cli
