#include "io/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"

namespace moe {

using nlohmann::json;

size_t dtype_size(DType t) { return t == DType::F32 ? 4 : 2; }
std::string dtype_name(DType t) { return t == DType::F32 ? "F32" : t == DType::F16 ? "F16" : "BF16"; }

float bf16_to_f32(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000) << 16;
  const uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (mant == 0) {
      u = sign;
    } else {  // subnormal: value = mant * 2^-24
      float f = std::ldexp(float(mant), -24);
      std::memcpy(&u, &f, 4);
      u |= sign;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | (mant << 13);
  } else {
    u = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);  // quiet NaN
  return uint16_t((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint16_t sign = uint16_t((u >> 16) & 0x8000);
  const float a = std::fabs(f);
  if (std::isnan(f)) return sign | 0x7e00;
  if (a >= 65520.0f) return sign | 0x7c00;
  if (a < 6.103515625e-05f) return sign | uint16_t(std::nearbyint(a * 16777216.0f));  // subnormal
  int e;
  const float m = std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
  uint32_t mant = uint32_t(std::nearbyint((m * 2.0f - 1.0f) * 1024.0f));
  int exp = e - 1 + 15;
  if (mant == 1024) mant = 0, ++exp;
  return sign | uint16_t(exp << 10) | uint16_t(mant);
}

namespace {

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

}  // namespace

SafetensorsFile SafetensorsFile::open(const std::string& path) {
  SafetensorsFile f;
  f.path_ = path;
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) bad(path, std::string("cannot open: ") + std::strerror(errno));
  f.fd_ = std::shared_ptr<int>(new int(fd), [](int* p) {
    ::close(*p);
    delete p;
  });
  struct stat st;
  if (::fstat(fd, &st) != 0) bad(path, "cannot stat");
  if (S_ISDIR(st.st_mode)) bad(path, "is a directory");
  const uint64_t size = uint64_t(st.st_size);
  if (size < 8) bad(path, "file is " + std::to_string(size) + " bytes, too short for a safetensors header");
  unsigned char lenbuf[8];
  if (::pread(fd, lenbuf, 8, 0) != 8) bad(path, "cannot read the header length");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | lenbuf[i];
  if (n > size - 8)
    bad(path, "header length " + std::to_string(n) + " exceeds the file size " + std::to_string(size) + " (truncated or not a safetensors file)");
  if (n > (100u << 20)) bad(path, "header length " + std::to_string(n) + " is larger than 100 MB");
  std::string header(n, '\0');
  if (n && ::pread(fd, header.data(), n, 8) != ssize_t(n)) bad(path, "cannot read the header");
  f.data_start_ = 8 + n;
  f.data_size_ = size - 8 - n;
  json j;
  try {
    j = json::parse(header);
  } catch (const json::exception& e) {
    bad(path, std::string("header is not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) bad(path, "header is not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string& name = it.key();
    const json& v = it.value();
    if (name == "__metadata__") {
      if (!v.is_object()) bad(path, "__metadata__ is not an object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        if (!m.value().is_string()) bad(path, "__metadata__ value for '" + m.key() + "' is not a string");
        f.metadata_[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string where = "tensor '" + name + "'";
    if (!v.is_object()) bad(path, where + " is not a JSON object");
    if (!v.contains("dtype") || !v["dtype"].is_string()) bad(path, where + " has no string dtype");
    if (!v.contains("shape") || !v["shape"].is_array()) bad(path, where + " has no shape array");
    if (!v.contains("data_offsets") || !v["data_offsets"].is_array() || v["data_offsets"].size() != 2)
      bad(path, where + " has no data_offsets [begin, end]");
    TensorInfo ti;
    ti.name = name;
    const std::string dt = v["dtype"].get<std::string>();
    if (!parse_dtype(dt, ti.dtype)) bad(path, where + " has unsupported dtype " + dt + " (supported: F32, F16, BF16)");
    uint64_t numel = 1;
    for (const json& d : v["shape"]) {
      if (!d.is_number_unsigned()) bad(path, where + " has a shape entry that is not a non-negative integer: " + d.dump());
      const uint64_t dim = d.get<uint64_t>();
      if (dim > uint64_t(std::numeric_limits<int64_t>::max()) || (dim && numel > (uint64_t(1) << 62) / dim))
        bad(path, where + " has a shape whose size overflows");
      numel *= dim;
      ti.shape.push_back(int64_t(dim));
    }
    for (const json& o : v["data_offsets"])
      if (!o.is_number_unsigned()) bad(path, where + " has data_offsets that are not non-negative integers");
    ti.begin = v["data_offsets"][0].get<uint64_t>();
    ti.end = v["data_offsets"][1].get<uint64_t>();
    const uint64_t need = numel * dtype_size(ti.dtype);
    if (ti.end < ti.begin) bad(path, where + " has data_offsets [" + std::to_string(ti.begin) + ", " + std::to_string(ti.end) + "] with end before begin");
    if (ti.end - ti.begin != need)
      bad(path, where + " has data_offsets [" + std::to_string(ti.begin) + ", " + std::to_string(ti.end) + "] but shape " +
                    shape_str(ti.shape) + " of " + dt + " needs " + std::to_string(need) + " bytes");
    if (ti.end > f.data_size_)
      bad(path, where + " ends at byte " + std::to_string(ti.end) + " of a data section of " + std::to_string(f.data_size_) + " bytes (file truncated?)");
    f.index_[name] = f.tensors_.size();
    f.tensors_.push_back(std::move(ti));
  }
  std::vector<const TensorInfo*> order;
  for (auto& t : f.tensors_) order.push_back(&t);
  std::sort(order.begin(), order.end(), [](auto* a, auto* b) { return a->begin < b->begin || (a->begin == b->begin && a->end < b->end); });
  for (size_t i = 1; i < order.size(); ++i)
    if (order[i]->begin < order[i - 1]->end)
      bad(path, "tensor '" + order[i]->name + "' overlaps tensor '" + order[i - 1]->name + "'");
  return f;
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  auto it = index_.find(name);
  if (it == index_.end()) bad(path_, "no tensor '" + name + "'");
  return tensors_[it->second];
}

void SafetensorsFile::read_into(const std::string& name, float* dst, int64_t numel) const {
  const TensorInfo& ti = info(name);
  if (shape_numel(ti.shape) != numel)
    bad(path_, "tensor '" + name + "' has " + std::to_string(shape_numel(ti.shape)) + " elements, expected " + std::to_string(numel));
  const uint64_t bytes = ti.end - ti.begin;
  auto pread_all = [&](void* buf, uint64_t len, uint64_t off) {
    char* p = static_cast<char*>(buf);
    while (len > 0) {
      const ssize_t r = ::pread(*fd_, p, len, off_t(off));
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) bad(path_, "tensor '" + name + "': read failed (file truncated since it was opened?)");
      p += r, off += uint64_t(r), len -= uint64_t(r);
    }
  };
  if (ti.dtype == DType::F32) {
    pread_all(dst, bytes, data_start_ + ti.begin);
    return;
  }
  // Half precision: read in chunks and convert.
  std::vector<uint16_t> buf(std::min<uint64_t>(uint64_t(numel), 1 << 20));
  for (int64_t done = 0; done < numel;) {
    const int64_t m = std::min<int64_t>(int64_t(buf.size()), numel - done);
    pread_all(buf.data(), uint64_t(m) * 2, data_start_ + ti.begin + uint64_t(done) * 2);
    for (int64_t i = 0; i < m; ++i) dst[done + i] = ti.dtype == DType::BF16 ? bf16_to_f32(buf[i]) : f16_to_f32(buf[i]);
    done += m;
  }
}

Tensor SafetensorsFile::read(const std::string& name) const {
  Tensor t(info(name).shape);
  read_into(name, t.data(), t.numel());
  return t;
}

void write_safetensors_as(const std::string& path, const NamedTensors& tensors, DType dtype,
                          const std::map<std::string, std::string>& metadata) {
  json h = json::object();
  uint64_t off = 0;
  const size_t es = dtype_size(dtype);
  for (const auto& [name, t] : tensors) {
    if (h.contains(name)) throw Error("[safetensors] " + path + ": duplicate tensor name '" + name + "'");
    const uint64_t bytes = uint64_t(t->numel()) * es;
    h[name] = {{"dtype", dtype_name(dtype)}, {"shape", t->shape()}, {"data_offsets", {off, off + bytes}}};
    off += bytes;
  }
  if (!metadata.empty()) h["__metadata__"] = metadata;
  std::string hs = h.dump();
  hs.append((8 - hs.size() % 8) % 8, ' ');
  unsigned char len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(hs.size()) >> (8 * i));
  AtomicFileWriter w(path);
  w.write(len, 8);
  w.write(hs.data(), hs.size());
  std::vector<uint16_t> buf;
  for (const auto& [name, t] : tensors) {
    if (dtype == DType::F32) {
      w.write(t->data(), size_t(t->numel()) * 4);
      continue;
    }
    buf.resize(size_t(t->numel()));
    for (int64_t i = 0; i < t->numel(); ++i) buf[i] = dtype == DType::BF16 ? f32_to_bf16((*t)[i]) : f32_to_f16((*t)[i]);
    w.write(buf.data(), buf.size() * 2);
  }
  w.commit();
}

void write_safetensors(const std::string& path, const NamedTensors& tensors,
                       const std::map<std::string, std::string>& metadata) {
  write_safetensors_as(path, tensors, DType::F32, metadata);
}

}  // namespace moe
