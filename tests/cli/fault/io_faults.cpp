// LD_PRELOAD fault injection for the CLI's I/O-error tests: write() and fsync() on a file whose
// path contains $MOE_FAULT_MATCH fail with EIO, after $MOE_FAULT_SKIP such calls went through;
// $MOE_FAULT_CALL picks which ("write" or "fsync"). Test-only: never linked into moe.
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <atomic>

namespace {

std::atomic<long> matched{0};

bool should_fail(int fd, const char* call) {
  const char* which = getenv("MOE_FAULT_CALL");
  const char* match = getenv("MOE_FAULT_MATCH");
  if (!which || !match || strcmp(which, call) != 0) return false;
  char link[64], path[PATH_MAX];
  snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
  const ssize_t n = readlink(link, path, sizeof path - 1);
  if (n <= 0) return false;
  path[n] = 0;
  if (!strstr(path, match)) return false;
  const char* skip = getenv("MOE_FAULT_SKIP");
  return matched.fetch_add(1) >= (skip ? atol(skip) : 0);
}

}  // namespace

extern "C" ssize_t write(int fd, const void* buf, size_t count) {
  using Fn = ssize_t (*)(int, const void*, size_t);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "write"));
  if (should_fail(fd, "write")) {
    errno = EIO;
    return -1;
  }
  return real(fd, buf, count);
}

extern "C" int fsync(int fd) {
  using Fn = int (*)(int);
  static Fn real = reinterpret_cast<Fn>(dlsym(RTLD_NEXT, "fsync"));
  if (should_fail(fd, "fsync")) {
    errno = EIO;
    return -1;
  }
  return real(fd);
}
