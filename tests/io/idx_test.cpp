// The IDX reader: plain and gzipped files round-trip; every kind of corrupt file gives one
// moe::Error naming the file and what is wrong; image and label files that disagree are refused.
#include "io/idx.h"

#include <zlib.h>

#include <fstream>

#include <gtest/gtest.h>

#include "../test_util.h"
#include "core/error.h"
#include "vision/image_set.h"

namespace moe {
namespace {

std::string header(uint8_t type, const std::vector<uint32_t>& dims) {
  std::string h = {0, 0, char(type), char(dims.size())};
  for (uint32_t d : dims)
    for (int s = 24; s >= 0; s -= 8) h += char((d >> s) & 0xff);
  return h;
}

std::string idx(const std::vector<uint32_t>& dims, uint8_t first = 0) {
  uint64_t n = 1;
  for (uint32_t d : dims) n *= d;
  std::string s = header(0x08, dims);
  for (uint64_t i = 0; i < n; ++i) s += char(uint8_t(first + i));
  return s;
}

void write(const std::string& path, const std::string& bytes) { std::ofstream(path, std::ios::binary) << bytes; }

void write_gz(const std::string& path, const std::string& bytes) {
  gzFile f = gzopen(path.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), unsigned(bytes.size())), int(bytes.size()));
  gzclose(f);
}

TEST(Idx, PlainAndGzipRoundTrip) {
  test::ScratchDir dir;
  const std::string bytes = idx({3, 2, 4}, 7);
  write(dir.file("a.idx"), bytes);
  write_gz(dir.file("a.idx.gz"), bytes);
  for (const std::string& f : {dir.file("a.idx"), dir.file("a.idx.gz")}) {
    const IdxArray a = read_idx(f);
    EXPECT_EQ(a.shape, (std::vector<int64_t>{3, 2, 4})) << f;
    ASSERT_EQ(a.data.size(), 24u);
    EXPECT_EQ(a.data[0], 7);
    EXPECT_EQ(a.data[23], 30);
  }
}

TEST(Idx, CorruptFilesGiveOneClearError) {
  const std::string good = idx({2, 3});
  const struct {
    std::string bytes, says;
  } cases[] = {
      {"", "too short for an IDX header"},
      {std::string("\x01\x00\x08\x01", 4) + good.substr(4), "not an IDX file"},
      {header(0x0d, {2}) + std::string(8, 'x'), "element type 0x0d is not supported"},
      {header(0x08, {}), "at least one dimension"},
      {good.substr(0, 9), "truncated in the header"},
      {header(0x08, {2, 0}), "dimension 1 is 0"},
      {header(0x08, {65536, 65536, 2}), "more than 4 GiB"},
      {good.substr(0, good.size() - 1), "(truncated)"},
      {good + "z", "(trailing bytes)"},
  };
  for (const auto& c : cases) {
    const std::string msg = test::error_of([&] { parse_idx(c.bytes, "f.idx"); });
    EXPECT_NE(msg.find("[idx] f.idx: "), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.says), std::string::npos) << "expected '" << c.says << "' in: " << msg;
  }
}

TEST(Idx, FileErrorsNameTheFile) {
  test::ScratchDir dir;
  EXPECT_NE(test::error_of([&] { read_idx(dir.file("missing.gz")); }).find("missing.gz: cannot open"), std::string::npos);
  // A gzip stream cut short.
  write_gz(dir.file("whole.gz"), idx({64, 64}));
  std::ifstream in(dir.file("whole.gz"), std::ios::binary);
  const std::string gz((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write(dir.file("cut.gz"), gz.substr(0, gz.size() / 2));
  const std::string msg = test::error_of([&] { read_idx(dir.file("cut.gz")); });
  EXPECT_NE(msg.find("cut.gz"), std::string::npos) << msg;
  EXPECT_EQ(msg.rfind("[idx] ", 0), 0u) << msg;
}

TEST(Idx, ImageSetChecksItsTwoFilesAgree) {
  test::ScratchDir dir;
  write(dir.file("img"), idx({4, 2, 2}));
  write(dir.file("lab"), header(0x08, {4}) + std::string("\x00\x03\x01\x02", 4));
  const vision::ImageSet s = vision::load_image_set(dir.file("img"), dir.file("lab"));
  EXPECT_EQ(s.n, 4);
  EXPECT_EQ(s.rows, 2);
  EXPECT_EQ(s.num_labels, 4);
  EXPECT_EQ(s.labels[1], 3);
  write(dir.file("lab3"), header(0x08, {3}) + std::string("\x00\x01\x02", 3));
  EXPECT_NE(test::error_of([&] { vision::load_image_set(dir.file("img"), dir.file("lab3")); }).find("4 images but"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { vision::load_image_set(dir.file("lab"), dir.file("lab")); }).find("images must have 3 dimensions"),
            std::string::npos);
  EXPECT_NE(test::error_of([&] { vision::load_image_set(dir.file("img"), dir.file("img")); }).find("labels must have 1 dimension"),
            std::string::npos);
}

}  // namespace
}  // namespace moe
