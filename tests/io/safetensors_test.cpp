// safetensors: bit-exact round trip, half-precision conversions, and a clear moe::Error (naming
// the file and the tensor) for every kind of corrupt file, never a crash.
#include "io/safetensors.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "io/atomic_file.h"
#include "../test_util.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

std::string tmp(const std::string& name) {
  const std::string d = ::testing::TempDir() + "/moe_st_" + std::to_string(::getpid());
  fs::create_directories(d);
  return d + "/" + name;
}

// A file with the given header JSON and `data` bytes of payload.
std::string raw_file(const std::string& name, const std::string& header, size_t data, uint64_t claimed_len = 0) {
  std::string s(8, '\0');
  const uint64_t n = claimed_len ? claimed_len : header.size();
  for (int i = 0; i < 8; ++i) s[i] = char(uint8_t(n >> (8 * i)));
  s += header;
  s.append(data, '\0');
  const std::string p = tmp(name);
  atomic_write_file(p, s);
  return p;
}

std::string error_of(const std::string& path, const std::string& tensor = "") {
  try {
    SafetensorsFile f = SafetensorsFile::open(path);
    if (!tensor.empty()) f.read(tensor);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(Safetensors, RoundTripIsBitExact) {
  Tensor a({2, 3}), b({4});
  const float special[] = {-0.0f, std::numeric_limits<float>::denorm_min(), INFINITY, -INFINITY, 1e-38f, 3.14159f};
  for (int i = 0; i < 6; ++i) a[i] = special[i];
  for (int i = 0; i < 4; ++i) b[i] = float(i) * 0.1f;
  const std::string p = tmp("rt.safetensors");
  write_safetensors(p, {{"a", &a}, {"b.weight", &b}}, {{"step", "7"}});
  SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(f.metadata().at("step"), "7");
  EXPECT_EQ(f.tensors().size(), 2u);
  Tensor a2 = f.read("a"), b2 = f.read("b.weight");
  EXPECT_EQ(a2.shape(), a.shape());
  EXPECT_EQ(0, std::memcmp(a.data(), a2.data(), 24));
  EXPECT_EQ(0, std::memcmp(b.data(), b2.data(), 16));
  EXPECT_EQ(fs::file_size(p) % 8, 0u);  // header padded to 8 bytes, data f32
}

TEST(Safetensors, HalfPrecisionConversions) {
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);
  EXPECT_TRUE(std::isinf(f16_to_f32(0x7C00)));
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xC040), -3.0f);
  for (float v : {1.0f, -2.5f, 65504.0f, 0.000123f, 3.0e-7f, 0.0f})
    EXPECT_EQ(f16_to_f32(f32_to_f16(v)), v == 0.000123f || v == 3.0e-7f ? f16_to_f32(f32_to_f16(v)) : v);
  EXPECT_NEAR(f16_to_f32(f32_to_f16(0.000123f)), 0.000123f, 1e-7);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);  // ties to even
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(-3.0f)), -3.0f);
  Tensor t({3});
  t[0] = 1.5f, t[1] = -0.25f, t[2] = 1000.0f;
  for (DType dt : {DType::F16, DType::BF16}) {
    const std::string p = tmp("half.safetensors");
    write_safetensors_as(p, {{"t", &t}}, dt);
    Tensor r = SafetensorsFile::open(p).read("t");
    for (int i = 0; i < 3; ++i) EXPECT_EQ(r[i], t[i]);
  }
}

TEST(Safetensors, CorruptHeadersGiveClearErrors) {
  const std::string ok = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]}}";
  struct Case {
    std::string name, header;
    size_t data;
    uint64_t claimed;
    std::string expect;
  } cases[] = {
      {"short", "", 0, 0, "too short"},
      {"biglen", ok, 16, 1000, "exceeds the file size"},
      {"hugelen", ok, 16, uint64_t(1) << 63, "exceeds the file size"},
      {"notjson", "{\"w\": [1, 2", 0, 0, "not valid JSON"},
      {"array", "[1, 2, 3]", 0, 0, "not a JSON object"},
      {"nooffsets", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, 0, "'w' has no data_offsets"},
      {"i64", "{\"w\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", 16, 0, "unsupported dtype I64"},
      {"f8", "{\"w\":{\"dtype\":\"F8_E4M3\",\"shape\":[2],\"data_offsets\":[0,2]}}", 2, 0, "unsupported dtype F8_E4M3"},
      {"negdim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, 0, "'w' has a shape entry"},
      {"mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,12]}}", 12, 0, "needs 16 bytes"},
      {"beyond", ok, 8, 0, "ends at byte 16"},
      {"reversed", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}", 8, 0, "end before begin"},
      {"overlap", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12, 0, "overlaps"},
      {"overflow", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}", 16, 0, "overflows"},
      {"badmeta", "{\"__metadata__\":{\"step\":3}}", 0, 0, "__metadata__"},
  };
  for (const auto& c : cases) {
    const std::string p = c.name == "short" ? tmp("short") : raw_file(c.name, c.header, c.data, c.claimed);
    if (c.name == "short") atomic_write_file(p, std::string(7, 'x'));
    const std::string msg = error_of(p);
    EXPECT_NE(msg.find(p), std::string::npos) << c.name << ": " << msg;
    EXPECT_NE(msg.find(c.expect), std::string::npos) << c.name << ": " << msg;
  }
  EXPECT_NE(error_of(tmp("does-not-exist")).find("does-not-exist"), std::string::npos);
  // Asking for an absent tensor names it.
  const std::string p = raw_file("okfile", ok, 16);
  EXPECT_NE(error_of(p, "missing.weight").find("missing.weight"), std::string::npos);
}

TEST(Safetensors, FuzzedFilesOnlyThrowMoeError) {
  Tensor a({3, 5}), b({7});
  Rng rng(1);
  test::fill_normal(a, rng);
  test::fill_normal(b, rng);
  const std::string good = tmp("fuzz-good.safetensors");
  write_safetensors(good, {{"a", &a}, {"b", &b}}, {{"k", "v"}});
  const std::string bytes = read_file(good);
  const std::string p = tmp("fuzz.safetensors");
  int errors = 0, opened = 0;
  auto attempt = [&](const std::string& content) {
    atomic_write_file(p, content);
    try {
      SafetensorsFile f = SafetensorsFile::open(p);
      for (const auto& t : f.tensors()) f.read(t.name);
      ++opened;
    } catch (const Error&) {
      ++errors;
    }  // any other exception type or a crash fails the test
  };
  for (size_t len = 0; len < bytes.size(); len += 3) attempt(bytes.substr(0, len));  // truncations
  for (int i = 0; i < 400; ++i) {                                                      // byte flips
    std::string c = bytes;
    const int flips = 1 + int(rng.below(3));
    for (int f = 0; f < flips; ++f) c[rng.below(c.size())] = char(rng.below(256));
    attempt(c);
  }
  EXPECT_GT(errors, 50);
  EXPECT_GT(opened, 10);  // flips inside the data section still parse
}

}  // namespace
}  // namespace moe
