// The CSV reader: quoting, line ends and column types, and every malformed input a clear error
// naming the file, line and column.
#include "io/csv.h"

#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "../test_util.h"
#include "core/error.h"

namespace moe {
namespace {

std::string error_of(const std::string& text, const CsvOptions& o = {}) {
  try {
    parse_csv(text, "data.csv", o);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Csv, ReadsQuotedFieldsLineEndsAndColumnTypes) {
  const std::string text =
      "\xEF\xBB\xBF" "x, colour ,\"y, in m\"\r\n"
      "1.5,red,2\r\n"
      "-2e-3,\"dark \"\"blue\"\"\",3\n"
      "\n"
      "4,\"two\nlines\",5\n";
  const CsvTable t = parse_csv(text, "data.csv");
  ASSERT_EQ(t.rows, 3);
  ASSERT_EQ(t.columns.size(), 3u);
  EXPECT_EQ(t.columns[0].name, "x");
  EXPECT_TRUE(t.columns[0].numeric);
  EXPECT_EQ(t.columns[0].values, (std::vector<double>{1.5, -2e-3, 4}));
  EXPECT_FALSE(t.column("colour").numeric);
  EXPECT_EQ(t.column("colour").labels, (std::vector<std::string>{"red", "dark \"blue\"", "two\nlines"}));
  EXPECT_EQ(t.column("y, in m").values, (std::vector<double>{2, 3, 5}));
  EXPECT_NE(test::error_of([&] { t.column("z"); }).find("no column 'z' (columns: x, colour, y, in m)"), std::string::npos);
}

TEST(Csv, CategoricalOptionAndNoTrailingNewline) {
  CsvOptions o;
  o.categorical = {"zip"};
  const CsvTable t = parse_csv("zip,v\n75001,1\n10115,2", "d.csv", o);
  EXPECT_FALSE(t.column("zip").numeric);
  EXPECT_EQ(t.column("zip").labels[1], "10115");
  EXPECT_EQ(t.column("v").values, (std::vector<double>{1, 2}));
}

TEST(Csv, MalformedInputsAreErrorsNamingLineAndColumn) {
  EXPECT_NE(error_of("").find("data.csv: the file is empty"), std::string::npos);
  EXPECT_NE(error_of("\n\n").find("the file is empty"), std::string::npos);
  EXPECT_NE(error_of("a,b\n").find("data.csv: the header has no data rows"), std::string::npos);
  EXPECT_NE(error_of("a,b\n1,2\n3\n").find("data.csv:3: a row of 1 fields under a header of 2"), std::string::npos);
  EXPECT_NE(error_of("a,b\n1,2,3\n").find("data.csv:2: a row of 3 fields"), std::string::npos);
  EXPECT_NE(error_of("a,b\n1,2\n4,\n").find("data.csv:3: column 'b' has no value"), std::string::npos);
  EXPECT_NE(error_of("a,b\n1,2\nx,3\n").find("data.csv:3: column 'a' is numeric (from its first row) but holds 'x'"),
            std::string::npos);
  EXPECT_NE(error_of("a,b\n1,2\nnan,3\n").find("holds 'nan'"), std::string::npos);
  EXPECT_NE(error_of("a,b\n1,2\n1e999,3\n").find("holds '1e999'"), std::string::npos);
  EXPECT_NE(error_of("a,b\n1,\"2\n").find("data.csv:2: a quoted field is not closed"), std::string::npos);
  EXPECT_NE(error_of("a,b\n1,x\"y\n").find("data.csv:2: a quote inside an unquoted field"), std::string::npos);
  EXPECT_NE(error_of("a,b\n1,\"x\"y\n").find("data.csv:2: text after a closing quote"), std::string::npos);
  EXPECT_NE(error_of("a,a\n1,2\n").find("data.csv:1: the header names column 'a' twice"), std::string::npos);
  EXPECT_NE(error_of("a,,c\n1,2,3\n").find("column 2 of the header has no name"), std::string::npos);
  CsvOptions o;
  o.categorical = {"q"};
  EXPECT_NE(error_of("a,b\n1,2\n", o).find("no column 'q' to read as categories"), std::string::npos);
}

TEST(Csv, FilesAndTheirErrors) {
  const auto dir = test::fresh_dir("csv");
  const std::string path = dir + "/t.csv";
  std::ofstream(path) << "a,b\n1,2\n";
  EXPECT_EQ(read_csv(path).rows, 1);
  EXPECT_NE(test::error_of([&] { read_csv(dir + "/missing.csv"); }).find("missing.csv: cannot open"), std::string::npos);
  CsvOptions small;
  small.max_bytes = 4;
  EXPECT_NE(test::error_of([&] { read_csv(path, small); }).find("more than the limit of 4"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace moe
