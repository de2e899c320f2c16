// Clock: the only way sluice code learns the time.
//
// Now() is monotonic (intervals, deadlines); WallNow() is the system clock
// (arrival times, record timestamps). Pass a Clock& in; never call
// std::chrono::*::now() directly, so tests can drive time with FakeClock
// (platform/testing/fake_clock.h).
#ifndef SLUICE_PLATFORM_CLOCK_H_
#define SLUICE_PLATFORM_CLOCK_H_

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace sluice {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;
using Millis = std::chrono::milliseconds;

// Milliseconds since the Unix epoch, the unit of every timestamp in records.
inline int64_t ToEpochMillis(WallTime t) {
  return std::chrono::duration_cast<Millis>(t.time_since_epoch()).count();
}

class Clock {
 public:
  virtual ~Clock() = default;
  virtual SteadyTime Now() const = 0;
  virtual WallTime WallNow() const = 0;
  // Waits on `cv` until notified or `deadline` (on this clock) passes.
  // Returns false when the deadline passed. `lock` must hold cv's mutex.
  virtual bool WaitUntil(std::unique_lock<std::mutex>& lock,
                         std::condition_variable& cv, SteadyTime deadline) const = 0;
};

// The process-wide real clock. Thread-safe; never destroyed.
Clock& RealClock();

}  // namespace sluice

#endif  // SLUICE_PLATFORM_CLOCK_H_
