#include "model/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <optional>
#include <set>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/weight_store.h"

namespace moe {

namespace fs = std::filesystem;

namespace {


bool is_shard_file(const std::string& n) {
  return n.rfind("model-", 0) == 0 && n.size() > 12 && n.compare(n.size() - 12, 12, ".safetensors") == 0;
}

// Removes what another save left: the single file or shards the index no longer names.
void remove_stale(const std::string& dir, const std::set<std::string>& keep, bool keep_index) {
  std::error_code ec;
  for (auto& e : fs::directory_iterator(dir, ec)) {
    const std::string n = e.path().filename().string();
    const bool ours = is_shard_file(n) || n == "model.safetensors" || (!keep_index && n == kShardIndexFile);
    if (ours && !keep.count(n)) fs::remove(e.path(), ec);
  }
}

std::string pad5(int64_t v) {
  char b[32];
  std::snprintf(b, sizeof b, "%05lld", (long long)v);
  return b;
}

}  // namespace

void save_pretrained(const std::string& dir, DecoderLM& model,
                     const std::map<std::string, std::string>& metadata) {
  const dist::ParallelLayout& L = model.layout();
  const int R = L.expert_parallel;
  const bool rank0 = L.world.rank() == 0;
  std::error_code ec;
  if (rank0) fs::create_directories(dir, ec);
  if (ec) throw Error("[checkpoint] cannot create directory " + dir + ": " + ec.message());
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  // Remote experts' weights live on their servers: the file says so, for a clear error on load.
  if (L.remote_experts) meta["experts"] = "remote";
  if (R == 1) {
    // Data-parallel replicas hold the same weights: rank 0 writes them.
    if (rank0) {
      NamedTensors tensors;
      for (Param* p : model.params()) tensors.emplace_back(p->name, &p->w);
      write_safetensors(dir + "/model.safetensors", tensors, meta);
      atomic_write_file(dir + "/config.json", model.config().to_json().dump(2) + "\n");
      remove_stale(dir, {"model.safetensors"}, /*keep_index=*/false);
    }
    L.world.barrier();
    return;
  }
  // Shards: the non-expert weights, then one per expert shard; only the first replica writes.
  L.world.barrier();  // the directory exists
  const std::string tag = metadata.count("step") ? "step" + metadata.at("step") + "-" : std::string();
  const std::string of = "-of-" + pad5(R + 1) + ".safetensors";
  auto shard_name = [&](int i) { return "model-" + tag + pad5(i + 1) + of; };
  const bool writer = L.replica.rank() == 0;
  NamedTensors mine, rest;
  for (Param* p : model.params()) (p->sharded ? mine : rest).emplace_back(p->name, &p->w);
  if (writer) write_safetensors(dir + "/" + shard_name(1 + L.shard()), mine, meta);
  if (rank0) write_safetensors(dir + "/" + shard_name(0), rest, meta);
  // The index needs every writer's tensor names (a collective: every rank takes part). The writers
  // are world ranks 0 .. R-1, so rank s's names are those of shard s.
  std::string names;
  if (writer)
    for (auto& [n, t] : mine) names += n + "\n";
  std::vector<int64_t> counts;
  const std::vector<char> all = L.world.all_gather_v(std::vector<char>(names.begin(), names.end()), &counts);
  if (rank0) {
    nlohmann::json wm = nlohmann::json::object();
    int64_t total = 0;  // bytes: every expert shard holds as many as this rank's
    for (auto& [n, t] : rest) wm[n] = shard_name(0), total += t->numel() * int64_t(sizeof(float));
    for (auto& [n, t] : mine) total += R * t->numel() * int64_t(sizeof(float));
    std::set<std::string> keep = {kShardIndexFile};
    for (int i = 0; i <= R; ++i) keep.insert(shard_name(i));
    const std::string text(all.begin(), all.end());
    size_t pos = 0;
    for (int s = 0; s < R; ++s)
      for (const size_t end = pos + size_t(counts[s]); pos < end;) {
        const size_t nl = text.find('\n', pos);
        wm[text.substr(pos, nl - pos)] = shard_name(1 + s);
        pos = nl + 1;
      }
    const nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", wm}};
    atomic_write_file(dir + "/config.json", model.config().to_json().dump(2) + "\n");
    atomic_write_file(dir + "/" + kShardIndexFile, index.dump(2) + "\n");  // the commit point
    remove_stale(dir, keep, /*keep_index=*/true);
  }
  L.world.barrier();
}

std::unique_ptr<DecoderLM> load_pretrained(const std::string& dir,
                                           std::map<std::string, std::string>* metadata,
                                           const dist::ParallelLayout& layout, const LoadOptions& options) {
  if (!fs::is_directory(dir)) throw Error("[checkpoint] " + dir + ": not a directory");
  const std::string cfg_path = dir + "/config.json";
  if (!fs::exists(cfg_path)) throw Error("[checkpoint] " + dir + ": no config.json");
  ModelConfig cfg = ModelConfig::load(cfg_path);
  WeightStore store = WeightStore::open(dir);
  // A checkpoint written with tied embeddings may still carry lm_head.weight; one without it is
  // tied even if its config forgot to say so.
  if (!cfg.tie_word_embeddings && !store.has("lm_head.weight") && store.has("model.embed_tokens.weight"))
    throw Error("[checkpoint] " + dir + ": missing tensor 'lm_head.weight' (config.json says tie_word_embeddings is false)");
  const auto meta = store.metadata();
  if (meta.count("experts") && meta.at("experts") == "remote" && !layout.remote_experts && cfg.is_moe())
    throw Error("[checkpoint] " + dir + ": this model's experts live on expert servers; pass --remote-experts HOST:PORT");
  std::unique_ptr<DecoderLM> model;
  {
    std::optional<NoGradients> inference;
    std::optional<DeferredWeights> deferred;  // every weight is mapped or read below
    if (!options.for_training) inference.emplace(), deferred.emplace();
    model = std::make_unique<DecoderLM>(cfg, layout);
  }
  const bool map_16bit = !options.for_training && options.keep_16bit;
  for (Param* p : model->params()) {
    const DType stored = store.has(p->name) ? store.dtype(p->name) : DType::F32;  // absent: read_into says so
    if (map_16bit && p->may_stay_16bit && stored != DType::F32) {
      SafetensorsFile::Mapped m = store.map(p->name, p->w.shape());
      // 16-bit loads need 2-byte alignment; a file with odd offsets is read into f32 instead.
      if (m.data && reinterpret_cast<uintptr_t>(m.data) % alignof(uint16_t) == 0) {
        p->half = {static_cast<const uint16_t*>(m.data), stored, std::move(m.owner)};
        p->w.release_storage();
        continue;
      }
    }
    if (!p->w.has_storage()) p->w.allocate();
    store.read_into(p->name, p->w.data(), p->w.shape());
  }
  if (metadata) *metadata = store.metadata();
  return model;
}

int64_t checkpoint_step(const std::map<std::string, std::string>& metadata, const std::string& dir) {
  const auto it = metadata.find("step");
  if (it == metadata.end()) return -1;
  const std::string& v = it->second;
  // At most 18 digits: any such number fits int64_t.
  if (v.empty() || v.size() > 18 || v.find_first_not_of("0123456789") != std::string::npos)
    throw Error("[checkpoint] " + dir + ": the weights' metadata records step '" + v.substr(0, 40) +
                "', not a step number");
  return std::stoll(v);
}

}  // namespace moe
