#pragma once
// Option checks shared by the moe CLI and the benchmark programs. CLI11 2.1's PositiveNumber and
// NonNegativeNumber report a bad value as "not in range 0.000000 to 1797693134862315...": these
// say what is wrong in words.
#include <CLI/CLI.hpp>
#include <string>

namespace moe::cli {

namespace detail {
// "" when s is a number that passes ok, else the message.
template <class Ok>
std::string check_number(const std::string& s, Ok ok, const char* what) {
  double v = 0;
  if (!CLI::detail::lexical_cast(s, v)) return "'" + s + "' is not a number";
  return ok(v) ? std::string() : std::string("must be ") + what + ", got " + s;
}
}  // namespace detail

inline const CLI::Validator Positive(
    [](std::string& s) { return detail::check_number(s, [](double v) { return v > 0; }, "positive"); }, "POSITIVE");
inline const CLI::Validator NonNegative(
    [](std::string& s) { return detail::check_number(s, [](double v) { return v >= 0; }, "zero or more"); },
    "NONNEGATIVE");

}  // namespace moe::cli
