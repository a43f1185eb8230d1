// moe bench generate --model DIR: generation of a checkpoint through the serving engine
// (serve::BatchEngine, as `moe serve` runs it), all measured in the same run on the same model:
//   - the DRAM read bandwidth (measure_bandwidth());
//   - one request alone (batch 1): decode tokens/s, the bytes of active weights a decoded token
//     reads, hence the fraction of the bandwidth batch-1 decode achieves;
//   - C requests submitted together to an engine with max_batch = C: aggregate decode tokens/s and
//     its ratio to batch 1's.
// Each round runs the three in turn (A B C A B C ...); the best round of each is reported (noise
// only adds time), as the other benches do (docs/performance.md).
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <cstdio>
#include <fstream>
#include <memory>
#include <numeric>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "bench_generate.h"
#include "bench_util.h"
#include "core/error.h"
#include "core/threading.h"
#include "model/checkpoint.h"
#include "moe/moe_layer.h"
#include "serve/batch_engine.h"
#include "weights_option.h"

namespace moe::cli {

namespace {

std::string bench_gen_cpu_name() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon == std::string::npos) break;
      size_t b = colon + 1;
      while (b < line.size() && line[b] == ' ') ++b;
      return line.substr(b);
    }
  return "unknown";
}

// Bytes of weights one decoded token reads, each parameter at the size it is held in (2 bytes
// when kept bf16/f16, 4 in f32): attention, norms, dense FFNs, router gates, shared experts, k of
// the E routed experts of each MoE layer and the LM head; not the embedding table (one row is read)
// unless it is the (tied) LM head.
struct ActiveWeights {
  int64_t from_config = 0;  // ModelConfig::active_params() minus the untied embedding table
  int64_t from_params = 0;  // the loaded model's parameters: routed experts' scaled by k / E
  int64_t total_params = 0;
  double active_bytes = 0;  // from_params' parameters at their held sizes
  double total_bytes = 0;
  double other_bytes = 0;        // everything but the routed experts (one token reads all of it)
  double bytes_per_expert = 0;   // one routed expert's matrices (every expert is the same size)
};

ActiveWeights bench_gen_active_weights(DecoderLM& model) {
  const ModelConfig& c = model.config();
  ActiveWeights w;
  const int64_t table = int64_t(c.vocab_size) * c.hidden_size;
  w.from_config = c.active_params() - (c.tie_word_embeddings ? 0 : table);
  int64_t other = 0, experts = 0;
  double other_bytes = 0, expert_bytes = 0;
  for (Param* p : model.params()) {
    const int64_t n = p->w.numel();
    const double bytes = double(n) * (p->half.data ? 2.0 : 4.0);
    w.total_params += n;
    w.total_bytes += bytes;
    if (p->name == "model.embed_tokens.weight" && !c.tie_word_embeddings) continue;
    if (p->name.find(".experts.") != std::string::npos) experts += n, expert_bytes += bytes;
    else other += n, other_bytes += bytes;
  }
  // Every MoE layer has E experts of the same size: k / E of them are read per token.
  const double share = c.num_local_experts > 0 ? double(c.num_experts_per_tok) / c.num_local_experts : 0.0;
  w.from_params = other + (c.num_local_experts > 0 ? experts * c.num_experts_per_tok / c.num_local_experts : 0);
  w.active_bytes = other_bytes + expert_bytes * share;
  w.other_bytes = other_bytes;
  int64_t n_experts = 0;
  for (auto& b : model.layers)
    if (b->moe()) n_experts += b->moe()->bank().n_experts();
  w.bytes_per_expert = n_experts > 0 ? expert_bytes / double(n_experts) : 0.0;
  return w;
}

// The checkpoint's weight files: *.safetensors in the directory.
std::vector<std::filesystem::path> bench_gen_weight_files(const std::string& dir) {
  std::vector<std::filesystem::path> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec))
    if (e.path().extension() == ".safetensors") out.push_back(e.path());
  return out;
}

double bench_gen_checkpoint_bytes(const std::string& dir) {
  double total = 0;
  std::error_code ec;
  for (const auto& f : bench_gen_weight_files(dir)) {
    const auto n = std::filesystem::file_size(f, ec);
    if (!ec) total += double(n);
  }
  return total;
}

// --cold: asks the kernel to drop the weight files' pages from its cache (clean pages go; no root
// needed), so the load and the first token are timed as on a fresh boot.
void bench_gen_evict(const std::string& dir) {
  for (const auto& f : bench_gen_weight_files(dir)) {
    const int fd = ::open(f.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

// One run of n requests submitted together to an engine with max_batch n, driven on this thread.
struct RunTimes {
  double decode_tokens_per_s = 0;      // tokens sampled once every request is decoding / that time
  double end_to_end_tokens_per_s = 0;  // all tokens / (submit .. last token), prefill included
  double prefill_s = 0;                // submit .. every request's first token
  double mean_batch = 0;               // rows per decode step
  // Over the decode steps that ran all n requests: how many distinct routed experts one used, summed
  // over the MoE layers (a step reads each of those experts' weights once).
  double distinct_experts_per_step = 0;
};

// Distinct experts the last forward routed to, summed over the MoE layers; -1 unless every MoE
// layer's last forward had n tokens (a decode step of all n requests, not a prefill).
int64_t bench_gen_distinct_experts(DecoderLM& model, int64_t n) {
  int64_t total = 0;
  std::vector<uint8_t> used;
  for (auto& b : model.layers) {
    MoELayer* m = b->moe();
    if (!m) continue;
    const RoutingPlan& p = m->plan();
    if (p.n_tok != n) return -1;
    used.assign(size_t(p.n_expert), 0);
    for (int32_t e : p.expert)
      if (e >= 0) used[size_t(e)] = 1;
    total += std::count(used.begin(), used.end(), uint8_t(1));
  }
  return total;
}

std::vector<int32_t> bench_gen_prompt(int64_t len, int i) {
  static const std::string text = "The quick brown fox jumps over the lazy dog while the five boxing wizards jump quickly. ";
  std::vector<int32_t> p(len);
  for (int64_t t = 0; t < len; ++t) p[t] = int32_t(uint8_t(text[size_t(t + 7 * i) % text.size()]));
  return p;
}

RunTimes bench_gen_run(DecoderLM& model, int n, int64_t prompt, int64_t tokens) {
  serve::BatchEngine engine(model, {.max_batch = n});
  std::vector<std::vector<bench_clock::time_point>> at(n);
  int finished = 0;
  std::string error;
  const auto t0 = bench_clock::now();
  for (int i = 0; i < n; ++i) {
    auto r = std::make_shared<serve::GenerationRequest>();
    r->prompt = bench_gen_prompt(prompt, i);
    r->max_tokens = tokens;
    r->sampler = SamplerConfig{};  // seeded sampling (temperature 0.8), a different seed per request
    r->seed = uint64_t(i + 1);
    at[i].reserve(size_t(tokens));
    r->on_token = [&at, i](int32_t) {
      at[i].push_back(bench_clock::now());
      return true;
    };
    r->on_finish = [&finished, &error](serve::FinishReason why, const std::string& e) {
      ++finished;
      if (why == serve::FinishReason::error) error = e;
    };
    engine.submit(std::move(r));
  }
  int64_t full_steps = 0, distinct = 0;
  while (finished < n) {
    engine.step();
    if (const int64_t u = bench_gen_distinct_experts(model, n); u >= 0) ++full_steps, distinct += u;
  }
  if (!error.empty()) throw Error("[bench] generation failed: " + error);
  RunTimes t;
  bench_clock::time_point all_first = t0, end = t0;
  for (auto& v : at) {
    if (int64_t(v.size()) != tokens) throw Error("[bench] a request ended after " + std::to_string(v.size()) + " of " + std::to_string(tokens) + " tokens");
    all_first = std::max(all_first, v.front());
    end = std::max(end, v.back());
  }
  int64_t after = 0;  // tokens sampled after every request had its first one
  for (auto& v : at)
    for (auto& x : v) after += x > all_first;
  const double decode_s = std::chrono::duration<double>(end - all_first).count();
  t.decode_tokens_per_s = decode_s > 0 ? double(after) / decode_s : 0;
  t.end_to_end_tokens_per_s = double(n) * double(tokens) / std::chrono::duration<double>(end - t0).count();
  t.prefill_s = std::chrono::duration<double>(all_first - t0).count();
  const serve::BatchEngineStats s = engine.stats();
  t.mean_batch = s.steps ? double(s.rows) / double(s.steps) : 0;
  t.distinct_experts_per_step = full_steps ? double(distinct) / double(full_steps) : 0;
  return t;
}

}  // namespace

int run_generate_model_bench(const GenerateModelBenchArgs& a) {
  if (a.tokens < 2) throw Error("[bench] --tokens must be >= 2 (decode speed is timed between the first and the last token)");
  if (a.prompt < 1) throw Error("[bench] --prompt must be >= 1");
  if (a.concurrency < 1) throw Error("[bench] --concurrency must be >= 1, got " + std::to_string(a.concurrency));
  if (a.rounds < 1) throw Error("[bench] --rounds must be >= 1, got " + std::to_string(a.rounds));
  if (a.threads < 0) throw Error("[bench] --threads must be >= 0");
  set_num_threads(a.threads);
  const double file_bytes = bench_gen_checkpoint_bytes(a.model);
  if (a.cold) bench_gen_evict(a.model);
  const double rss_before = current_rss_bytes();
  const auto load0 = bench_clock::now();
  auto model = load_pretrained(a.model, nullptr, {}, run_load_options(a.weights));  // no gradient storage
  const double load_s = std::chrono::duration<double>(bench_clock::now() - load0).count();
  const double rss_loaded = current_rss_bytes() - rss_before;
  model->set_data_group(dist::Communicator());
  const ModelConfig& c = model->config();
  if (!model->causal()) throw Error("[bench] " + a.model + ": this model's router is not causal: it cannot generate text");
  if (a.prompt + a.tokens > c.max_position_embeddings)
    throw Error("[bench] --prompt " + std::to_string(a.prompt) + " + --tokens " + std::to_string(a.tokens) +
                " must fit in the model's context (max_position_embeddings " + std::to_string(c.max_position_embeddings) + ")");
  const ActiveWeights w = bench_gen_active_weights(*model);
  const bool agree = w.from_config == w.from_params;
  const double active_bytes = w.active_bytes;
  const std::string source = agree ? "the loaded parameters at their held sizes (count equal to ModelConfig::active_params() minus the embedding table)"
                                   : "the loaded parameters at their held sizes (ModelConfig::active_params() minus the embedding table differs: " +
                                         std::to_string(w.from_config) + " params)";

  // The first token after loading: mapped weights are read from the file as they are first touched.
  const auto first0 = bench_clock::now();
  bench_gen_run(*model, 1, a.prompt, 2);
  const double first_token_s = std::chrono::duration<double>(bench_clock::now() - first0).count();
  const double rss_first = current_rss_bytes() - rss_before;
  // Warm-up: both engine shapes once, short.
  bench_gen_run(*model, 1, a.prompt, std::min<int64_t>(a.tokens, 8));
  if (a.concurrency > 1) bench_gen_run(*model, a.concurrency, a.prompt, std::min<int64_t>(a.tokens, 8));
  std::vector<double> bw, one, one_e2e, many, many_e2e, one_prefill, many_prefill, many_batch, one_distinct, many_distinct;
  for (int r = 0; r < a.rounds; ++r) {
    bw.push_back(measure_bandwidth());
    const RunTimes s = bench_gen_run(*model, 1, a.prompt, a.tokens);
    one.push_back(s.decode_tokens_per_s), one_e2e.push_back(s.end_to_end_tokens_per_s), one_prefill.push_back(s.prefill_s);
    one_distinct.push_back(s.distinct_experts_per_step);
    const RunTimes m = bench_gen_run(*model, a.concurrency, a.prompt, a.tokens);
    many.push_back(m.decode_tokens_per_s), many_e2e.push_back(m.end_to_end_tokens_per_s), many_prefill.push_back(m.prefill_s);
    many_batch.push_back(m.mean_batch);
    many_distinct.push_back(m.distinct_experts_per_step);
  }
  auto best = [](const std::vector<double>& v) { return *std::max_element(v.begin(), v.end()); };
  auto least = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
  const double B = best(bw), t1 = best(one), tc = best(many);
  const double fraction = active_bytes * t1 / (B * 1e9);
  // The memory-bound ceiling of the concurrency quotient, from this run's own routing: a step of C
  // requests reads the non-expert weights once and each distinct routed expert once; a step of one
  // reads the same non-expert weights and its k experts. If both steps read weights at the same
  // speed, C requests decode at most C * bytes(1) / bytes(C) times as fast as one.
  auto mean = [](const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); };
  const double distinct1 = mean(one_distinct), distinctc = mean(many_distinct);
  const double step1_bytes = w.other_bytes + distinct1 * w.bytes_per_expert;
  const double stepc_bytes = w.other_bytes + distinctc * w.bytes_per_expert;
  const double ceiling = stepc_bytes > 0 ? a.concurrency * step1_bytes / stepc_bytes : 0.0;
  const double stepc_fraction = stepc_bytes * tc / a.concurrency / (B * 1e9);  // a batched step's read speed / bandwidth
  // The same quotients within each round, then their median: a slow phase hitting one round's
  // cases alike cancels out (as Interleaved::ratio).
  std::vector<double> frac_r, ratio_r;
  for (int r = 0; r < a.rounds; ++r)
    frac_r.push_back(active_bytes * one[r] / (bw[r] * 1e9)), ratio_r.push_back(many[r] / one[r]);
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  nlohmann::json j = {{"model", a.model}, {"cpu", bench_gen_cpu_name()}, {"threads", num_threads()},
                      {"model_type", c.model_type}, {"total_params", w.total_params},
                      {"weights", a.weights}, {"weight_bytes_in_memory", w.total_bytes},
                      {"checkpoint_file_bytes", file_bytes}, {"cold", a.cold}, {"load_s", load_s},
                      {"first_token_s", first_token_s}, {"rss_after_load_bytes", rss_loaded},
                      {"rss_after_first_token_bytes", rss_first}, {"rss_after_runs_bytes", current_rss_bytes() - rss_before},
                      {"peak_rss_bytes", peak_rss_bytes()},
                      {"prompt_tokens", a.prompt}, {"tokens", a.tokens}, {"concurrency", a.concurrency}, {"rounds", a.rounds},
                      {"bandwidth_gb_s", B}, {"bandwidth_gb_s_rounds", bw},
                      {"active_params", w.from_params}, {"active_bytes_per_token", active_bytes},
                      {"active_params_source", source},
                      {"active_params_config", w.from_config}, {"active_params_loaded", w.from_params},
                      {"batch1_decode_tokens_per_s", t1}, {"batch1_decode_tokens_per_s_rounds", one},
                      {"batch1_end_to_end_tokens_per_s", best(one_e2e)}, {"batch1_prefill_s", least(one_prefill)},
                      {"batch1_read_gb_s", active_bytes * t1 / 1e9}, {"bandwidth_fraction", fraction},
                      {"bandwidth_fraction_round_median", median(frac_r)},
                      {"concurrent_decode_tokens_per_s", tc}, {"concurrent_decode_tokens_per_s_rounds", many},
                      {"concurrent_end_to_end_tokens_per_s", best(many_e2e)}, {"concurrent_prefill_s", least(many_prefill)},
                      {"concurrent_mean_batch", best(many_batch)},
                      {"concurrent_ratio", tc / t1}, {"concurrent_ratio_round_median", median(ratio_r)}, {"concurrent_end_to_end_ratio", best(many_e2e) / best(one_e2e)},
                      {"batch1_distinct_experts_per_step", distinct1}, {"concurrent_distinct_experts_per_step", distinctc},
                      {"batch1_step_weight_bytes", step1_bytes}, {"concurrent_step_weight_bytes", stepc_bytes},
                      {"concurrent_ratio_memory_bound_ceiling", ceiling}, {"concurrent_bandwidth_fraction", stepc_fraction}};
  std::printf("%s (%s, %.2f GB of weights held, --weights %s), %d threads on %s\n", a.model.c_str(), c.model_type.c_str(),
              w.total_bytes / 1e9, a.weights.c_str(), num_threads(), j["cpu"].get<std::string>().c_str());
  std::printf("  checkpoint files %.2f GB%s: loaded in %.2f s (resident +%.2f GB), first token %.2f s later "
              "(resident +%.2f GB); after the runs resident +%.2f GB = %.2f x the files (process peak %.2f GB)\n",
              file_bytes / 1e9, a.cold ? ", evicted from the page cache first" : "", load_s, rss_loaded / 1e9, first_token_s,
              rss_first / 1e9, (current_rss_bytes() - rss_before) / 1e9, (current_rss_bytes() - rss_before) / file_bytes,
              peak_rss_bytes() / 1e9);
  std::printf("  DRAM read bandwidth (512 MiB summed, best of %d rounds): %.1f GB/s\n", a.rounds, B);
  std::printf("  active weights per decoded token: %.1f MB (%lld params; %s)\n", active_bytes / 1e6,
              (long long)w.from_params, source.c_str());
  std::printf("  batch 1 (prompt %lld, %lld tokens): decode %.2f tokens/s (%.1f ms/token) = %.1f GB/s of weights: %.1f%% of the bandwidth\n",
              (long long)a.prompt, (long long)a.tokens, t1, 1e3 / t1, active_bytes * t1 / 1e9, 100 * fraction);
  std::printf("  %d concurrent requests (max_batch %d): decode %.2f tokens/s aggregate = %.2fx batch 1 (end to end, prefill included: %.2fx)\n",
              a.concurrency, a.concurrency, tc, tc / t1, best(many_e2e) / best(one_e2e));
  if (a.concurrency > 1)
    std::printf("  routing of this run: %.1f distinct experts per step over the MoE layers at batch 1, %.1f at %d concurrent: "
                "a step reads %.1f MB against %.1f MB, so while reading weights bounds decode the quotient is at most "
                "%.2fx (reached %.0f%% of it; the batched steps read weights at %.1f%% of the bandwidth)\n",
                distinct1, distinctc, a.concurrency, stepc_bytes / 1e6, step1_bytes / 1e6, ceiling,
                ceiling > 0 ? 100 * (tc / t1) / ceiling : 0.0, 100 * stepc_fraction);
  std::printf("  (best round of each of %d; medians of the per-round quotients: %.1f%% of the bandwidth, %.2fx)\n", a.rounds,
              100 * median(frac_r), median(ratio_r));
  if (a.json) std::printf("%s\n", j.dump().c_str());
  return 0;
}

}  // namespace moe::cli
