#pragma once
// The safetensors format: an 8-byte little-endian header length N, N bytes of JSON
// {"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}},
// then the data section (offsets relative to its start). Readers validate the whole header before
// any data is read; the engine computes in f32, so F16/BF16 are converted exactly on read.
#include <cstdint>
#include <map>
#include <mutex>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace moe {


struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range [begin, end) within the data section
};

// An open safetensors file: the validated header in memory, the data read on demand with pread.
// Copies share the file descriptor (closed with the last copy); reads are safe from many threads.
class SafetensorsFile {
 public:
  // Reads and validates the whole header. Throws moe::Error("[safetensors] <path>: ...") naming
  // the tensor involved on any malformed header (see safetensors.cpp for the full list of checks).
  static SafetensorsFile open(const std::string& path);

  const std::string& path() const { return path_; }
  // In header order.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  bool has(const std::string& name) const { return index_.count(name) > 0; }
  // Throws moe::Error naming the file and the tensor when it is absent.
  const TensorInfo& info(const std::string& name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

  // The tensor converted to f32.
  Tensor read(const std::string& name) const;
  // dst holds numel floats; numel must equal the tensor's element count.
  void read_into(const std::string& name, float* dst, int64_t numel) const;

  // The tensor's bytes in place in the file, memory-mapped read-only: the whole file is mapped on
  // the first call, and the kernel reads pages as they are first touched, so a model starts to run
  // before its file is read and its weights cost page cache, not a copy. The bytes stay valid while
  // `owner` (or this file) lives.
  struct Mapped {
    const void* data = nullptr;
    std::shared_ptr<const void> owner;
  };
  Mapped map(const std::string& name) const;

 private:
  struct Fd {
    int fd = -1;
    explicit Fd(int f) : fd(f) {}
    ~Fd();
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
  };
  std::string path_;
  std::shared_ptr<const Fd> fd_;
  struct Mapping;
  std::shared_ptr<Mapping> mapping_;  // shared by copies; mapped on the first map()
  uint64_t data_start_ = 0, data_size_ = 0;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;  // name -> position in tensors_
  std::map<std::string, std::string> metadata_;
};

using NamedTensors = std::vector<std::pair<std::string, const Tensor*>>;

// Writes F32 tensors, data in the given order, header padded with spaces to a multiple of 8 bytes,
// atomically and streaming (never a copy of all the data in memory).
void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// The same in another dtype (round to nearest even); used to make test checkpoints.
void write_safetensors_as(const std::string& path, const NamedTensors& tensors, DType dtype,
                          const std::map<std::string, std::string>& metadata = {});

}  // namespace moe
