#pragma once
// Terminal output of the CLI: a live progress line on a TTY (rewritten in place), plain lines when
// stderr is a file or a pipe.
#include <cstdint>
#include <string>
#include <vector>

namespace moe::cli {

std::string format_duration(double seconds);
std::string format_rate(double per_s);  // 12.3k
std::string join_ints(const std::vector<int>& v);  // "1,3"

class ProgressLine {
 public:
  ProgressLine();
  ~ProgressLine() { finish(); }
  // Rewrites the line on a TTY; elsewhere prints it only when `force` (keeps logs readable).
  void update(const std::string& text, bool force = false);
  // Ends the live line so the next output starts on a fresh line.
  void finish();
  // Prints a full line above the live one.
  void print(const std::string& text);
  bool tty() const { return tty_; }
  // Off on the ranks of an mpirun job other than rank 0: one progress display per job.
  static void set_quiet(bool quiet);

 private:
  bool tty_;
  bool live_ = false;
};

}  // namespace moe::cli
