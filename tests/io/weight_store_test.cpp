// Sharded checkpoints: the index resolves tensors across shards; broken indexes are clear errors.
#include "io/weight_store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "io/atomic_file.h"
#include "../test_util.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

struct Sharded {
  std::string dir;
  Tensor a{Shape{2, 2}}, b{Shape{3}};
  explicit Sharded(const std::string& name, const std::string& index) : dir(test::fresh_dir("ws_" + name)) {
    for (int i = 0; i < 4; ++i) a[i] = float(i);
    for (int i = 0; i < 3; ++i) b[i] = float(-i);
    write_safetensors(dir + "/s1.safetensors", {{"a", &a}}, {{"step", "3"}});
    write_safetensors(dir + "/s2.safetensors", {{"b", &b}});
    atomic_write_file(dir + "/model.safetensors.index.json", index);
  }
};

TEST(WeightStore, ShardedRoundTrip) {
  Sharded s("ok", R"({"metadata": {"total_size": 28}, "weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  WeightStore w = WeightStore::open(s.dir);
  EXPECT_TRUE(w.has("a") && w.has("b"));
  EXPECT_EQ(w.shape("a"), (Shape{2, 2}));
  Tensor b = w.read("b");
  EXPECT_EQ(b[2], -2.0f);
  std::vector<float> dst(4);
  w.read_into("a", dst.data(), {2, 2});
  EXPECT_EQ(dst[3], 3.0f);
  EXPECT_EQ(w.metadata().at("step"), "3");
  EXPECT_EQ(w.names().size(), 2u);
}

TEST(WeightStore, BrokenIndexesAndShapes) {
  Sharded missing("missing", R"({"weight_map": {"a": "s1.safetensors", "b": "s3.safetensors"}})");
  EXPECT_NE(test::error_of([&] { WeightStore::open(missing.dir); }).find("s3.safetensors"), std::string::npos);
  Sharded absent("absent", R"({"weight_map": {"a": "s1.safetensors", "c": "s2.safetensors"}})");
  const std::string m = test::error_of([&] { WeightStore::open(absent.dir); });
  EXPECT_NE(m.find("'c'"), std::string::npos) << m;
  Sharded notjson("notjson", R"({"weight_map": )");
  EXPECT_NE(test::error_of([&] { WeightStore::open(notjson.dir); }).find("index.json"), std::string::npos);
  Sharded escape("escape", R"({"weight_map": {"a": "../../etc/passwd"}})");
  EXPECT_NE(test::error_of([&] { WeightStore::open(escape.dir); }).find("must be a file in the checkpoint directory"), std::string::npos);
  Sharded ok("shape", R"({"weight_map": {"a": "s1.safetensors", "b": "s2.safetensors"}})");
  WeightStore w = WeightStore::open(ok.dir);
  std::vector<float> dst(4);
  const std::string sm = test::error_of([&] { w.read_into("a", dst.data(), {4}); });
  EXPECT_NE(sm.find("tensor 'a' has shape [2, 2], expected [4]"), std::string::npos) << sm;
  EXPECT_NE(sm.find("s1.safetensors"), std::string::npos) << sm;
  EXPECT_NE(test::error_of([&] { w.read_into("zz", dst.data(), {4}); }).find("missing tensor 'zz'"), std::string::npos);
  EXPECT_NE(test::error_of([&] { WeightStore::open(test::fresh_dir("ws_empty")); }).find("no model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace moe
