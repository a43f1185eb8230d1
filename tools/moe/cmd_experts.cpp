// moe experts: which experts each input's tokens go to, per layer, as a table and a heat map.
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/threading.h"
#include "io/atomic_file.h"
#include "model/checkpoint.h"
#include "train/evaluate.h"
#include "train/plots.h"
#include "train/text_corpus.h"
#include "weights_option.h"
#include "cli_checks.h"

namespace moe::cli {

namespace {

struct ExpertsArgs {
  std::string model, plot;
  std::string weights = "stored";
  std::vector<std::string> data;
  int64_t context = 0, max_tokens = 65536;
  int threads = 0;
  bool json = false;
};

int run_experts(const ExpertsArgs& a) {
  set_num_threads(a.threads);
  auto model = load_pretrained(a.model, nullptr, {}, run_load_options(a.weights));
  model->config().require_bytes("experts", a.model);
  const std::vector<int> peer_layers = model->peer_layers();
  const std::vector<int> routed = model->routed_layers();
  if (routed.empty() && peer_layers.empty()) throw Error("[experts] " + a.model + " is a dense model: it has no experts");
  std::vector<std::vector<std::vector<int64_t>>> usage;  // [input][layer][expert]
  std::vector<std::string> names;
  std::vector<std::vector<PEERUsage>> peer_usage;  // [input][PEER layer]
  std::vector<PEERUsage> peer_all(peer_layers.size());  // all inputs together
  for (const std::string& path : a.data) {
    std::string text;  // a directory's files are concatenated
    for (const std::string& f : TextCorpus::expand({path})) {
      text += read_file(f);
      if (int64_t(text.size()) >= a.max_tokens) break;
    }
    if (text.size() < 2) throw Error("[experts] " + path + ": needs at least 2 bytes");
    EvalResult r = evaluate_text(*model, text, {.context = a.context, .batch = 16, .max_tokens = a.max_tokens, .peer_usage = true});
    for (size_t p = 0; p < peer_layers.size(); ++p) peer_all[p].merge(r.peer_usage[p]);
    peer_usage.push_back(std::move(r.peer_usage));
    usage.push_back(r.expert_tokens);
    names.push_back(std::filesystem::path(path).filename().string().empty() ? path : std::filesystem::path(path).filename().string());
  }
  for (size_t p = 0; p < peer_layers.size(); ++p) {
    std::printf("layer %d (PEER, %lld experts): experts used, KL(usage || uniform), head pairs sharing an expert, "
                "duplicate retrievals\n", peer_layers[p], (long long)model->config().peer_num_experts);
    auto row = [](const std::string& name, const PEERUsage& u) {
      std::printf("%-24.24s %6.2f%%  KL %.3f nats  overlap %5.2f%%  duplicates %5.2f%%  (%lld tokens)\n", name.c_str(),
                  100.0 * u.fraction_used(), u.kl_from_uniform(), 100.0 * u.head_overlap(),
                  100.0 * u.duplicate_fraction(), (long long)u.tokens);
    };
    for (size_t i = 0; i < names.size(); ++i) row(names[i], peer_usage[i][p]);
    if (names.size() > 1) row("(all inputs)", peer_all[p]);
  }
  const size_t L = routed.size();
  for (size_t l = 0; l < L; ++l) {
    const size_t E = usage[0][l].size();
    std::printf("layer %d: share of routed tokens per expert (%%)\n%-24s", routed[l], "input");
    for (size_t e = 0; e < E; ++e) std::printf(" %5zu", e);
    std::printf("   top expert\n");
    for (size_t i = 0; i < usage.size(); ++i) {
      double sum = 0;
      size_t best = 0;
      for (size_t e = 0; e < E; ++e) {
        sum += double(usage[i][l][e]);
        if (usage[i][l][e] > usage[i][l][best]) best = e;
      }
      std::printf("%-24.24s", names[i].c_str());
      for (size_t e = 0; e < E; ++e) std::printf(" %5.1f", sum > 0 ? 100.0 * double(usage[i][l][e]) / sum : 0.0);
      std::printf("   %zu\n", best);
    }
  }
  std::string plot;
  if (L > 0) {
    plot = a.plot.empty() ? a.model + "/expert_usage.svg" : a.plot;
    write_expert_usage_svg(plot, names, usage);
    std::printf("plot: %s\n", plot.c_str());
  }
  if (a.json) {
    nlohmann::json j = nlohmann::json::object(), pj = nlohmann::json::object();
    for (size_t i = 0; i < usage.size(); ++i) j[names[i]] = usage[i];
    auto stats = [](const PEERUsage& u) {
      return nlohmann::json{{"fraction_used", u.fraction_used()}, {"kl_from_uniform", u.kl_from_uniform()},
                            {"head_overlap", u.head_overlap()}, {"duplicate_fraction", u.duplicate_fraction()},
                            {"tokens", u.tokens}};
    };
    for (size_t p = 0; p < peer_layers.size(); ++p) {
      nlohmann::json per = nlohmann::json::object();
      for (size_t i = 0; i < names.size(); ++i) per[names[i]] = stats(peer_usage[i][p]);
      per["(all inputs)"] = stats(peer_all[p]);
      pj[std::to_string(peer_layers[p])] = per;
    }
    std::printf("%s\n", nlohmann::json{{"layers", routed}, {"expert_tokens", j}, {"peer", pj}, {"plot", plot}}.dump().c_str());
  }
  return 0;
}

}  // namespace

Runner add_experts(CLI::App& app) {
  auto a = std::make_shared<ExpertsArgs>();
  CLI::App* c = app.add_subcommand("experts", "which experts each input's tokens are routed to, per layer");
  c->add_option("--model", a->model, "checkpoint directory")->required();
  add_weights_option(c, a->weights);
  c->add_option("--data", a->data, "text files or directories, one row each")->required()->expected(1, -1);
  c->add_option("--context", a->context, "window length (default: max_position_embeddings)")->check(CLI::Range(int64_t(2), int64_t(1) << 20));
  c->add_option("--max-tokens", a->max_tokens, "tokens read per input")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--plot", a->plot, "SVG heat map to write (default: MODEL/expert_usage.svg)");
  c->add_option("--threads", a->threads, "threads (default: all cores)")->check(moe::cli::NonNegative);
  c->add_flag("--json", a->json, "end with one JSON line: [input][layer][expert] counts");
  return [a] { return run_experts(*a); };
}

}  // namespace moe::cli
