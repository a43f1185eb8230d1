// Atomic writes: content is replaced whole; an uncommitted writer leaves the old file and no
// temporary file behind.
#include "io/atomic_file.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/error.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

TEST(AtomicFile, ReplacesAndRollsBack) {
  const std::string d = ::testing::TempDir() + "/moe_af_" + std::to_string(::getpid());
  fs::remove_all(d);
  fs::create_directories(d);
  const std::string p = d + "/f.txt";
  atomic_write_file(p, std::string("old"));
  EXPECT_EQ(read_file(p), "old");
  atomic_write_file(p, std::string("new content"));
  EXPECT_EQ(read_file(p), "new content");
  {
    AtomicFileWriter w(p);
    w.write("partial", 7);
    // destroyed without commit: a crash in the middle of a save
  }
  EXPECT_EQ(read_file(p), "new content");
  int files = 0;
  for (auto& e : fs::directory_iterator(d)) ++files, (void)e;
  EXPECT_EQ(files, 1);
  EXPECT_THROW(atomic_write_file(d + "/no/such/dir/f", std::string("x")), Error);
  EXPECT_THROW(read_file(d + "/missing"), Error);
  EXPECT_THROW(read_file(d), Error);
}

}  // namespace
}  // namespace moe
