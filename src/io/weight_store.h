#pragma once
// The weights of a Hugging Face checkpoint directory: DIR/model.safetensors, or the shards listed
// in DIR/model.safetensors.index.json ({"metadata": {...}, "weight_map": {tensor: shard file}}).
// Errors are moe::Error("[checkpoint] <dir>: ...") naming the file and tensor involved; a shard
// that is itself malformed reports "[safetensors] <shard path>: ...".
#include <map>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace moe {

// The index of a sharded checkpoint; its presence is the commit point of a sharded save.
inline constexpr const char* kShardIndexFile = "model.safetensors.index.json";

class WeightStore {
 public:
  // Safe against a save in progress: it yields the previous complete checkpoint or the new one.
  static WeightStore open(const std::string& dir);

  const std::string& dir() const { return dir_; }
  bool has(const std::string& name) const { return where_.count(name) > 0; }
  // Sorted.
  std::vector<std::string> names() const;
  Shape shape(const std::string& name) const;
  Tensor read(const std::string& name) const;
  // dst holds shape_numel(expected) floats. Throws
  // "[checkpoint] <file>: tensor '<name>' has shape [a, b], expected [c, d]" on a mismatch and
  // "[checkpoint] <dir>: missing tensor '<name>'" when the checkpoint lacks it.
  void read_into(const std::string& name, float* dst, const Shape& expected) const;
  DType dtype(const std::string& name) const;
  // The tensor's bytes in its stored dtype, memory-mapped in place (SafetensorsFile::map), with the
  // same shape check and errors as read_into.
  SafetensorsFile::Mapped map(const std::string& name, const Shape& expected) const;
  // Metadata of the single file, or of the first shard (by file name: model-00001-of-...).
  std::map<std::string, std::string> metadata() const;

 private:
  static WeightStore open_once(const std::string& dir);
  const SafetensorsFile& file_of(const std::string& name) const;
  const SafetensorsFile& checked(const std::string& name, const Shape& expected) const;
  std::string dir_;
  std::vector<SafetensorsFile> files_;   // sorted by file name
  std::map<std::string, size_t> where_;  // tensor -> index in files_
};

}  // namespace moe
