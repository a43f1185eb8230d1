#pragma once
// The IDX format of MNIST and Fashion-MNIST (yann.lecun.com/exdb/mnist): two zero bytes, a type
// byte, the number of dimensions N, then N big-endian uint32 sizes and the row-major data. Only
// unsigned bytes (type 0x08) are read: what image and label files hold. Files may be gzipped (as
// Debian's dataset-fashion-mnist ships them). Errors are moe::Error("[idx] <file>: ...").
#include <cstdint>
#include <string>
#include <vector>

namespace moe {

struct IdxArray {
  std::vector<int64_t> shape;  // e.g. [60000, 28, 28] for images, [60000] for labels
  std::vector<uint8_t> data;   // prod(shape) bytes, row-major
};

// Reads FILE (plain or gzip, told apart by the gzip magic, not the name).
IdxArray read_idx(const std::string& path);
// The decoded bytes of an IDX file; `name` is only for messages (the fuzz target's entry point).
IdxArray parse_idx(const std::string& bytes, const std::string& name);

}  // namespace moe
