// Checkpoint directories: a single model.safetensors or shards resolved through the index; broken
// indexes, missing shards and tensors, and shape mismatches are clear errors naming dir and tensor.
#include "io/weight_store.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <functional>

#include "core/error.h"
#include "io/atomic_file.h"
#include "../test_util.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

using test::ScratchDir;

using test::error_of;

constexpr const char* kS1 = "model-00001-of-00002.safetensors";
constexpr const char* kS2 = "model-00002-of-00002.safetensors";

// Two shards: "a" [2, 2] = 0..3 and "embed" [1, 3] in shard 1, "b" [3] = 0, -1, -2 in shard 2.
struct Sharded {
  ScratchDir d;
  Tensor a{Shape{2, 2}}, e{Shape{1, 3}}, b{Shape{3}};
  explicit Sharded(const std::string& index) {
    for (int i = 0; i < 4; ++i) a[i] = float(i);
    for (int i = 0; i < 3; ++i) b[i] = float(-i), e[i] = 10.0f + float(i);
    write_safetensors(d.file(kS2), {{"b", &b}}, {{"shard", "2"}});
    write_safetensors(d.file(kS1), {{"a", &a}, {"embed", &e}}, {{"shard", "1"}, {"format", "pt"}});
    atomic_write_file(d.file("model.safetensors.index.json"), index);
  }
  std::string open_error() const {
    return error_of([&] { WeightStore::open(d.path); });
  }
};

const std::string kGoodIndex =
    R"({"metadata": {"total_size": 40},
        "weight_map": {"b": "model-00002-of-00002.safetensors", "a": "model-00001-of-00002.safetensors",
                       "embed": "model-00001-of-00002.safetensors"}})";

TEST(WeightStore, SingleFile) {
  ScratchDir d;
  Tensor w({2, 3});
  for (int i = 0; i < 6; ++i) w[i] = float(i) * 0.5f;
  write_safetensors(d.file("model.safetensors"), {{"w", &w}}, {{"format", "pt"}});
  WeightStore s = WeightStore::open(d.path);
  EXPECT_EQ(s.names(), std::vector<std::string>{"w"});
  EXPECT_TRUE(s.has("w"));
  EXPECT_FALSE(s.has("v"));
  EXPECT_EQ(s.shape("w"), (Shape{2, 3}));
  EXPECT_EQ(s.read("w")[5], 2.5f);
  EXPECT_EQ(s.metadata().at("format"), "pt");
  // A trailing slash on the directory changes nothing.
  EXPECT_EQ(WeightStore::open(d.path + "/").read("w")[1], 0.5f);
}

TEST(WeightStore, ShardedRoundTrip) {
  Sharded s(kGoodIndex);
  WeightStore w = WeightStore::open(s.d.path);
  EXPECT_EQ(w.names(), (std::vector<std::string>{"a", "b", "embed"}));
  EXPECT_EQ(w.shape("a"), (Shape{2, 2}));
  EXPECT_EQ(w.shape("b"), (Shape{3}));
  const Tensor b = w.read("b");
  EXPECT_EQ(b[2], -2.0f);
  std::vector<float> dst(4);
  w.read_into("a", dst.data(), {2, 2});
  EXPECT_EQ(dst, (std::vector<float>{0, 1, 2, 3}));
  w.read_into("embed", dst.data(), {1, 3});
  EXPECT_EQ(dst[2], 12.0f);
  // The first shard by file name, whatever order the index lists tensors in.
  EXPECT_EQ(w.metadata().at("shard"), "1");
}

TEST(WeightStore, IndexNamingAMissingShard) {
  Sharded s(R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00003-of-00002.safetensors"}})");
  const std::string m = s.open_error();
  EXPECT_EQ(m.rfind("[checkpoint] " + s.d.path + ": ", 0), 0u) << m;
  EXPECT_NE(m.find("model-00003-of-00002.safetensors"), std::string::npos) << m;
  EXPECT_NE(m.find("'b'"), std::string::npos) << m;
  EXPECT_NE(m.find("does not exist"), std::string::npos) << m;
}

TEST(WeightStore, IndexNamingATensorAbsentFromItsShard) {
  Sharded s(R"({"weight_map": {"a": "model-00001-of-00002.safetensors", "c": "model-00002-of-00002.safetensors"}})");
  const std::string m = s.open_error();
  EXPECT_EQ(m.rfind("[checkpoint] " + s.d.path + ": ", 0), 0u) << m;
  EXPECT_NE(m.find("tensor 'c'"), std::string::npos) << m;
  EXPECT_NE(m.find(kS2), std::string::npos) << m;
}

TEST(WeightStore, MalformedIndexes) {
  const std::pair<std::string, std::string> cases[] = {
      {R"({"weight_map": )", "not valid JSON"},
      {R"([1, 2])", "not a JSON object"},
      {R"({"metadata": {}})", "no \"weight_map\""},
      {R"({"weight_map": [1]})", "no \"weight_map\""},
      {R"({"weight_map": {}})", "empty \"weight_map\""},
      {R"({"weight_map": {"a": 3}})", "tensor 'a' is not a file name"},
      {R"({"weight_map": {"a": "../../etc/passwd"}})", "must be a file in the checkpoint directory"},
      {R"({"weight_map": {"a": ".."}})", "must be a file in the checkpoint directory"},
      {R"({"weight_map": {"a": ""}})", "must be a file in the checkpoint directory"},
  };
  for (const auto& [index, expect] : cases) {
    Sharded s(index);
    const std::string m = s.open_error();
    EXPECT_EQ(m.rfind("[checkpoint] " + s.d.path + ": ", 0), 0u) << index << " -> " << m;
    EXPECT_NE(m.find("model.safetensors.index.json"), std::string::npos) << index << " -> " << m;
    EXPECT_NE(m.find(expect), std::string::npos) << index << " -> " << m;
  }
  // A shard that is a directory.
  Sharded s(R"({"weight_map": {"a": "sub"}})");
  fs::create_directory(s.d.file("sub"));
  EXPECT_NE(s.open_error().find("'sub'"), std::string::npos) << s.open_error();
}

TEST(WeightStore, CorruptShardReportsTheShard) {
  Sharded s(kGoodIndex);
  const std::string bytes = read_file(s.d.file(kS2));
  atomic_write_file(s.d.file(kS2), bytes.substr(0, bytes.size() - 2));
  const std::string m = s.open_error();
  EXPECT_EQ(m.rfind("[safetensors] " + s.d.file(kS2) + ": ", 0), 0u) << m;
  EXPECT_NE(m.find("'b'"), std::string::npos) << m;
}

TEST(WeightStore, ReadIntoShapeMismatchAndMissingTensor) {
  Sharded s(kGoodIndex);
  WeightStore w = WeightStore::open(s.d.path);
  std::vector<float> dst(4);
  const std::string sm = error_of([&] { w.read_into("a", dst.data(), {4}); });
  EXPECT_EQ(sm, "[checkpoint] " + s.d.file(kS1) + ": tensor 'a' has shape [2, 2], expected [4]");
  const std::string sm2 = error_of([&] { w.read_into("b", dst.data(), {3, 1}); });
  EXPECT_EQ(sm2, "[checkpoint] " + s.d.file(kS2) + ": tensor 'b' has shape [3], expected [3, 1]");
  const std::string mm = error_of([&] { w.read_into("zz", dst.data(), {4}); });
  EXPECT_EQ(mm, "[checkpoint] " + s.d.path + ": missing tensor 'zz'");
  EXPECT_NE(error_of([&] { w.read("zz"); }).find("missing tensor 'zz'"), std::string::npos);
  EXPECT_NE(error_of([&] { w.shape("zz"); }).find("missing tensor 'zz'"), std::string::npos);
  EXPECT_EQ(dst, std::vector<float>(4, 0.0f));  // nothing written on failure
}

TEST(WeightStore, EmptyDirectory) {
  ScratchDir d;
  EXPECT_EQ(error_of([&] { WeightStore::open(d.path); }),
            "[checkpoint] " + d.path + ": no model.safetensors or model.safetensors.index.json");
  const std::string gone = d.file("nope");
  EXPECT_NE(error_of([&] { WeightStore::open(gone); }).find(gone), std::string::npos);
}

// A reader racing sharded saves (new step-tagged shards, then the index, then the old shards
// removed: save_pretrained's order) gets one save's whole set each time, never an error or a mix.
TEST(WeightStore, ReadsDuringShardedSavesSeeOneWholeSave) {
  ScratchDir d;
  auto save = [&](int step) {
    Tensor a{Shape{64}}, b{Shape{64}};
    for (int i = 0; i < 64; ++i) a[i] = b[i] = float(step);
    const std::string s1 = "model-step" + std::to_string(step) + "-00001-of-00002.safetensors";
    const std::string s2 = "model-step" + std::to_string(step) + "-00002-of-00002.safetensors";
    write_safetensors(d.file(s1), {{"a", &a}});
    write_safetensors(d.file(s2), {{"b", &b}});
    atomic_write_file(d.file("model.safetensors.index.json"),
                      R"({"weight_map": {"a": ")" + s1 + R"(", "b": ")" + s2 + R"("}})");
    for (auto& e : fs::directory_iterator(d.path)) {
      const std::string n = e.path().filename().string();
      if (n.rfind("model-step", 0) == 0 && n != s1 && n != s2) fs::remove(e.path());
    }
  };
  save(0);
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int step = 1; step <= 300; ++step) save(step);
    done = true;
  });
  int reads = 0, errors = 0, mixes = 0;
  std::string first_error;
  while (!done) {
    try {
      WeightStore w = WeightStore::open(d.path);
      const Tensor a = w.read("a"), b = w.read("b");
      mixes += a[0] != b[0] || a[63] != b[63];
    } catch (const Error& e) {
      if (errors++ == 0) first_error = e.what();
    }
    ++reads;
  }
  writer.join();
  EXPECT_EQ(errors, 0) << first_error;
  EXPECT_EQ(mixes, 0);
  EXPECT_GT(reads, 20);
  std::printf("%d reads during 300 saves\n", reads);
}

}  // namespace
}  // namespace moe
