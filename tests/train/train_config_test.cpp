// train_config.json as --resume reads it: a key of the wrong type or out of range, a document that
// is not an object and a file that is not JSON each give one moe::Error naming the key or the file.
#include "train/train_config.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"

namespace moe {
namespace {

std::string error_of(const nlohmann::json& j) {
  try {
    TrainConfig::from_json(j);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(TrainConfig, RoundTripsAndKeepsDefaultsForMissingKeys) {
  TrainConfig c;
  c.steps = 7, c.lr = 0.5f, c.seed = 42, c.exact_blocks = 4;
  const TrainConfig d = TrainConfig::from_json(c.to_json());
  EXPECT_EQ(d.steps, 7);
  EXPECT_EQ(d.lr, 0.5f);
  EXPECT_EQ(d.seed, 42u);
  EXPECT_EQ(d.exact_blocks, 4);
  EXPECT_EQ(TrainConfig::from_json(nlohmann::json::object()).batch_size, TrainConfig{}.batch_size);
}

TEST(TrainConfig, BadKeysAreNamed) {
  EXPECT_NE(error_of({{"steps", "ten"}}).find("key 'steps' must be an integer, got \"ten\""), std::string::npos);
  EXPECT_NE(error_of({{"lr", true}}).find("key 'lr' must be a number"), std::string::npos);
  EXPECT_NE(error_of({{"steps", 1.5}}).find("key 'steps' must be an integer"), std::string::npos);
  EXPECT_NE(error_of({{"seed", -1}}).find("key 'seed' is out of range"), std::string::npos);
  EXPECT_NE(error_of({{"exact_blocks", 1ull << 40}}).find("key 'exact_blocks' is out of range"), std::string::npos);
  EXPECT_NE(error_of({{"steps", 18446744073709551615ull}}).find("key 'steps' is out of range"), std::string::npos);
  EXPECT_NE(error_of(nlohmann::json::array({1, 2})).find("expected a JSON object"), std::string::npos);
}

TEST(TrainConfig, LoadNamesTheFile) {
  const std::string path = (std::filesystem::temp_directory_path() / "moe_train_config_test.json").string();
  std::ofstream(path) << "{\"steps\": ";
  try {
    TrainConfig::load(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("[train] " + path + ": not valid JSON", 0), 0u) << e.what();
  }
  std::ofstream(path) << "{\"batch_size\": \"x\"}";
  try {
    TrainConfig::load(path);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "[train] " + path + ": key 'batch_size' must be an integer, got \"x\"");
  }
  std::filesystem::remove(path);
}

TEST(TrainConfig, ChecksRejectUnusableSettings) {
  TrainConfig c;
  c.out_dir = "out";
  EXPECT_NO_THROW(c.check());
  c.batch_size = 0;
  EXPECT_THROW(c.check(), Error);
  c.batch_size = 8, c.exact_blocks = 3;
  EXPECT_THROW(c.check(), Error);
}

}  // namespace
}  // namespace moe
