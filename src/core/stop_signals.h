// SIGINT and SIGTERM, taken by one waiting thread instead of a signal handler.
//
// Why: the JIT sgemm kernels of Debian 12's oneDNN (2.7) point rsp at a heap workspace while
// they run (oneDNN issue #4845, fixed in 3.11). A handler that runs on such a thread writes its
// signal frame (an AVX-512 register dump) into the heap: "corrupted size vs. prev_size" aborts,
// about 1 in 15 SIGINTs to an expert-parallel training run. A signal that no compute thread can
// take cannot land there: route_stop_signals() blocks both signals in the calling thread, so in
// every thread started after it (OpenMP's, Open MPI's), and one thread waits for them (sigwait).
#pragma once

#include <atomic>

namespace moe {

// Blocks SIGINT and SIGTERM and starts the waiting thread; call first in main, before any other
// thread exists. Idempotent. While no StopOnSignal lives, a signal has its usual effect (the
// process ends by it, or nothing if it was ignored when the process started).
void route_stop_signals();

// While alive (after route_stop_signals), SIGINT and SIGTERM set `flag` instead of ending the
// process; the owner polls it. One at a time.
class StopOnSignal {
 public:
  explicit StopOnSignal(std::atomic<bool>& flag);
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;
};

}  // namespace moe
