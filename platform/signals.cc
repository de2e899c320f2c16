#include "platform/signals.h"

#include <pthread.h>
#include <signal.h>

#include <cerrno>

namespace sluice {
namespace {

sigset_t HandledSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGHUP);
  return set;
}

}  // namespace

SignalWaiter::SignalWaiter() {
  sigset_t set = HandledSignals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  // A write to a closed socket must be an error, not a process kill.
  signal(SIGPIPE, SIG_IGN);
}

SignalWaiter::~SignalWaiter() {
  sigset_t set = HandledSignals();
  // Takes what came after the last Wait (a second SIGTERM during the stop):
  // unblocked, it would take its default action and kill a process that
  // stopped cleanly, with the signal's exit status instead of 0.
  timespec none{};
  while (sigtimedwait(&set, nullptr, &none) > 0) {
  }
  pthread_sigmask(SIG_UNBLOCK, &set, nullptr);
}

std::optional<int> SignalWaiter::Wait(Millis timeout) {
  sigset_t set = HandledSignals();
  timespec ts{};
  ts.tv_sec = static_cast<time_t>(timeout.count() / 1000);
  ts.tv_nsec = static_cast<long>((timeout.count() % 1000) * 1000000);
  int sig = sigtimedwait(&set, nullptr, &ts);
  if (sig < 0) return std::nullopt;  // EAGAIN (timeout) or EINTR
  return sig;
}

}  // namespace sluice
