#include "core/stop_signals.h"

#include <pthread.h>
#include <signal.h>

#include <mutex>
#include <string>
#include <thread>

#include "core/error.h"

namespace moe {

namespace {

std::atomic<std::atomic<bool>*> g_flag{nullptr};
bool g_ignored[2] = {false, false};  // SIGINT, SIGTERM ignored when the process started

// Never runs (both signals are blocked in every thread); it only keeps a disposition of SIG_IGN
// inherited from the parent from discarding the signals before sigwait sees them.
extern "C" void never_called(int) {}

sigset_t stop_set() {
  sigset_t s;
  sigemptyset(&s);
  sigaddset(&s, SIGINT);
  sigaddset(&s, SIGTERM);
  return s;
}

[[noreturn]] void wait_loop() {
  const sigset_t set = stop_set();
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (std::atomic<bool>* f = g_flag.load()) {
      f->store(true);
      continue;
    }
    if (g_ignored[sig == SIGTERM ? 1 : 0]) continue;
    // The usual effect: the default action, taken by this thread alone.
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    sigaction(sig, &dfl, nullptr);
    sigset_t one;
    sigemptyset(&one);
    sigaddset(&one, sig);
    pthread_sigmask(SIG_UNBLOCK, &one, nullptr);
    raise(sig);
  }
}

}  // namespace

void route_stop_signals() {
  static std::once_flag once;
  std::call_once(once, [] {
    const sigset_t set = stop_set();
    if (const int rc = pthread_sigmask(SIG_BLOCK, &set, nullptr); rc != 0)
      throw Error("[signals] pthread_sigmask failed (" + std::to_string(rc) + ")");
    const int sigs[2] = {SIGINT, SIGTERM};
    for (int i = 0; i < 2; ++i) {
      struct sigaction old {}, act {};
      act.sa_handler = never_called;
      sigemptyset(&act.sa_mask);
      sigaction(sigs[i], &act, &old);
      g_ignored[i] = old.sa_handler == SIG_IGN;
    }
    std::thread(wait_loop).detach();
  });
}

StopOnSignal::StopOnSignal(std::atomic<bool>& flag) {
  std::atomic<bool>* none = nullptr;
  if (!g_flag.compare_exchange_strong(none, &flag)) throw Error("[signals] a stop flag is already registered");
}

StopOnSignal::~StopOnSignal() { g_flag.store(nullptr); }

}  // namespace moe
