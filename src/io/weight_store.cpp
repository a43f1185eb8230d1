#include "io/weight_store.h"

#include <chrono>
#include <filesystem>
#include <set>
#include <system_error>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe {

namespace fs = std::filesystem;

namespace {

constexpr const char* kSingle = "model.safetensors";

bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

bool path_exists(const fs::path& p) {
  std::error_code ec;
  return fs::exists(p, ec);
}

}  // namespace

WeightStore WeightStore::open(const std::string& dir) {
  // A sharded save writes its shards under new names, then the index (its commit point), then
  // removes the previous shards. A reader that read the old index may find those shards gone;
  // the index then names the new ones: read it again. Shards once opened stay readable after
  // their removal, so what is read is one save's whole set, never a mix.
  const fs::path index = fs::path(dir) / kShardIndexFile;
  auto index_text = [&] {
    try {
      return path_exists(index) ? read_file(index.string()) : std::string();
    } catch (const Error&) {
      return std::string();
    }
  };
  // Each retry follows a save that committed meanwhile, so the writer is making progress; saves
  // back to back can beat a slow reader (a loaded machine, a sanitizer build) many times in a row,
  // so the bound is time, not a count of attempts.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  for (;;) {
    const std::string before = index_text();
    try {
      return open_once(dir);
    } catch (const Error&) {
      if (before.empty() || index_text() == before || std::chrono::steady_clock::now() > deadline) throw;
    }
  }
}

WeightStore WeightStore::open_once(const std::string& dir) {
  WeightStore ws;
  ws.dir_ = dir;
  const auto bad = [&](const std::string& msg) -> Error { return Error("[checkpoint] " + dir + ": " + msg); };
  const fs::path index = fs::path(dir) / kShardIndexFile;

  if (path_exists(index)) {
    std::string text;
    try {
      text = read_file(index.string());
    } catch (const Error& e) {
      throw bad(std::string("cannot read ") + kShardIndexFile + " (" + e.what() + ")");
    }
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(text);
    } catch (const nlohmann::json::exception& e) {
      throw bad(std::string(kShardIndexFile) + " is not valid JSON (" + e.what() + ")");
    }
    if (!j.is_object()) throw bad(std::string(kShardIndexFile) + " is not a JSON object");
    const auto wm = j.find("weight_map");
    if (wm == j.end() || !wm->is_object()) throw bad(std::string(kShardIndexFile) + " has no \"weight_map\" object");
    if (wm->empty()) throw bad(std::string(kShardIndexFile) + " has an empty \"weight_map\"");

    // Validate the map and collect the distinct shards, then open them in file-name order.
    std::set<std::string> shards;
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      if (!it.value().is_string())
        throw bad(std::string(kShardIndexFile) + ": the weight_map entry for tensor '" + it.key() + "' is not a file name");
      const std::string& shard = it.value().get_ref<const std::string&>();
      if (shard.empty() || shard == "." || shard == ".." || shard.find('/') != std::string::npos)
        throw bad(std::string(kShardIndexFile) + ": shard name '" + shard + "' for tensor '" + it.key() +
                  "' must be a file in the checkpoint directory");
      if (shards.insert(shard).second && !is_file(fs::path(dir) / shard))
        throw bad(std::string(kShardIndexFile) + ": shard '" + shard + "' (listed for tensor '" + it.key() + "') " +
                  (path_exists(fs::path(dir) / shard) ? "is not a regular file" : "does not exist"));
    }
    std::map<std::string, size_t> shard_index;
    for (const std::string& shard : shards) {
      shard_index[shard] = ws.files_.size();
      ws.files_.push_back(SafetensorsFile::open((fs::path(dir) / shard).string()));
    }
    for (auto it = wm->begin(); it != wm->end(); ++it) {
      const std::string& shard = it.value().get_ref<const std::string&>();
      const size_t fi = shard_index.at(shard);
      if (!ws.files_[fi].has(it.key()))
        throw bad("tensor '" + it.key() + "' is listed in " + kShardIndexFile + " under '" + shard +
                  "' but that shard has no such tensor");
      ws.where_[it.key()] = fi;
    }
    return ws;
  }

  const fs::path single = fs::path(dir) / kSingle;
  if (!path_exists(single)) throw bad("no model.safetensors or model.safetensors.index.json");
  ws.files_.push_back(SafetensorsFile::open(single.string()));
  for (const TensorInfo& t : ws.files_[0].tensors()) ws.where_[t.name] = 0;
  return ws;
}

std::vector<std::string> WeightStore::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [n, i] : where_) out.push_back(n);
  return out;
}

const SafetensorsFile& WeightStore::file_of(const std::string& name) const {
  const auto it = where_.find(name);
  if (it == where_.end()) throw Error("[checkpoint] " + dir_ + ": missing tensor '" + name + "'");
  return files_[it->second];
}

Shape WeightStore::shape(const std::string& name) const { return file_of(name).info(name).shape; }

Tensor WeightStore::read(const std::string& name) const { return file_of(name).read(name); }

const SafetensorsFile& WeightStore::checked(const std::string& name, const Shape& expected) const {
  const SafetensorsFile& f = file_of(name);
  const Shape& s = f.info(name).shape;
  if (s != expected)
    throw Error("[checkpoint] " + f.path() + ": tensor '" + name + "' has shape " + shape_str(s) + ", expected " +
                shape_str(expected));
  return f;
}

void WeightStore::read_into(const std::string& name, float* dst, const Shape& expected) const {
  checked(name, expected).read_into(name, dst, shape_numel(expected));
}

DType WeightStore::dtype(const std::string& name) const { return file_of(name).info(name).dtype; }

SafetensorsFile::Mapped WeightStore::map(const std::string& name, const Shape& expected) const {
  return checked(name, expected).map(name);
}

std::map<std::string, std::string> WeightStore::metadata() const {
  return files_.empty() ? std::map<std::string, std::string>{} : files_.front().metadata();
}

}  // namespace moe
