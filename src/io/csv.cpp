#include "io/csv.h"

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace moe {
namespace {

[[noreturn]] void fail(const std::string& source, int64_t line, const std::string& what) {
  throw Error("[csv] " + source + (line > 0 ? ":" + std::to_string(line) : "") + ": " + what);
}

// One record per call: its fields and the line it started on. False at the end of the text.
class Records {
 public:
  Records(std::string_view text, std::string source) : t_(text), source_(std::move(source)) {
    if (t_.size() >= 3 && t_.substr(0, 3) == "\xEF\xBB\xBF") pos_ = 3;
  }
  bool next(std::vector<std::string>& fields, int64_t& line) {
    fields.clear();
    // Skip blank lines between records (a trailing newline, an empty last line).
    while (pos_ < t_.size() && (t_[pos_] == '\n' || t_[pos_] == '\r')) {
      if (t_[pos_] == '\n') ++line_;
      ++pos_;
    }
    if (pos_ >= t_.size()) return false;
    line = line_;
    std::string field;
    bool quoted = false, was_quoted = false;
    while (pos_ < t_.size()) {
      const char c = t_[pos_++];
      if (quoted) {
        if (c == '"') {
          if (pos_ < t_.size() && t_[pos_] == '"') {
            field += '"';
            ++pos_;
          } else {
            quoted = false;
          }
        } else {
          if (c == '\n') ++line_;
          field += c;
        }
        continue;
      }
      if (c == '"') {
        if (!field.empty() || was_quoted) fail(source_, line_, "a quote inside an unquoted field (quote the whole field, and double the quote)");
        quoted = was_quoted = true;
      } else if (c == ',') {
        fields.push_back(std::move(field));
        field.clear();
        was_quoted = false;
      } else if (c == '\n' || c == '\r') {
        if (c == '\r' && pos_ < t_.size() && t_[pos_] == '\n') ++pos_;
        ++line_;
        break;
      } else {
        if (was_quoted) fail(source_, line_, "text after a closing quote");
        field += c;
      }
    }
    if (quoted) fail(source_, line, "a quoted field is not closed before the end of the file");
    fields.push_back(std::move(field));
    return true;
  }

 private:
  std::string_view t_;
  std::string source_;
  size_t pos_ = 0;
  int64_t line_ = 1;
};

std::string trim(const std::string& s) {
  size_t a = 0, b = s.size();
  while (a < b && (s[a] == ' ' || s[a] == '\t')) ++a;
  while (b > a && (s[b - 1] == ' ' || s[b - 1] == '\t')) --b;
  return s.substr(a, b - a);
}

bool parse_number(const std::string& s, double& out) {
  if (s.empty()) return false;
  char* end = nullptr;
  out = std::strtod(s.c_str(), &end);  // underflow to a denormal or 0 is fine; overflow gives inf
  return end == s.c_str() + s.size() && std::isfinite(out);
}

}  // namespace

const CsvColumn& CsvTable::column(const std::string& name) const {
  std::string known;
  for (const auto& c : columns) {
    if (c.name == name) return c;
    known += (known.empty() ? "" : ", ") + c.name;
  }
  throw Error("[csv] no column '" + name + "' (columns: " + known + ")");
}

CsvTable parse_csv(std::string_view text, const std::string& source, const CsvOptions& options) {
  Records records(text, source);
  std::vector<std::string> fields;
  int64_t line = 0;
  if (!records.next(fields, line)) fail(source, 0, "the file is empty (a CSV needs a header row and data rows)");
  CsvTable table;
  std::set<std::string> seen;
  for (size_t j = 0; j < fields.size(); ++j) {
    const std::string name = trim(fields[j]);
    if (name.empty()) fail(source, line, "column " + std::to_string(j + 1) + " of the header has no name");
    if (!seen.insert(name).second) fail(source, line, "the header names column '" + name + "' twice");
    CsvColumn c;
    c.name = name;
    table.columns.push_back(std::move(c));
  }
  for (const auto& name : options.categorical)
    if (!seen.count(name)) fail(source, line, "no column '" + name + "' to read as categories");
  const size_t width = table.columns.size();
  while (records.next(fields, line)) {
    if (fields.size() != width)
      fail(source, line, "a row of " + std::to_string(fields.size()) + " fields under a header of " + std::to_string(width));
    for (size_t j = 0; j < width; ++j) {
      CsvColumn& c = table.columns[j];
      const std::string v = trim(fields[j]);
      if (v.empty()) fail(source, line, "column '" + c.name + "' has no value (missing values are not supported)");
      double x = 0;
      const bool num = parse_number(v, x);
      if (table.rows == 0) c.numeric = num && !options.categorical.count(c.name);
      if (c.numeric) {
        if (!num) fail(source, line, "column '" + c.name + "' is numeric (from its first row) but holds '" + v + "'");
        c.values.push_back(x);
      } else {
        c.labels.push_back(v);
      }
    }
    ++table.rows;
  }
  if (table.rows == 0) fail(source, 0, "the header has no data rows under it");
  return table;
}

CsvTable read_csv(const std::string& path, const CsvOptions& options) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error("[csv] " + path + ": cannot open");
  f.seekg(0, std::ios::end);
  const auto size = f.tellg();
  if (size < 0) throw Error("[csv] " + path + ": cannot read");
  if (int64_t(size) > options.max_bytes)
    throw Error("[csv] " + path + ": " + std::to_string(int64_t(size)) + " bytes, more than the limit of " + std::to_string(options.max_bytes));
  f.seekg(0);
  std::string text(size_t(size), '\0');
  if (!f.read(text.data(), size)) throw Error("[csv] " + path + ": read failed");
  return parse_csv(text, path, options);
}

}  // namespace moe
