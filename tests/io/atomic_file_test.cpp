// Atomic writes: content is replaced whole; a writer that never commits leaves the old file and no
// temporary file behind; failures throw moe::Error naming the file.
#include "io/atomic_file.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <csignal>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "../test_util.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

using test::ScratchDir;

using test::error_of;

TEST(AtomicFile, ReplacesContent) {
  ScratchDir d;
  const std::string p = d.file("f.bin");
  atomic_write_file(p, std::string("old"));
  EXPECT_EQ(read_file(p), "old");
  const std::string binary("a\0b\xff\n", 5);
  atomic_write_file(p, binary.data(), binary.size());
  EXPECT_EQ(read_file(p), binary);
  atomic_write_file(p, std::string());
  EXPECT_EQ(read_file(p), "");
  const std::string big(3 << 20, 'x');
  atomic_write_file(p, big);
  EXPECT_EQ(read_file(p), big);
  EXPECT_EQ(d.entries(), std::vector<std::string>{"f.bin"});
}

TEST(AtomicFile, StreamingWriterAppearsOnlyOnCommit) {
  ScratchDir d;
  const std::string p = d.file("stream.bin");
  atomic_write_file(p, std::string("old"));
  {
    AtomicFileWriter w(p);
    EXPECT_EQ(w.path(), p);
    w.write("hello ", 6);
    w.write("world", 5);
    w.write("", 0);
    EXPECT_EQ(read_file(p), "old");  // the target is untouched until commit
    w.commit();
  }
  EXPECT_EQ(read_file(p), "hello world");
  EXPECT_EQ(d.entries(), std::vector<std::string>{"stream.bin"});
}

TEST(AtomicFile, UncommittedWriterLeavesOldFileAndNoTemp) {
  ScratchDir d;
  const std::string p = d.file("f.txt");
  atomic_write_file(p, std::string("new content"));
  {
    AtomicFileWriter w(p);
    w.write("partial", 7);
    // destroyed without commit: an exception in the middle of a save
  }
  EXPECT_EQ(read_file(p), "new content");
  EXPECT_EQ(d.entries(), std::vector<std::string>{"f.txt"});
  // Same for a file that did not exist before.
  {
    AtomicFileWriter w(d.file("fresh.txt"));
    w.write("x", 1);
  }
  EXPECT_EQ(d.entries(), std::vector<std::string>{"f.txt"});
}

TEST(AtomicFile, FailuresThrowNamingTheFile) {
  ScratchDir d;
  const std::string nodir = d.file("no/such/dir/f");
  const std::string m1 = error_of([&] { atomic_write_file(nodir, std::string("x")); });
  EXPECT_EQ(m1.rfind("[io] " + nodir + ": ", 0), 0u) << m1;
  EXPECT_NE(m1.find("No such file or directory"), std::string::npos) << m1;

  // rename() cannot replace a non-empty directory: the error names the target, the temp is gone.
  const std::string target = d.file("occupied");
  fs::create_directories(target + "/child");
  const std::string m2 = error_of([&] { atomic_write_file(target, std::string("x")); });
  EXPECT_EQ(m2.rfind("[io] " + target + ": rename failed", 0), 0u) << m2;
  EXPECT_EQ(d.entries(), std::vector<std::string>{"occupied"});

  const std::string missing = d.file("missing");
  const std::string m3 = error_of([&] { read_file(missing); });
  EXPECT_EQ(m3.rfind("[io] " + missing + ": ", 0), 0u) << m3;
  EXPECT_NE(error_of([&] { read_file(d.path); }).find("is a directory"), std::string::npos);
}

// A full disk, simulated by a file-size limit (write() then fails with EFBIG, as with ENOSPC): one
// clear error naming the file, the previous content intact, no temporary file left.
TEST(AtomicFile, AFullDiskLeavesThePreviousFileAndNoTemp) {
  ScratchDir d;
  const std::string target = d.file("model.safetensors");
  atomic_write_file(target, std::string("previous checkpoint"));
  struct rlimit old {};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  const auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = old;
  small.rlim_cur = 4096;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string big(1 << 20, 'x');
  const std::string m = error_of([&] { atomic_write_file(target, big); });
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_EQ(m.rfind("[io] " + target + ": ", 0), 0u) << m;
  EXPECT_NE(m.find("File too large"), std::string::npos) << m;
  EXPECT_EQ(read_file(target), "previous checkpoint");
  EXPECT_EQ(d.entries(), std::vector<std::string>{"model.safetensors"});
}

}  // namespace
}  // namespace moe
