#pragma once
// Crash-safe file writes: data goes to a temporary file in the target's directory (path +
// ".tmp.<pid>"), is fsynced, closed and renamed over the target, then the directory is fsynced. A
// crash at any point leaves either the old file or the new one, never a mix. Every failure throws
// moe::Error("[io] <path>: <what>: <strerror>") and removes the temporary file.
#include <cstddef>
#include <string>

namespace moe {

// Streaming form, for files too big to hold in memory twice (safetensors checkpoints):
//   AtomicFileWriter w(path); w.write(p, n); ...; w.commit();
// A writer destroyed without a successful commit() removes its temporary file and leaves the
// target untouched.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(const std::string& path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

  // Appends size bytes at data to the temporary file.
  void write(const void* data, size_t size);
  // fsync, close, rename over the target, fsync the directory. Call at most once.
  void commit();

  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  bool committed_ = false;
};

void atomic_write_file(const std::string& path, const void* data, size_t size);
void atomic_write_file(const std::string& path, const std::string& content);

// Removes the temporary files that writers killed mid-write left in dir (PATH.tmp.<pid>); returns
// how many. Only for a directory this process has locked (io/dir_lock.h): no live writer then.
int remove_stale_temporaries(const std::string& dir);

// The whole file; throws moe::Error("[io] <path>: ...") when it is missing, a directory or
// unreadable.
std::string read_file(const std::string& path);

}  // namespace moe
