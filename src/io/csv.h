#pragma once
// CSV tables for the classic mixture's tabular data (RFC 4180: a header row, comma-separated
// fields, double quotes around fields that hold commas, quotes or line breaks, "" for a quote;
// LF or CRLF line ends; a UTF-8 byte-order mark is skipped). Written here because Debian has no
// maintained C++ CSV library; the grammar is small and the fuzz target csv_fuzz covers it.
//
// A column is numeric when its first value parses as a number, categorical otherwise (or when
// named in CsvOptions::categorical). Everything a file can get wrong is a moe::Error naming the
// file, the line and the column: ragged rows, a missing value, text in a numeric column, an
// unterminated quote, an empty file, a header without rows, duplicate column names.
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace moe {

struct CsvColumn {
  std::string name;
  bool numeric = true;
  std::vector<double> values;       // numeric columns: one per row
  std::vector<std::string> labels;  // categorical columns: one per row
};

struct CsvTable {
  std::vector<CsvColumn> columns;
  int64_t rows = 0;
  // The column called name; moe::Error listing the columns otherwise.
  const CsvColumn& column(const std::string& name) const;
};

struct CsvOptions {
  std::set<std::string> categorical;  // columns read as categories even when they look numeric
  int64_t max_bytes = int64_t(1) << 32;
};

CsvTable read_csv(const std::string& path, const CsvOptions& options = {});
// source names the text in errors (a file name).
CsvTable parse_csv(std::string_view text, const std::string& source, const CsvOptions& options = {});

}  // namespace moe
