// DeliveryLoop: moves one sink's queued records upstream, at least once.
//
// Records leave the queue only after the sink confirmed them. Transient
// failures are retried with capped exponential backoff and jitter (or after
// the delay the upstream asked for); records refused for good go to the
// dead-letter store with the reason, so one bad record never blocks a queue.
//
//   DeliveryLoop loop("cloud", *sink, *queue, *dead_letters, clock, {});
//   std::thread t([&] { loop.Run(); });
//   ...
//   loop.Stop(clock.Now() + grace);  // drain until empty or the deadline
//   t.join();
#ifndef SLUICE_SINKS_DELIVERY_H_
#define SLUICE_SINKS_DELIVERY_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>

#include "platform/clock.h"
#include "platform/dead_letter.h"
#include "platform/log.h"
#include "platform/outbox.h"
#include "sinks/sink.h"

namespace sluice::sinks {

struct DeliveryOptions {
  Millis initial_backoff{100};
  Millis max_backoff{30000};
  Millis idle_poll{200};  // how long one wait for new records lasts
  // After the first record of a batch arrives, wait this long for more: one
  // write per few milliseconds instead of one wake-up and write per record.
  Millis linger{2};
};

struct DeliveryCounters {
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> retried{0};        // failed attempts that will be retried
  std::atomic<uint64_t> dead_lettered{0};
};

class DeliveryLoop {
 public:
  DeliveryLoop(std::string sink_name, Sink& sink, SinkQueue& queue, DeadLetterStore& dead_letters,
               const Clock& clock, DeliveryOptions options = {});

  // Delivers until Stop() was called and then either the queue is empty or
  // the drain deadline passed. Flushes the sink before returning.
  void Run();

  // Thread-safe. Records still queued at `drain_deadline` stay queued.
  void Stop(SteadyTime drain_deadline);

  const DeliveryCounters& counters() const { return counters_; }

 private:
  bool StopRequested();
  // Sleeps until `until` or until the drain deadline passes; false when the
  // loop should give up.
  bool Backoff(Millis delay);
  // Sleeps for `delay` unless Stop() is called meanwhile.
  void Linger(Millis delay);
  Status DeadLetterBatch(std::span<const QueuedEnvelope> batch, size_t index,
                         const Status& reason);
  Millis NextDelay();

  const std::string name_;
  Sink& sink_;
  SinkQueue& queue_;
  DeadLetterStore& dead_letters_;
  const Clock& clock_;
  const DeliveryOptions options_;
  DeliveryCounters counters_;

  std::mutex mu_;
  std::condition_variable wake_;
  bool stop_ = false;
  SteadyTime drain_deadline_;

  Millis backoff_{0};
  uint64_t jitter_state_;
  bool failing_ = false;
  // A failing Remove repeats for every batch: say it once a minute.
  RateLimitedLog remove_log_{LogLevel::kError, Millis(60000), clock_};
};

}  // namespace sluice::sinks

#endif  // SLUICE_SINKS_DELIVERY_H_
