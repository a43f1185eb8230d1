#pragma once
// Crash-safe file writes: data goes to a temporary file in the target's directory, is fsynced, and
// is renamed over the target (then the directory is fsynced). A crash at any point leaves either
// the old file or the new one, never a mix.
#include <cstddef>
#include <string>

namespace moe {

class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);
  ~AtomicFileWriter();  // removes the temporary file unless commit() succeeded
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  void write(const void* data, size_t size);
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

void atomic_write_file(const std::string& path, const void* data, size_t size);
void atomic_write_file(const std::string& path, const std::string& content);

// The whole file; throws moe::Error naming the file when it is missing or unreadable.
std::string read_file(const std::string& path);

}  // namespace moe
