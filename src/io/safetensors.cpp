#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe {

// The format is little-endian and F32 data is read straight into float buffers.
static_assert(std::endian::native == std::endian::little, "safetensors IO assumes a little-endian host");

// ordered_json keeps the header's key order, so tensors() lists tensors as the file does and the
// writer lists them in the order it was given.
using ojson = nlohmann::ordered_json;

// ---- reading --------------------------------------------------------------------------------

namespace {

constexpr uint64_t kMaxHeader = uint64_t(100) << 20;
constexpr uint64_t kMaxBytes = uint64_t(1) << 62;  // tensor byte sizes stay far from int64/off_t overflow
constexpr int kMaxDepth = 16;                      // a valid header nests 3 deep

[[noreturn]] void bad(const std::string& path, const std::string& msg) {
  throw Error("[safetensors] " + path + ": " + msg);
}

bool parse_dtype(const std::string& s, DType& out) {
  if (s == "F32") out = DType::F32;
  else if (s == "F16") out = DType::F16;
  else if (s == "BF16") out = DType::BF16;
  else return false;
  return true;
}

// Appends instead of `"[" + std::to_string(b)`, which trips GCC 12's false -Wrestrict (PR 105329).
std::string offsets_str(uint64_t b, uint64_t e) {
  std::string s = "[";
  s += std::to_string(b);
  s += ", ";
  s += std::to_string(e);
  s += "]";
  return s;
}

// A short description of a JSON value for messages; never recurses into containers.
std::string describe(const ojson& v) {
  if (v.is_number() || v.is_boolean() || v.is_null()) return v.dump();
  if (v.is_string()) return v.get_ref<const std::string&>().size() <= 40 ? v.dump() : "a long string";
  return std::string("an ") + (v.is_array() ? "array" : "object");
}

// Deepest nesting of [ and { outside strings; stops counting past limit. Guards the JSON parser
// and our messages against pathological headers ("[[[[...").
int json_depth(const std::string& s, int limit) {
  int depth = 0, deepest = 0;
  bool in_str = false, esc = false;
  for (const char c : s) {
    if (in_str) {
      if (esc) esc = false;
      else if (c == '\\') esc = true;
      else if (c == '"') in_str = false;
    } else if (c == '"') {
      in_str = true;
    } else if (c == '[' || c == '{') {
      deepest = std::max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  return deepest;
}

// what: the thing being read, for messages ("header", "tensor 'x'").
void pread_all(int fd, void* buf, uint64_t len, uint64_t off, const std::string& path, const std::string& what) {
  char* p = static_cast<char*>(buf);
  while (len > 0) {
    const ssize_t r = ::pread(fd, p, size_t(len), off_t(off));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      const int err = errno;
      bad(path, what + ": read failed: " + std::strerror(err));
    }
    if (r == 0) bad(path, what + ": unexpected end of file (truncated since it was opened?)");
    p += r;
    off += uint64_t(r);
    len -= uint64_t(r);
  }
}

}  // namespace

SafetensorsFile::Fd::~Fd() {
  if (fd >= 0) ::close(fd);
}

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  // O_NONBLOCK: opening a FIFO must not hang; it has no effect on regular files.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    bad(path, std::string("cannot open: ") + std::strerror(err));
  }
  try {
    f.fd_ = std::make_shared<const Fd>(fd);
    f.mapping_ = std::make_shared<Mapping>();
  } catch (...) {
    ::close(fd);
    throw;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    const int err = errno;
    bad(path, std::string("cannot stat: ") + std::strerror(err));
  }
  if (S_ISDIR(st.st_mode)) bad(path, "is a directory, expected a .safetensors file");
  if (!S_ISREG(st.st_mode)) bad(path, "is not a regular file");
  const uint64_t size = uint64_t(st.st_size);
  if (size < 8)
    bad(path, "file is " + std::to_string(size) + " bytes, too short for a safetensors header (8-byte length + JSON)");

  unsigned char lenbuf[8];
  pread_all(fd, lenbuf, 8, 0, path, "header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | lenbuf[i];
  if (n > size - 8)
    bad(path, "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(size) +
                  " (truncated, or not a safetensors file)");
  if (n > kMaxHeader) bad(path, "header length " + std::to_string(n) + " is larger than the 100 MB limit");
  std::string header(size_t(n), '\0');
  pread_all(fd, header.data(), n, 8, path, "header");
  f.data_start_ = 8 + n;
  f.data_size_ = size - 8 - n;

  if (const int depth = json_depth(header, kMaxDepth); depth > kMaxDepth)
    bad(path, "header JSON nests more than " + std::to_string(kMaxDepth) + " levels deep");
  std::set<std::string> seen;
  std::string duplicate;
  ojson j;
  try {
    j = ojson::parse(header, [&](int depth, ojson::parse_event_t ev, ojson& parsed) {
      if (ev == ojson::parse_event_t::key && depth == 1 && parsed.is_string() &&
          !seen.insert(parsed.get<std::string>()).second && duplicate.empty())
        duplicate = parsed.get<std::string>();
      return true;
    });
  } catch (const ojson::exception& e) {
    bad(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) bad(path, std::string("header is not a JSON object but ") + describe(j));
  if (!duplicate.empty()) bad(path, "tensor '" + duplicate + "' appears twice in the header");

  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const ojson& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad(path, "__metadata__ is not an object of strings");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string())
          bad(path, "__metadata__ value for '" + m.key() + "' is not a string but " + describe(m.value()));
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object()) bad(path, where + " is not a JSON object but " + describe(v));
    auto field = [&](const char* key) -> const ojson& {
      const auto fi = v.find(key);
      if (fi == v.end()) bad(path, where + " has no \"" + key + "\"");
      return *fi;
    };
    const ojson& jdtype = field("dtype");
    const ojson& jshape = field("shape");
    const ojson& joffsets = field("data_offsets");

    TensorInfo ti;
    ti.name = name;
    if (!jdtype.is_string()) bad(path, where + " has a dtype that is not a string but " + describe(jdtype));
    const std::string dt = jdtype.get<std::string>();
    if (!parse_dtype(dt, ti.dtype))
      bad(path, where + " has unsupported dtype " + describe(jdtype) + " (supported: F32, F16, BF16)");
    const uint64_t esize = dtype_size(ti.dtype);

    if (!jshape.is_array()) bad(path, where + " has a shape that is not an array but " + describe(jshape));
    uint64_t numel = 1;
    for (const ojson& d : jshape) {
      if (d.is_number_integer() && !d.is_number_unsigned() && d.get<int64_t>() < 0)
        bad(path, where + " has negative dimension " + d.dump() + " in its shape");
      if (!d.is_number_unsigned())
        bad(path, where + " has a shape entry that is not a non-negative integer: " + describe(d));
      const uint64_t dim = d.get<uint64_t>();
      // numel * esize <= kMaxBytes, checked left to right like shape_numel() multiplies
      if (dim != 0 && numel > kMaxBytes / esize / dim)
        bad(path, where + " has a shape whose byte size overflows (dimension " + std::to_string(dim) + ")");
      numel *= dim;
      ti.shape.push_back(int64_t(dim));
    }

    if (!joffsets.is_array() || joffsets.size() != 2 || !joffsets[0].is_number_unsigned() ||
        !joffsets[1].is_number_unsigned())
      bad(path, where + " has data_offsets that are not [begin, end] with non-negative integers");
    ti.begin = joffsets[0].get<uint64_t>();
    ti.end = joffsets[1].get<uint64_t>();
    if (ti.end < ti.begin)
      bad(path, where + " has data_offsets " + offsets_str(ti.begin, ti.end) + " with end before begin");
    const uint64_t need = numel * esize;
    if (ti.end - ti.begin != need)
      bad(path, where + " has data_offsets " + offsets_str(ti.begin, ti.end) + " but shape " + shape_str(ti.shape) +
                    " of " + dt + " needs " + std::to_string(need) + " bytes");
    if (ti.end > f.data_size_)
      bad(path, where + " has data_offsets " + offsets_str(ti.begin, ti.end) + " beyond the data section of " +
                    std::to_string(f.data_size_) + " bytes (file truncated?)");
    f.index_[name] = f.tensors_.size();
    f.tensors_.push_back(std::move(ti));
  }

  // Overlap: sort the non-empty ranges by begin; each must start at or after every earlier end.
  std::vector<const TensorInfo*> order;
  for (const auto& t : f.tensors_)
    if (t.end > t.begin) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  const TensorInfo* reach = nullptr;  // the range that ends last so far
  for (const TensorInfo* t : order) {
    if (reach && t->begin < reach->end)
      bad(path, "tensor '" + t->name + "' (data_offsets " + offsets_str(t->begin, t->end) + ") overlaps tensor '" +
                    reach->name + "' (data_offsets " + offsets_str(reach->begin, reach->end) + ")");
    if (!reach || t->end > reach->end) reach = t;
  }
  return f;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = index_.find(name);
  if (it == index_.end()) bad(path_, "no tensor '" + name + "' in this file");
  return tensors_[it->second];
}

void SafetensorsFile::read_into(const std::string& name, float* dst, int64_t numel) const {
  const TensorInfo& ti = info(name);
  const int64_t have = shape_numel(ti.shape);
  if (have != numel)
    bad(path_, "tensor '" + name + "' has " + std::to_string(have) + " elements (shape " + shape_str(ti.shape) +
                   "), expected " + std::to_string(numel));
  if (!fd_) bad(path_, "tensor '" + name + "': file is not open");
  const int fd = fd_->fd;
  if (ti.dtype == DType::F32) {
    pread_all(fd, dst, ti.end - ti.begin, data_start_ + ti.begin, path_, "tensor '" + name + "'");
    return;
  }
  // Half precision: read in chunks and widen.
  std::vector<uint16_t> buf(size_t(std::min<int64_t>(numel, int64_t(1) << 16)));
  for (int64_t done = 0; done < numel;) {
    const int64_t m = std::min<int64_t>(int64_t(buf.size()), numel - done);
    pread_all(fd, buf.data(), uint64_t(m) * 2, data_start_ + ti.begin + uint64_t(done) * 2, path_,
              "tensor '" + name + "'");
    float* out = dst + done;
    if (ti.dtype == DType::BF16)
      for (int64_t i = 0; i < m; ++i) out[i] = bf16_to_f32(buf[size_t(i)]);
    else
      for (int64_t i = 0; i < m; ++i) out[i] = f16_to_f32(buf[size_t(i)]);
    done += m;
  }
}

struct SafetensorsFile::Mapping {
  std::once_flag once;
  void* base = nullptr;
  size_t size = 0;
  int error = 0;  // errno of a failed mmap
  ~Mapping() {
    if (base) munmap(base, size);
  }
};

SafetensorsFile::Mapped SafetensorsFile::map(const std::string& name) const {
  const TensorInfo& ti = info(name);
  if (!fd_ || !mapping_) bad(path_, "tensor '" + name + "': file is not open");
  if (ti.end == ti.begin) return {};  // no bytes (a zero-size tensor): nothing to map
  Mapping& m = *mapping_;
  std::call_once(m.once, [&] {
    const size_t size = size_t(data_start_ + data_size_);
    void* p = mmap(nullptr, size, PROT_READ, MAP_SHARED, fd_->fd, 0);
    if (p == MAP_FAILED) m.error = errno;
    else m.base = p, m.size = size;
  });
  if (!m.base) bad(path_, "cannot memory-map the file: " + std::string(std::strerror(m.error)));
  // The mapping is kept alive by an aliasing pointer: owner shares the Mapping's lifetime.
  return {static_cast<const char*>(m.base) + data_start_ + ti.begin, std::shared_ptr<const void>(mapping_, m.base)};
}

Tensor SafetensorsFile::read(const std::string& name) const {
  Tensor t(info(name).shape);
  read_into(name, t.data(), t.numel());
  return t;
}

// ---- writing --------------------------------------------------------------------------------

void write_safetensors_as(const std::string& path, const NamedTensors& tensors, DType dtype,
                          const std::map<std::string, std::string>& metadata) {
  ojson h = ojson::object();
  uint64_t off = 0;
  const uint64_t es = dtype_size(dtype);
  std::set<std::string> names;
  for (const auto& [name, t] : tensors) {
    MOE_ASSERT(t != nullptr);
    if (name == "__metadata__") bad(path, "'__metadata__' cannot be used as a tensor name");
    if (!names.insert(name).second) bad(path, "duplicate tensor name '" + name + "'");
    const uint64_t bytes = uint64_t(t->numel()) * es;
    ojson entry = ojson::object();
    entry["dtype"] = dtype_name(dtype);
    entry["shape"] = t->shape();
    entry["data_offsets"] = ojson::array({off, off + bytes});
    h[name] = std::move(entry);
    off += bytes;
  }
  if (!metadata.empty()) {
    ojson m = ojson::object();
    for (const auto& [k, v] : metadata) m[k] = v;
    h["__metadata__"] = std::move(m);
  }
  std::string hs;
  try {
    hs = h.dump();
  } catch (const ojson::exception& e) {
    bad(path, std::string("a tensor name or metadata string is not valid UTF-8 (") + e.what() + ")");
  }
  hs.append((8 - hs.size() % 8) % 8, ' ');  // the data section starts 8-byte aligned
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(hs.size()) >> (8 * i));

  AtomicFileWriter w(path);
  w.write(len, 8);
  w.write(hs.data(), hs.size());
  std::vector<uint16_t> buf;
  for (const auto& [name, t] : tensors) {
    if (dtype == DType::F32) {
      w.write(t->data(), size_t(t->numel()) * sizeof(float));
      continue;
    }
    // Narrow in bounded chunks: never a second copy of a whole tensor.
    const float* src = t->data();
    for (int64_t done = 0, n = t->numel(); done < n;) {
      const int64_t m = std::min<int64_t>(n - done, int64_t(1) << 16);
      buf.resize(size_t(m));
      for (int64_t i = 0; i < m; ++i)
        buf[size_t(i)] = dtype == DType::BF16 ? f32_to_bf16(src[done + i]) : f32_to_f16(src[done + i]);
      w.write(buf.data(), buf.size() * sizeof(uint16_t));
      done += m;
    }
  }
  w.commit();
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_safetensors_as(path, tensors, DType::F32, metadata);
}

}  // namespace moe
