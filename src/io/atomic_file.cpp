#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace moe {

namespace {
[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error("[io] " + path + ": " + what + ": " + std::strerror(errno));
}
std::string dir_of(const std::string& path) {
  const auto slash = path.find_last_of('/');
  return slash == std::string::npos ? "." : (slash == 0 ? "/" : path.substr(0, slash));
}
}  // namespace

AtomicFileWriter::AtomicFileWriter(const std::string& path)
    : path_(path), tmp_(path + ".tmp." + std::to_string(::getpid())) {
  fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) fail(path_, "cannot create temporary file");
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFileWriter::write(const void* data, size_t size) {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    const ssize_t n = ::write(fd_, p, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(path_, "write failed");
    }
    p += n;
    size -= size_t(n);
  }
}

void AtomicFileWriter::commit() {
  if (::fsync(fd_) != 0) fail(path_, "fsync failed");
  if (::close(fd_) != 0) {
    fd_ = -1;
    fail(path_, "close failed");
  }
  fd_ = -1;
  if (::rename(tmp_.c_str(), path_.c_str()) != 0) fail(path_, "rename failed");
  committed_ = true;
  const int dfd = ::open(dir_of(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);  // best effort: some file systems refuse fsync on directories
    ::close(dfd);
  }
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
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) throw Error("[io] " + path + ": " + std::strerror(errno));
  if (S_ISDIR(st.st_mode)) throw Error("[io] " + path + ": is a directory, expected a file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error("[io] " + path + ": cannot open for reading");
  std::ostringstream ss;
  ss << in.rdbuf();
  if (in.bad()) throw Error("[io] " + path + ": read failed");
  return ss.str();
}

}  // namespace moe
