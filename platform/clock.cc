#include "platform/clock.h"

namespace sluice {
namespace {

class SystemClock final : public Clock {
 public:
  SteadyTime Now() const override { return std::chrono::steady_clock::now(); }
  WallTime WallNow() const override { return std::chrono::system_clock::now(); }
  bool WaitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                 SteadyTime deadline) const override {
    return cv.wait_until(lock, deadline) == std::cv_status::no_timeout;
  }
};

}  // namespace

Clock& RealClock() {
  static SystemClock* clock = new SystemClock();  // never destroyed: usable during exit
  return *clock;
}

}  // namespace sluice
