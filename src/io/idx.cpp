#include "io/idx.h"

#include <zlib.h>

#include <cstdio>
#include <memory>

#include "core/error.h"

namespace moe {

namespace {

// Larger than any image set people train on here (Fashion-MNIST's is 47 MB); a bound so that a
// corrupt or hostile header cannot ask for terabytes, and a gzip bomb stops decompressing early.
constexpr uint64_t kMaxIdxBytes = uint64_t(4) << 30;

[[noreturn]] void idx_error(const std::string& name, const std::string& what) { throw Error("[idx] " + name + ": " + what); }

uint32_t read_be32(const unsigned char* p) { return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3]; }

// The whole file, decompressed when it is gzip (zlib's gz* functions read plain files as they are).
std::string read_decompressed(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) idx_error(path, "cannot open the file");
  std::unique_ptr<gzFile_s, int (*)(gzFile)> guard(f, gzclose);
  std::string out;
  char buf[1 << 16];
  for (;;) {
    const int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int code = 0;
      const char* msg = gzerror(f, &code);
      idx_error(path, std::string("cannot read the file (") + (code == Z_ERRNO ? "I/O error" : msg) + ")");
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
    if (out.size() > kMaxIdxBytes + 4 + 4 * 255) idx_error(path, "larger than 4 GiB: not an image set this reader takes");
  }
  // gzread stops at a truncated gzip stream without an error; gzerror tells.
  int code = 0;
  gzerror(f, &code);
  if (code != Z_OK && code != Z_BUF_ERROR) idx_error(path, "the gzip stream is corrupt");
  return out;
}

}  // namespace

IdxArray parse_idx(const std::string& bytes, const std::string& name) {
  const auto* p = reinterpret_cast<const unsigned char*>(bytes.data());
  if (bytes.size() < 4) idx_error(name, "too short for an IDX header (" + std::to_string(bytes.size()) + " bytes)");
  if (p[0] != 0 || p[1] != 0) idx_error(name, "not an IDX file (the first two bytes must be zero)");
  if (p[2] != 0x08)
    idx_error(name, "element type 0x" + std::string(1, "0123456789abcdef"[p[2] >> 4]) + "0123456789abcdef"[p[2] & 15] +
                  " is not supported (only unsigned bytes, 0x08)");
  const int dims = p[3];
  if (dims < 1) idx_error(name, "an IDX file needs at least one dimension");
  if (bytes.size() < 4 + 4 * size_t(dims)) idx_error(name, "truncated in the header (" + std::to_string(dims) + " dimensions)");
  IdxArray a;
  uint64_t total = 1;
  for (int i = 0; i < dims; ++i) {
    const uint32_t n = read_be32(p + 4 + 4 * i);
    if (n == 0) idx_error(name, "dimension " + std::to_string(i) + " is 0");
    total *= n;
    if (total > kMaxIdxBytes) idx_error(name, "the sizes in the header ask for more than 4 GiB");
    a.shape.push_back(int64_t(n));
  }
  const size_t head = 4 + 4 * size_t(dims);
  if (bytes.size() - head != total)
    idx_error(name, "the header promises " + std::to_string(total) + " bytes of data, the file holds " +
                  std::to_string(bytes.size() - head) + (bytes.size() - head < total ? " (truncated)" : " (trailing bytes)"));
  a.data.assign(p + head, p + bytes.size());
  return a;
}

IdxArray read_idx(const std::string& path) { return parse_idx(read_decompressed(path), path); }

}  // namespace moe
