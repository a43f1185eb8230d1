#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace moe {

namespace {

// err is passed explicitly: building the message may allocate, which is allowed to change errno.
[[noreturn]] void fail(const std::string& path, const char* what, int err) {
  throw Error("[io] " + path + ": " + what + ": " + std::strerror(err));
}

std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(const std::string& path)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path_, "cannot create temporary file", errno);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t size) {
  MOE_ASSERT(fd_ >= 0 && !committed_);
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path_, "write failed", errno);
    }
    if (n == 0) fail(path_, "write failed", ENOSPC);
    p += n;
    size -= size_t(n);
  }
}

void AtomicFileWriter::commit() {
  MOE_ASSERT(fd_ >= 0 && !committed_);
  if (::fsync(fd_) != 0) fail(path_, "fsync failed", errno);
  const int rc = ::close(fd_);
  fd_ = -1;
  if (rc != 0) fail(path_, "close failed", errno);
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail(path_, "rename failed", errno);
  committed_ = true;
  // Make the rename itself durable. Some file systems cannot fsync a directory (EINVAL); that is
  // not an error of the write.
  const std::string dir = dir_of(path_);
  const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) {
    if (errno == EACCES) return;  // a writable but unreadable directory: nothing more we can do
    fail(path_, "cannot open the directory to fsync it", errno);
  }
  const int drc = ::fsync(dfd);
  const int derr = errno;
  ::close(dfd);
  if (drc != 0 && derr != EINVAL && derr != ENOTSUP) fail(path_, "fsync of the directory failed", derr);
}

void atomic_write_file(const std::string& path, const void* data, size_t size) {
  AtomicFileWriter w(path);
  w.write(data, size);
  w.commit();
}

void atomic_write_file(const std::string& path, const std::string& content) {
  atomic_write_file(path, content.data(), content.size());
}

std::string read_file(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) fail(path, "cannot open", errno);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st;
  if (::fstat(fd, &st) != 0) fail(path, "cannot stat", errno);
  if (S_ISDIR(st.st_mode)) throw Error("[io] " + path + ": is a directory, expected a file");
  if (!S_ISREG(st.st_mode)) throw Error("[io] " + path + ": is not a regular file");
  std::string out;
  out.reserve(size_t(st.st_size));
  char buf[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path, "read failed", errno);
    }
    if (n == 0) break;
    out.append(buf, size_t(n));
  }
  return out;
}

int remove_stale_temporaries(const std::string& dir) {
  int n = 0;
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(".tmp.");
    if (at == std::string::npos || at + 5 == name.size()) continue;
    if (name.find_first_not_of("0123456789", at + 5) != std::string::npos) continue;
    if (std::filesystem::remove(e.path(), ec)) ++n;
  }
  return n;
}

}  // namespace moe
