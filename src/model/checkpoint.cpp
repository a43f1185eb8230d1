#include "model/checkpoint.h"

#include <filesystem>

#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "io/weight_store.h"

namespace moe {

namespace fs = std::filesystem;

void save_pretrained(const std::string& dir, DecoderLM& model,
                     const std::map<std::string, std::string>& metadata) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error("[checkpoint] cannot create directory " + dir + ": " + ec.message());
  std::vector<std::pair<std::string, const Tensor*>> tensors;
  for (Param* p : model.params()) tensors.emplace_back(p->name, &p->w);
  std::map<std::string, std::string> meta = metadata;
  meta["format"] = "pt";
  write_safetensors(dir + "/model.safetensors", tensors, meta);
  atomic_write_file(dir + "/config.json", model.config().to_json().dump(2) + "\n");
}

std::unique_ptr<DecoderLM> load_pretrained(const std::string& dir,
                                           std::map<std::string, std::string>* metadata) {
  if (!fs::is_directory(dir)) throw Error("[checkpoint] " + dir + ": not a directory");
  const std::string cfg_path = dir + "/config.json";
  if (!fs::exists(cfg_path)) throw Error("[checkpoint] " + dir + ": no config.json");
  ModelConfig cfg = ModelConfig::load(cfg_path);
  WeightStore store = WeightStore::open(dir);
  // A checkpoint written with tied embeddings may still carry lm_head.weight; one without it is
  // tied even if its config forgot to say so.
  if (!cfg.tie_word_embeddings && !store.has("lm_head.weight") && store.has("model.embed_tokens.weight"))
    throw Error("[checkpoint] " + dir + ": missing tensor 'lm_head.weight' (config.json says tie_word_embeddings is false)");
  auto model = std::make_unique<DecoderLM>(cfg);
  for (Param* p : model->params()) store.read_into(p->name, p->w.data(), p->w.shape());
  if (metadata) *metadata = store.metadata();
  return model;
}

}  // namespace moe
