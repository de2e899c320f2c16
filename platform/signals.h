// Process signals as events a thread waits for, instead of async handlers.
//
// Create one SignalWaiter in main() before starting any thread: it blocks
// SIGINT, SIGTERM and SIGHUP in the calling thread, and threads started later
// inherit the mask, so only Wait() ever sees those signals.
#ifndef SLUICE_PLATFORM_SIGNALS_H_
#define SLUICE_PLATFORM_SIGNALS_H_

#include <optional>

#include "platform/clock.h"

namespace sluice {

class SignalWaiter {
 public:
  SignalWaiter();
  ~SignalWaiter();
  SignalWaiter(const SignalWaiter&) = delete;
  SignalWaiter& operator=(const SignalWaiter&) = delete;

  // The signal number received within `timeout`, or nullopt.
  std::optional<int> Wait(Millis timeout);
};

}  // namespace sluice

#endif  // SLUICE_PLATFORM_SIGNALS_H_
