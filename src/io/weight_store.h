#pragma once
// The weights of a Hugging Face checkpoint directory: DIR/model.safetensors, or the shards listed
// in DIR/model.safetensors.index.json ({"weight_map": {tensor: shard file}}).
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace moe {

class WeightStore {
 public:
  static WeightStore open(const std::string& dir);

  bool has(const std::string& name) const { return where_.count(name) > 0; }
  std::vector<std::string> names() const;
  Shape shape(const std::string& name) const;
  Tensor read(const std::string& name) const;
  // Throws "[checkpoint] <file>: tensor '<name>' has shape [..], expected [..]" or "missing tensor".
  void read_into(const std::string& name, float* dst, const Shape& expected) const;
  // Metadata of the single file, or of the first shard.
  std::map<std::string, std::string> metadata() const;

 private:
  const SafetensorsFile& file_of(const std::string& name) const;
  std::string dir_;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor -> index in files_
};

}  // namespace moe
