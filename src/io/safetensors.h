#pragma once
// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {str: str}}, then the
// data section (offsets relative to its start). Readers validate the whole header before any data
// is read; the engine computes in f32, so F16/BF16 are converted on read.
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace moe {

enum class DType { F32, F16, BF16 };
size_t dtype_size(DType t);
std::string dtype_name(DType t);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range within the data section
};

class SafetensorsFile {
 public:
  // Throws moe::Error("[safetensors] <path>: ...") on any malformed header.
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool has(const std::string& name) const { return index_.count(name) > 0; }
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  Tensor read(const std::string& name) const;
  // dst holds numel floats; numel must equal the tensor's element count.
  void read_into(const std::string& name, float* dst, int64_t numel) const;

 private:
  std::string path_;
  std::shared_ptr<int> fd_;  // shared so that copies stay valid; closed with the last copy
  uint64_t data_start_ = 0, data_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
};

using NamedTensors = std::vector<std::pair<std::string, const Tensor*>>;

// Writes F32 tensors in the given order, atomically, streaming (no copy of all data in memory).
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// The same in another dtype (BF16 rounds to nearest even); used to make test checkpoints.
void write_safetensors_as(const std::string& path, const NamedTensors& tensors, DType dtype,
                          const std::map<std::string, std::string>& metadata = {});

float bf16_to_f32(uint16_t h);
float f16_to_f32(uint16_t h);
uint16_t f32_to_bf16(float f);
uint16_t f32_to_f16(float f);

}  // namespace moe
