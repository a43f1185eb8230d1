// One writer per directory: the advisory lock refuses a second holder (naming the first one's pid)
// until the first lets go; a killed writer's temporary files are removed, nothing else.
#include "io/dir_lock.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <memory>

#include "../test_util.h"
#include "io/atomic_file.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

fs::path fresh_dir(const char* name) {
  const fs::path d = fs::temp_directory_path() / (std::string(name) + "." + std::to_string(::getpid()));
  fs::remove_all(d);
  fs::create_directories(d);
  return d;
}

TEST(DirLock, ASecondHolderIsRefusedUntilTheFirstLetsGo) {
  const fs::path d = fresh_dir("moe_dir_lock");
  auto first = std::make_unique<DirLock>(d.string(), "moe train");
  try {
    DirLock second(d.string(), "moe train");
    FAIL() << "a second lock was granted";
  } catch (const Error& e) {
    const std::string msg = e.what();
    EXPECT_NE(msg.find("is in use by another moe train (pid " + std::to_string(::getpid()) + ")"), std::string::npos) << msg;
  }
  first.reset();
  EXPECT_NO_THROW(DirLock again(d.string(), "moe train"));
  fs::remove_all(d);
}

TEST(DirLock, AMissingDirectoryIsAClearError) {
  EXPECT_THROW(DirLock("/nonexistent/moe-dir", "moe train"), Error);
}

TEST(DirLock, OnlyAKilledWritersTemporariesAreRemoved) {
  const fs::path d = fresh_dir("moe_stale_tmp");
  for (const char* n : {"model.safetensors.tmp.4242", "config.json.tmp.17", "model.safetensors", "notes.tmp.txt",
                        "x.tmp.", "metrics.jsonl"})
    std::ofstream(d / n) << "x";
  EXPECT_EQ(remove_stale_temporaries(d.string()), 2);
  for (const char* n : {"model.safetensors", "notes.tmp.txt", "x.tmp.", "metrics.jsonl"}) EXPECT_TRUE(fs::exists(d / n)) << n;
  EXPECT_FALSE(fs::exists(d / "model.safetensors.tmp.4242"));
  EXPECT_FALSE(fs::exists(d / "config.json.tmp.17"));
  fs::remove_all(d);
}

}  // namespace
}  // namespace moe
