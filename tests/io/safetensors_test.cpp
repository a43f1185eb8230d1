// safetensors: bit-exact round trips, exact half-precision readers, and a clear moe::Error (naming
// the file and, where one is involved, the tensor) for every kind of corrupt file, never a crash.
#include "io/safetensors.h"

#include <gtest/gtest.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <optional>

#include "core/error.h"
#include "core/rng.h"
#include "io/atomic_file.h"
#include "../test_util.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

// A fresh directory per test, removed afterwards.
using test::ScratchDir;

// Plain write, no fsync: the fuzz loop writes thousands of files.
void put(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), std::streamsize(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// For the fuzz loop: one descriptor kept open and rewritten in place. Truncating to zero and
// closing, as put() does, makes ext4 flush the file (auto_da_alloc): milliseconds per case.
class ScratchFile {
 public:
  explicit ScratchFile(const std::string& path) : fd_(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644)) {
    if (fd_ < 0) throw std::runtime_error("cannot create " + path);
  }
  ~ScratchFile() { ::close(fd_); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  void set(const std::string& bytes) {
    ASSERT_EQ(::ftruncate(fd_, off_t(bytes.size())), 0);
    ASSERT_EQ(::pwrite(fd_, bytes.data(), bytes.size(), 0), ssize_t(bytes.size()));
  }

 private:
  int fd_;
};

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(uint8_t(n >> (8 * i)));
  return s;
}

// The bytes of a file with the given header JSON, `data` as its data section, and a length field
// of `claimed_len` (the header's true size when 0).
std::string raw(const std::string& header, const std::string& data, uint64_t claimed_len = 0) {
  return le64(claimed_len ? claimed_len : header.size()) + header + data;
}

std::string u16s(std::initializer_list<uint16_t> v) {
  std::string s;
  for (uint16_t x : v) s += char(x & 0xff), s += char(x >> 8);
  return s;
}

// The message of the moe::Error thrown by opening path and reading every tensor (or `tensor`).
std::string error_of(const std::string& path, const std::string& tensor = "") {
  try {
    SafetensorsFile f = SafetensorsFile::open(path);
    if (!tensor.empty()) f.read(tensor);
    for (const auto& t : f.tensors()) f.read(t.name);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

uint32_t bits(float f) { return std::bit_cast<uint32_t>(f); }
float from_bits(uint32_t u) { return std::bit_cast<float>(u); }

TEST(Safetensors, RoundTripF32IsBitExact) {
  ScratchDir d;
  // Special values by bit pattern: -0, smallest/largest denormal, +-inf, FLT_MAX, quiet and
  // signalling NaNs with payloads, negative NaN.
  const uint32_t special[] = {0x80000000u, 0x00000001u, 0x007fffffu, 0x7f800000u, 0xff800000u, 0x7f7fffffu,
                              0x7fc00001u, 0x7fa5a5a5u, 0xffc12345u, 0x3f800000u, 0x00800000u, 0xbeaaaaabu};
  Tensor a({3, 4}), b({5}), scalar(Shape{}), empty({0, 3});
  for (int i = 0; i < 12; ++i) std::memcpy(a.data() + i, &special[i], 4);
  Rng rng(3);
  for (int i = 0; i < 5; ++i) b[i] = float(rng.normal());
  scalar[0] = 42.5f;
  const std::string p = d.file("rt.safetensors");
  write_safetensors(p, {{"z.first", &a}, {"a.second", &b}, {"scalar", &scalar}, {"empty", &empty}});

  SafetensorsFile f = SafetensorsFile::open(p);
  ASSERT_EQ(f.tensors().size(), 4u);
  // tensors() keeps the order the tensors were written in, not alphabetical order.
  EXPECT_EQ(f.tensors()[0].name, "z.first");
  EXPECT_EQ(f.tensors()[1].name, "a.second");
  EXPECT_EQ(f.tensors()[0].begin, 0u);
  EXPECT_EQ(f.tensors()[0].end, 48u);
  EXPECT_EQ(f.tensors()[1].begin, 48u);
  EXPECT_EQ(f.info("z.first").dtype, DType::F32);
  EXPECT_TRUE(f.metadata().empty());
  const Tensor a2 = f.read("z.first"), b2 = f.read("a.second"), s2 = f.read("scalar"), e2 = f.read("empty");
  EXPECT_EQ(a2.shape(), a.shape());
  EXPECT_EQ(0, std::memcmp(a.data(), a2.data(), sizeof(float) * 12));
  EXPECT_EQ(0, std::memcmp(b.data(), b2.data(), sizeof(float) * 5));
  EXPECT_EQ(s2.shape(), Shape{});
  EXPECT_EQ(s2[0], 42.5f);
  EXPECT_EQ(e2.shape(), (Shape{0, 3}));

  // Layout: header length is a multiple of 8 (space padded), so F32 data starts aligned.
  const std::string bytes = read_file(p);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | uint8_t(bytes[size_t(i)]);
  EXPECT_EQ(n % 8, 0u);
  EXPECT_EQ(bytes.size(), 8 + n + 4 * (12 + 5 + 1));
  const std::string header = bytes.substr(8, size_t(n));
  EXPECT_EQ(header[header.find_last_not_of(' ')], '}');
  std::vector<float> dst(5);
  f.read_into("a.second", dst.data(), 5);
  EXPECT_EQ(0, std::memcmp(dst.data(), b.data(), sizeof(float) * 5));
}

TEST(Safetensors, MetadataRoundTrip) {
  ScratchDir d;
  Tensor t({2});
  const std::map<std::string, std::string> meta = {
      {"format", "pt"}, {"step", "1200"}, {"quote\"and\\slash", "line\nbreak \xc3\xa9"}, {"", "empty key"}};
  const std::string p = d.file("meta.safetensors");
  write_safetensors(p, {{"t", &t}}, meta);
  EXPECT_EQ(SafetensorsFile::open(p).metadata(), meta);
  // Metadata alone, no tensors.
  write_safetensors(p, {}, {{"k", "v"}});
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_TRUE(f.tensors().empty());
  EXPECT_EQ(f.metadata().at("k"), "v");
}

TEST(Safetensors, F16ReaderMatchesHandComputedValues) {
  ScratchDir d;
  const std::string p = d.file("f16.safetensors");
  const std::string header =
      R"({"h":{"dtype":"F16","shape":[2,6],"data_offsets":[0,24]},"__metadata__":{"format":"pt"}})";
  put(p, raw(header, u16s({0x3C00, 0x7BFF, 0x0001, 0x03FF, 0x0400, 0x8000,  //
                           0xC000, 0x7C00, 0xFC00, 0x3555, 0x8001, 0x0000})));
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.info("h").dtype, DType::F16);
  const Tensor t = f.read("h");
  EXPECT_EQ(t[0], 1.0f);
  EXPECT_EQ(t[1], 65504.0f);
  EXPECT_EQ(t[2], std::ldexp(1.0f, -24));                // smallest subnormal
  EXPECT_EQ(t[3], std::ldexp(1023.0f, -24));             // largest subnormal
  EXPECT_EQ(t[4], std::ldexp(1.0f, -14));                // smallest normal
  EXPECT_EQ(bits(t[5]), 0x80000000u);                    // -0
  EXPECT_EQ(t[6], -2.0f);
  EXPECT_EQ(t[7], std::numeric_limits<float>::infinity());
  EXPECT_EQ(t[8], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(t[9], std::ldexp(float(0x155 | 0x400), -12));  // 0.333251953125
  EXPECT_EQ(t[10], -std::ldexp(1.0f, -24));
  EXPECT_EQ(bits(t[11]), 0u);
  // NaN stays NaN (quiet and with a payload).
  put(p, raw(R"({"n":{"dtype":"F16","shape":[2],"data_offsets":[0,4]}})", u16s({0x7E00, 0x7C01})));
  const Tensor n = SafetensorsFile::open(p).read("n");
  EXPECT_TRUE(std::isnan(n[0]));
  EXPECT_TRUE(std::isnan(n[1]));
}

TEST(Safetensors, BF16ReaderMatchesHandComputedValues) {
  ScratchDir d;
  const std::string p = d.file("bf16.safetensors");
  put(p, raw(R"({"b":{"dtype":"BF16","shape":[8],"data_offsets":[0,16]}})",
             u16s({0x3F80, 0xC040, 0x7F80, 0xFF80, 0x0001, 0x8000, 0x7F7F, 0x7FC0})));
  const Tensor t = SafetensorsFile::open(p).read("b");
  EXPECT_EQ(t[0], 1.0f);
  EXPECT_EQ(t[1], -3.0f);
  EXPECT_EQ(t[2], std::numeric_limits<float>::infinity());
  EXPECT_EQ(t[3], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(bits(t[4]), 0x00010000u);  // a denormal
  EXPECT_EQ(bits(t[5]), 0x80000000u);
  EXPECT_EQ(bits(t[6]), 0x7F7F0000u);  // largest finite bf16
  EXPECT_TRUE(std::isnan(t[7]));
}

// map(): the tensor's bytes in place, alive after the file object is gone; a zero-size tensor maps
// to nothing; an absent one is the same error as read().
TEST(Safetensors, MapGivesTheStoredBytesInPlace) {
  ScratchDir d;
  const std::string p = d.file("map.safetensors");
  put(p, raw(R"({"a":{"dtype":"BF16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"F16","shape":[3],"data_offsets":[4,10]},)"
             R"("z":{"dtype":"F16","shape":[0],"data_offsets":[10,10]}})",
             u16s({0x3F80, 0xC040, 0x3C00, 0x4000, 0xC200})));
  SafetensorsFile::Mapped b;
  {
    const SafetensorsFile f = SafetensorsFile::open(p);
    const SafetensorsFile::Mapped a = f.map("a");
    const auto* av = static_cast<const uint16_t*>(a.data);
    EXPECT_EQ(av[0], 0x3F80);
    EXPECT_EQ(av[1], 0xC040);
    b = f.map("b");
    EXPECT_EQ(f.map("z").data, nullptr);
    EXPECT_NE(test::error_of([&] { f.map("nope"); }).find("nope"), std::string::npos);
  }
  const auto* bv = static_cast<const uint16_t*>(b.data);  // the file object is gone, the mapping is not
  EXPECT_EQ(f16_to_f32(bv[0]), 1.0f);
  EXPECT_EQ(f16_to_f32(bv[1]), 2.0f);
  EXPECT_EQ(f16_to_f32(bv[2]), -3.0f);
}

TEST(Safetensors, HalfConversionsAreExactAndRoundToNearestEven) {
  // Every f16 widens exactly and narrows back to itself.
  for (uint32_t h = 0; h < 0x10000u; ++h) {
    const float f = f16_to_f32(uint16_t(h));
    if ((h & 0x7c00u) == 0x7c00u && (h & 0x3ffu)) {
      EXPECT_TRUE(std::isnan(f)) << h;
      EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(f)))) << h;
    } else {
      ASSERT_EQ(f32_to_f16(f), h) << std::hex << h;
    }
    // bf16 widening is the top 16 bits; narrowing an exact bf16 value gives it back.
    ASSERT_EQ(bits(bf16_to_f32(uint16_t(h))), h << 16);
    if (!std::isnan(bf16_to_f32(uint16_t(h)))) {
      ASSERT_EQ(f32_to_bf16(bf16_to_f32(uint16_t(h))), h);
    }
  }
  // f16 rounding at the edges.
  EXPECT_EQ(f32_to_f16(65519.0f), 0x7BFF);                       // below the midpoint to 65536
  EXPECT_EQ(f32_to_f16(65520.0f), 0x7C00);                       // the tie rounds to even: inf
  EXPECT_EQ(f32_to_f16(1e10f), 0x7C00);
  EXPECT_EQ(f32_to_f16(-1e10f), 0xFC00);
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -25)), 0x0000);          // tie between 0 and 2^-24 -> 0
  EXPECT_EQ(f32_to_f16(std::nextafter(std::ldexp(1.0f, -25), 1.0f)), 0x0001);
  EXPECT_EQ(f32_to_f16(std::ldexp(3.0f, -25)), 0x0002);          // 1.5 ulp: tie -> even (2)
  EXPECT_EQ(f32_to_f16(std::ldexp(1.0f, -14) - std::ldexp(1.0f, -26)), 0x0400);  // carries into a normal
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);   // tie -> even (down)
  EXPECT_EQ(f32_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);   // tie -> even (up)
  EXPECT_EQ(f32_to_f16(-0.0f), 0x8000);
  EXPECT_EQ(f32_to_f16(1e-30f), 0x0000);
  EXPECT_TRUE(std::isnan(f16_to_f32(f32_to_f16(std::numeric_limits<float>::quiet_NaN()))));
  // bf16 rounding.
  EXPECT_EQ(f32_to_bf16(1.0f + 1.0f / 256), 0x3F80);   // tie -> even (down)
  EXPECT_EQ(f32_to_bf16(1.0f + 3.0f / 256), 0x3F82);   // tie -> even (up)
  EXPECT_EQ(f32_to_bf16(std::nextafter(1.0f + 1.0f / 256, 2.0f)), 0x3F81);
  EXPECT_EQ(f32_to_bf16(std::numeric_limits<float>::max()), 0x7F80);  // beyond the bf16 range: inf
  EXPECT_EQ(f32_to_bf16(-0.0f), 0x8000);
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(from_bits(0x7f800001u)))));  // payload in low bits only
#if defined(__FLT16_MAX__)
  // The compiler's own correctly rounded conversion as a reference, on random and edge inputs.
  Rng rng(11);
  for (int i = 0; i < 200000; ++i) {
    uint32_t u = uint32_t(rng.next_u64());
    if (i % 2) u = (u & 0x80000000u) | (0x33000000u + uint32_t(rng.below(0x477ff000u - 0x33000000u + 0x2000u)));
    const float f = from_bits(u);
    if (std::isnan(f)) continue;
    const _Float16 r = static_cast<_Float16>(f);
    ASSERT_EQ(f32_to_f16(f), std::bit_cast<uint16_t>(r)) << std::hex << u;
  }
#endif
}

TEST(Safetensors, WriteAsHalfPrecisionRoundTrips) {
  ScratchDir d;
  Tensor t({2, 3});
  const float v[] = {1.5f, -0.25f, 1000.0f, 0.1f, 70000.0f, 1e-6f};
  for (int i = 0; i < 6; ++i) t[i] = v[i];
  for (DType dt : {DType::F16, DType::BF16}) {
    const std::string p = d.file(dtype_name(dt) + ".safetensors");
    write_safetensors_as(p, {{"t", &t}}, dt, {{"dtype", dtype_name(dt)}});
    SafetensorsFile f = SafetensorsFile::open(p);
    EXPECT_EQ(f.info("t").dtype, dt);
    EXPECT_EQ(f.info("t").end, 12u);
    EXPECT_EQ(f.metadata().at("dtype"), dtype_name(dt));
    const Tensor r = f.read("t");
    for (int i = 0; i < 6; ++i) {
      const float want = dt == DType::F16 ? f16_to_f32(f32_to_f16(v[i])) : bf16_to_f32(f32_to_bf16(v[i]));
      EXPECT_EQ(bits(r[i]), bits(want)) << dtype_name(dt) << " " << i;
    }
    EXPECT_EQ(r[0], 1.5f);
    EXPECT_EQ(r[1], -0.25f);
    EXPECT_EQ(r[2], 1000.0f);
  }
  EXPECT_EQ(dtype_size(DType::F32), 4u);
  EXPECT_EQ(dtype_size(DType::F16), 2u);
  EXPECT_EQ(dtype_size(DType::BF16), 2u);
  EXPECT_EQ(dtype_name(DType::BF16), "BF16");
}

TEST(Safetensors, CorruptFilesGiveErrorsNamingFileAndTensor) {
  ScratchDir d;
  const std::string ok = R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})";
  const std::string z16(16, '\0');
  struct Case {
    std::string name, bytes, tensor, expect;
  };
  const std::vector<Case> cases = {
      {"empty", "", "", "0 bytes, too short"},
      {"seven", std::string("\x10\0\0\0\0\0\0", 7), "", "7 bytes, too short"},
      {"len-beyond-file", raw(ok, z16, 1000), "", "header length 1000 exceeds the file size"},
      {"len-2^63", raw(ok, z16, uint64_t(1) << 63), "", "header length 9223372036854775808 exceeds"},
      {"len-max", raw(ok, z16, ~uint64_t(0)), "", "exceeds the file size"},
      {"len-zero", le64(0) + ok, "", "not valid JSON"},
      {"not-json", raw(R"({"w": [1, 2)", ""), "", "not valid JSON"},
      {"array", raw("[1, 2, 3]", ""), "", "not a JSON object"},
      {"string", raw(R"("hello")", ""), "", "not a JSON object"},
      {"entry-not-object", raw(R"({"w": [0, 16]})", z16), "w", "is not a JSON object"},
      {"no-offsets", raw(R"({"w":{"dtype":"F32","shape":[2]}})", z16), "w", "has no \"data_offsets\""},
      {"no-dtype", raw(R"({"w":{"shape":[2],"data_offsets":[0,8]}})", z16), "w", "has no \"dtype\""},
      {"no-shape", raw(R"({"w":{"dtype":"F32","data_offsets":[0,8]}})", z16), "w", "has no \"shape\""},
      {"dtype-number", raw(R"({"w":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", z16), "w", "not a string"},
      {"shape-string", raw(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", z16), "w", "not an array"},
      {"i64", raw(R"({"w":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", z16), "w", "unsupported dtype \"I64\""},
      {"f8", raw(R"({"w":{"dtype":"F8_E4M3","shape":[2],"data_offsets":[0,2]}})", z16), "w", "unsupported dtype \"F8_E4M3\""},
      {"neg-dim", raw(R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", z16), "w", "negative dimension -2"},
      {"float-dim", raw(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", z16), "w", "not a non-negative integer"},
      {"mismatch", raw(R"({"model.norm.weight":{"dtype":"F32","shape":[4],"data_offsets":[0,12]}})", z16),
       "model.norm.weight", "has data_offsets [0, 12] but shape [4] of F32 needs 16 bytes"},
      {"offsets-3", raw(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8,9]}})", z16), "w", "not [begin, end]"},
      {"offsets-neg", raw(R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[-8,0]}})", z16), "w", "not [begin, end]"},
      {"reversed", raw(R"({"w":{"dtype":"F32","shape":[0],"data_offsets":[8,0]}})", z16), "w", "end before begin"},
      {"beyond", raw(ok, std::string(8, '\0')), "w", "beyond the data section of 8 bytes"},
      {"overlap",
       raw(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", z16),
       "b", "overlaps tensor 'a'"},
      {"overlap-contained",
       raw(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F16","shape":[2],"data_offsets":[4,8]}})", z16),
       "b", "overlaps tensor 'a'"},
      {"bytes-overflow", raw(R"({"w":{"dtype":"F32","shape":[4611686018427387904],"data_offsets":[0,0]}})", ""), "w", "overflows"},
      {"numel-overflow", raw(R"({"w":{"dtype":"F16","shape":[4294967296,4294967296,0],"data_offsets":[0,0]}})", ""), "w", "overflows"},
      {"dim-too-big", raw(R"({"w":{"dtype":"F32","shape":[18446744073709551615],"data_offsets":[0,16]}})", z16), "w", "overflows"},
      {"meta-not-string", raw(R"({"__metadata__":{"step":3}})", ""), "step", "is not a string"},
      {"meta-not-object", raw(R"({"__metadata__":[1]})", ""), "", "__metadata__ is not an object"},
      {"duplicate", raw(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", z16),
       "w", "appears twice"},
      {"deep", raw(std::string(100000, '[') + std::string(100000, ']'), ""), "", "nests more than"},
      {"bad-utf8", raw("{\"w\xff\":{}}", ""), "", "not valid JSON"},
  };
  for (const Case& c : cases) {
    const std::string p = d.file(c.name + ".safetensors");
    put(p, c.bytes);
    const std::string msg = error_of(p);
    EXPECT_EQ(msg.rfind("[safetensors] " + p + ": ", 0), 0u) << c.name << ": " << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
    if (!c.tensor.empty()) {
      EXPECT_NE(msg.find("'" + c.tensor + "'"), std::string::npos) << c.name << ": " << msg;
    }
  }

  // A valid file truncated by a few bytes: the last tensor runs past the end.
  Tensor a({4}), b({3});
  const std::string good = d.file("good.safetensors");
  write_safetensors(good, {{"a", &a}, {"layers.0.b", &b}});
  const std::string bytes = read_file(good);
  for (size_t cut : {1, 4, 11}) {
    const std::string p = d.file("truncated.safetensors");
    put(p, bytes.substr(0, bytes.size() - cut));
    const std::string msg = error_of(p);
    EXPECT_NE(msg.find(p), std::string::npos) << msg;
    EXPECT_NE(msg.find("'layers.0.b'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("truncated"), std::string::npos) << msg;
  }

  // A header longer than 100 MB is refused before it is read (a sparse file keeps this cheap).
  const std::string big = d.file("big-header.safetensors");
  put(big, le64((uint64_t(100) << 20) + 1));
  fs::resize_file(big, (uint64_t(100) << 20) + 64);
  EXPECT_NE(error_of(big).find("larger than the 100 MB limit"), std::string::npos) << error_of(big);
}

TEST(Safetensors, MissingFilesAndTensorsAreNamed) {
  ScratchDir d;
  const std::string missing = d.file("does-not-exist.safetensors");
  const std::string m1 = error_of(missing);
  EXPECT_NE(m1.find(missing), std::string::npos) << m1;
  EXPECT_NE(m1.find("No such file"), std::string::npos) << m1;
  EXPECT_NE(error_of(d.path).find("is a directory"), std::string::npos);

  Tensor t({2, 2});
  const std::string p = d.file("ok.safetensors");
  write_safetensors(p, {{"w", &t}});
  const std::string m2 = error_of(p, "missing.weight");
  EXPECT_NE(m2.find(p), std::string::npos) << m2;
  EXPECT_NE(m2.find("'missing.weight'"), std::string::npos) << m2;
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_FALSE(f.has("missing.weight"));
  EXPECT_TRUE(f.has("w"));
  EXPECT_THROW(f.info("missing.weight"), Error);
  std::vector<float> dst(3);
  try {
    f.read_into("w", dst.data(), 3);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor 'w' has 4 elements"), std::string::npos) << e.what();
  }
}

TEST(Safetensors, CopiesAndMovesShareTheOpenFile) {
  ScratchDir d;
  Tensor t({3});
  t[0] = 1, t[1] = 2, t[2] = 3;
  const std::string p = d.file("c.safetensors");
  write_safetensors(p, {{"t", &t}});
  std::optional<SafetensorsFile> orig = SafetensorsFile::open(p);
  SafetensorsFile copy = *orig;
  SafetensorsFile moved = std::move(*orig);
  orig.reset();
  fs::remove(p);  // the descriptor stays valid after the name is gone
  EXPECT_EQ(copy.read("t")[2], 3.0f);
  EXPECT_EQ(moved.read("t")[1], 2.0f);
  SafetensorsFile from = std::move(copy);
  EXPECT_THROW(copy.read("t"), Error);  // NOLINT(bugprone-use-after-move): moved-from is safe, just empty
  EXPECT_EQ(from.read("t")[0], 1.0f);
}

TEST(Safetensors, WriterRejectsBadNamesAndLeavesNoFile) {
  ScratchDir d;
  Tensor t({1});
  const std::string p = d.file("w.safetensors");
  EXPECT_THROW(write_safetensors(p, {{"a", &t}, {"a", &t}}), Error);
  EXPECT_THROW(write_safetensors(p, {{"__metadata__", &t}}), Error);
  EXPECT_THROW(write_safetensors(p, {{"bad\xff", &t}}), Error);
  EXPECT_THROW(write_safetensors(p, {{"a", &t}}, {{"k", "bad\xfe"}}), Error);
  EXPECT_THROW(write_safetensors(d.file("no/such/dir/x.safetensors"), {{"a", &t}}), Error);
  EXPECT_TRUE(fs::is_empty(d.path));
}

// Every truncation and many random corruptions of a small valid file: opening and reading either
// works or throws moe::Error; never a crash (run under ASan/UBSan), never another exception type.
TEST(Safetensors, FuzzedFilesOnlyThrowMoeError) {
  ScratchDir d;
  Tensor a({3, 5}), b({7});
  Rng rng(1);
  for (int64_t i = 0; i < a.numel(); ++i) a[i] = float(rng.normal());
  for (int64_t i = 0; i < b.numel(); ++i) b[i] = float(rng.normal());
  const std::string good = d.file("fuzz-good.safetensors");
  write_safetensors_as(good, {{"a", &a}, {"b", &b}}, DType::BF16, {{"k", "v"}});
  const std::string bytes = read_file(good);
  uint64_t header_end = 8;
  for (int i = 7; i >= 0; --i) header_end += uint64_t(uint8_t(bytes[size_t(i)])) << (8 * i);
  ASSERT_LT(header_end, bytes.size());

  const std::string p = d.file("fuzz.safetensors");
  ScratchFile file(p);
  int errors = 0, opened = 0;
  auto attempt = [&](const std::string& content) {
    file.set(content);
    try {
      SafetensorsFile f = SafetensorsFile::open(p);
      for (const auto& t : f.tensors()) {
        const Tensor r = f.read(t.name);
        EXPECT_EQ(r.shape(), t.shape);
      }
      ++opened;
    } catch (const Error& e) {
      ++errors;
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-moe exception: " << e.what();
    } catch (...) {
      ADD_FAILURE() << "unknown exception";
    }
  };
  for (size_t len = 0; len < bytes.size(); ++len) attempt(bytes.substr(0, len));  // every truncation
  for (int i = 0; i < 8000; ++i) {
    std::string c = bytes;
    const int flips = 1 + int(rng.below(3));
    for (int f = 0; f < flips; ++f) {
      // Mostly inside the header, where the parser lives; sometimes anywhere.
      const size_t at = i % 4 ? size_t(rng.below(header_end)) : size_t(rng.below(c.size()));
      c[at] = i % 3 ? char(rng.below(256)) : char(c[at] ^ char(1 << rng.below(8)));
    }
    attempt(c);
  }
  EXPECT_GT(errors, 3000);
  EXPECT_GT(opened, 10);  // flips inside the data section (and some in whitespace) still parse
}

}  // namespace
}  // namespace moe
