// moe grow: enlarge a trained model's PEER expert pool, reporting the validation loss before and
// right after growth (they should barely differ), then save the grown checkpoint.
#include <cmath>
#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/threading.h"
#include "io/atomic_file.h"
#include "model/checkpoint.h"
#include "model/peer_grow.h"
#include "terminal.h"
#include "train/evaluate.h"
#include "cli_checks.h"

namespace fs = std::filesystem;

namespace moe::cli {

namespace {
struct GrowArgs {
  std::string model, out, data;
  int64_t experts = 0, max_tokens = 65536;
  float new_key_scale = PEERGrowConfig{}.new_key_scale;
  uint64_t seed = 0;
  int threads = 0;
  bool json = false, overwrite = false;
};

int run_grow(const GrowArgs& a) {
  set_num_threads(a.threads);
  const std::string data = a.data.empty() ? a.model + "/heldout.txt" : a.data;
  if (!fs::exists(data))
    throw Error("[grow] " + data + " not found: pass --data with a held-out text file");
  if (fs::exists(a.out + "/model.safetensors") && !a.overwrite)
    throw Error("[grow] " + a.out + " already holds a checkpoint; pass --overwrite to replace it");
  if (fs::exists(a.out) && fs::equivalent(a.out, a.model)) throw Error("[grow] --out must differ from --model");
  auto model = load_pretrained(a.model);
  model->config().require_bytes("grow", a.model);
  const int64_t before_n = model->config().peer_num_experts;
  const std::string text = read_file(data);
  if (text.size() < 2) throw Error("[grow] " + data + ": needs at least 2 bytes");
  const EvalConfig ec{.max_tokens = a.max_tokens};
  ProgressLine progress;
  auto eval = [&](DecoderLM& m, const char* what) {
    return evaluate_text(m, text, ec, [&](int64_t done, int64_t total) {
             progress.update(std::string("evaluating ") + what + ": window " + std::to_string(done) + "/" + std::to_string(total));
           }).loss();
  };
  const double loss_before = eval(*model, "before growth");
  auto grown = grow_peer(*model, {.n_experts = a.experts, .new_key_scale = a.new_key_scale, .seed = a.seed});
  model.reset();
  const double loss_after = eval(*grown, "after growth");
  progress.finish();
  fs::create_directories(a.out);
  save_pretrained(a.out, *grown, {{"grown_from", a.model}});
  if (a.data.empty()) atomic_write_file(a.out + "/heldout.txt", text);
  const double rel = (loss_after - loss_before) / loss_before;
  std::printf("grew PEER layers from %lld to %lld experts -> %s\n", (long long)before_n, (long long)a.experts, a.out.c_str());
  std::printf("validation loss on %s: before %.6f, after %.6f nats/token (%+.3f%%)\n", data.c_str(), loss_before,
              loss_after, 100.0 * rel);
  if (a.json) {
    nlohmann::json j = {{"experts_before", before_n}, {"experts_after", a.experts}, {"loss_before", loss_before},
                        {"loss_after", loss_after}, {"relative_change", rel}, {"out", a.out}};
    std::printf("%s\n", j.dump().c_str());
  }
  return 0;
}
}  // namespace

Runner add_grow(CLI::App& app) {
  auto a = std::make_shared<GrowArgs>();
  CLI::App* c = app.add_subcommand("grow", "enlarge the expert pool of a trained model's PEER layers");
  c->add_option("--model", a->model, "checkpoint directory with PEER layers")->required();
  c->add_option("--peer-num-experts", a->experts, "new number of experts (a larger perfect square)")->required()->check(moe::cli::Positive);
  c->add_option("--out", a->out, "directory for the grown checkpoint")->required();
  c->add_option("--data", a->data, "held-out text for the before/after loss (default: MODEL/heldout.txt)")->check(CLI::ExistingFile);
  c->add_option("--max-tokens", a->max_tokens, "bytes of the text evaluated")->capture_default_str()->check(moe::cli::Positive);
  c->add_option("--new-key-scale", a->new_key_scale, "new sub-keys' scale relative to the old ones' RMS")->capture_default_str()->check(moe::cli::NonNegative);
  c->add_option("--seed", a->seed, "seed of the new sub-keys and neurons")->capture_default_str();
  c->add_option("--threads", a->threads, "threads (default: all cores)")->check(moe::cli::NonNegative);
  c->add_flag("--overwrite", a->overwrite, "replace a checkpoint in --out");
  c->add_flag("--json", a->json, "end with one JSON line: loss_before, loss_after, relative_change");
  return [a] { return run_grow(*a); };
}

}  // namespace moe::cli
