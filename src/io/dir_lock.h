#pragma once
// One writer per checkpoint directory: an advisory lock (flock) on DIR/.moe.lock, held for the
// life of the object. The kernel drops it when the process exits in any way, SIGKILL included, so
// a crashed run never leaves a stale lock; the file itself stays and holds the last holder's pid.
#include <string>

namespace moe {

class DirLock {
 public:
  // Locks dir (which must exist). Throws moe::Error naming the holder's pid when another process
  // holds it; `who` names the locking command in that message ("moe train").
  DirLock(const std::string& dir, const std::string& who);
  ~DirLock();
  DirLock(const DirLock&) = delete;
  DirLock& operator=(const DirLock&) = delete;

 private:
  int fd_ = -1;
};

}  // namespace moe
