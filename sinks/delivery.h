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
#include <optional>
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
};

struct DeliveryCounters {
  std::atomic<uint64_t> delivered{0};
  std::atomic<uint64_t> retried{0};        // failed attempts that will be retried
  std::atomic<uint64_t> dead_lettered{0};
};

// For the status endpoint: how the upstream has been doing.
struct SinkHealth {
  std::optional<bool> connected;    // the sink's own view; nullopt: no connection
  int64_t last_success_ms = 0;      // wall time of the last delivered batch; 0: never
  int64_t last_error_ms = 0;        // wall time of the last failed attempt; 0: never
  std::string last_error;           // its reason
  bool failing = false;             // the last attempt failed and is being retried
  bool refusing = false;            // the upstream refused the last batch (or some of
                                    // its records) for good: dead-lettered
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

  // Thread-safe: makes a Write in progress give up (the batch stays queued).
  void Abort() { sink_.Abort(); }

  const DeliveryCounters& counters() const { return counters_; }
  SinkHealth health() const;

 private:
  bool StopRequested();
  // Sleeps until `until` or until the drain deadline passes; false when the
  // loop should give up.
  bool Backoff(Millis delay);
  // Waits until the queue holds `records` records or `delay` passed, unless
  // Stop() is called meanwhile.
  void Linger(Millis delay, size_t records);
  // Cuts the batch at the sink's byte limit.
  void TrimToBytes(std::vector<QueuedEnvelope>& batch) const;
  void NoteSuccess();
  void NoteFailure(const Status& status);
  Status DeadLetterBatch(std::span<const QueuedEnvelope> batch, size_t index,
                         const Status& reason);
  Millis NextDelay();

  const std::string name_;
  Sink& sink_;
  SinkQueue& queue_;
  DeadLetterStore& dead_letters_;
  const Clock& clock_;
  const DeliveryOptions options_;
  const BatchLimits limits_;
  DeliveryCounters counters_;

  mutable std::mutex health_mu_;
  SinkHealth health_;

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
