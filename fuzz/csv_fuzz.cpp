// The CSV reader: any bytes parse into a rectangular table or are refused with moe::Error.
#include "core/error.h"
#include "io/csv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moe::CsvOptions o;
    if (size > 0 && data[0] % 3 == 0) o.categorical = {"a"};
    const moe::CsvTable t = moe::parse_csv(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.csv", o);
    if (t.rows <= 0 || t.columns.empty()) __builtin_trap();
    for (const auto& c : t.columns)
      if (int64_t(c.numeric ? c.values.size() : c.labels.size()) != t.rows) __builtin_trap();
  } catch (const moe::Error&) {
  }
  return 0;
}
