#include "io/weight_store.h"

#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe {

namespace fs = std::filesystem;

WeightStore WeightStore::open(const std::string& dir) {
  WeightStore ws;
  ws.dir_ = dir;
  const std::string index = dir + "/model.safetensors.index.json";
  if (fs::exists(index)) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(index));
    } catch (const nlohmann::json::exception& e) {
      throw Error("[checkpoint] " + index + ": not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object())
      throw Error("[checkpoint] " + index + ": no \"weight_map\" object");
    std::map<std::string, size_t> shard_index;
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
      if (!it.value().is_string()) throw Error("[checkpoint] " + index + ": weight_map entry for '" + it.key() + "' is not a file name");
      const std::string shard = it.value().get<std::string>();
      if (shard.find('/') != std::string::npos || shard == "..")
        throw Error("[checkpoint] " + index + ": shard name '" + shard + "' must be a file in the checkpoint directory");
      auto s = shard_index.find(shard);
      if (s == shard_index.end()) {
        const std::string p = dir + "/" + shard;
        if (!fs::exists(p)) throw Error("[checkpoint] " + index + ": shard '" + shard + "' listed for tensor '" + it.key() + "' does not exist");
        s = shard_index.emplace(shard, ws.files_.size()).first;
        ws.files_.push_back(SafetensorsFile::open(p));
      }
      if (!ws.files_[s->second].has(it.key()))
        throw Error("[checkpoint] " + dir + "/" + shard + ": tensor '" + it.key() + "' is listed in the index but absent from the shard");
      ws.where_[it.key()] = s->second;
    }
    if (ws.files_.empty()) throw Error("[checkpoint] " + index + ": the weight_map is empty");
    return ws;
  }
  const std::string single = dir + "/model.safetensors";
  if (!fs::exists(single)) throw Error("[checkpoint] " + dir + ": no model.safetensors or model.safetensors.index.json");
  ws.files_.push_back(SafetensorsFile::open(single));
  for (const TensorInfo& t : ws.files_[0].tensors()) ws.where_[t.name] = 0;
  return ws;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  for (const auto& [n, i] : where_) out.push_back(n);
  return out;
}

const SafetensorsFile& WeightStore::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) throw Error("[checkpoint] " + dir_ + ": missing tensor '" + name + "'");
  return files_[it->second];
}

Shape WeightStore::shape(const std::string& name) const { return file_of(name).info(name).shape; }
Tensor WeightStore::read(const std::string& name) const { return file_of(name).read(name); }

void WeightStore::read_into(const std::string& name, float* dst, const Shape& expected) const {
  const SafetensorsFile& f = file_of(name);
  const Shape& s = f.info(name).shape;
  if (s != expected)
    throw Error("[checkpoint] " + f.path() + ": tensor '" + name + "' has shape " + shape_str(s) + ", expected " + shape_str(expected));
  f.read_into(name, dst, shape_numel(expected));
}

std::map<std::string, std::string> WeightStore::metadata() const { return files_.front().metadata(); }

}  // namespace moe
