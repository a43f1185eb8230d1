#include "terminal.h"

#include <unistd.h>

#include <cstdio>

namespace moe::cli {

std::string format_duration(double s) {
  if (s < 0) s = 0;
  const int64_t t = int64_t(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%lldh%02lldm", (long long)(t / 3600), (long long)(t / 60 % 60));
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%lldm%02llds", (long long)(t / 60), (long long)(t % 60));
  else std::snprintf(buf, sizeof buf, "%llds", (long long)t);
  return buf;
}

std::string join_ints(const std::vector<int>& v) {
  std::string s;
  for (int x : v) {  // appends: `"," + std::to_string(x)` trips GCC 12's false -Wrestrict
    if (!s.empty()) s += ',';
    s += std::to_string(x);
  }
  return s;
}

std::string format_rate(double v) {
  char buf[32];
  if (v >= 1e6) std::snprintf(buf, sizeof buf, "%.2fM", v / 1e6);
  else if (v >= 1e3) std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
  else std::snprintf(buf, sizeof buf, "%.0f", v);
  return buf;
}

namespace {
bool g_quiet = false;
}

void ProgressLine::set_quiet(bool quiet) { g_quiet = quiet; }

ProgressLine::ProgressLine() : tty_(isatty(STDERR_FILENO)) {}

void ProgressLine::update(const std::string& text, bool force) {
  if (g_quiet) return;
  if (tty_) {
    std::fprintf(stderr, "\r\033[K%s", text.c_str());
    live_ = true;
  } else if (force) {
    std::fprintf(stderr, "%s\n", text.c_str());
  }
  std::fflush(stderr);
}

void ProgressLine::finish() {
  if (tty_ && live_) std::fprintf(stderr, "\n");
  live_ = false;
  std::fflush(stderr);
}

void ProgressLine::print(const std::string& text) {
  if (g_quiet) return;
  if (tty_ && live_) std::fprintf(stderr, "\r\033[K");
  std::fprintf(stderr, "%s\n", text.c_str());
  live_ = false;
  std::fflush(stderr);
}

}  // namespace moe::cli
