// SinkQueue: the records waiting for one sink, oldest first.
//
// Records are removed only after the sink confirmed delivery (Peek, then
// Remove), so a failed write leaves them in place for the retry.
//
// The durable implementation is a queue of the SQLite store (store.h).
#ifndef SLUICE_PLATFORM_OUTBOX_H_
#define SLUICE_PLATFORM_OUTBOX_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "platform/clock.h"
#include "platform/envelope.h"
#include "platform/status.h"

namespace sluice {

struct QueuedEnvelope {
  uint64_t seq = 0;  // increasing within one queue
  Envelope envelope;
};

// Safe for concurrent use: producers Append, one delivery thread Peeks and Removes.
class SinkQueue {
 public:
  virtual ~SinkQueue() = default;

  // Appends `batch` in order. Blocks while the queue is full, which is how
  // a slow sink pushes back on the pipeline. kCancelled once closed.
  [[nodiscard]] virtual Status Append(std::vector<Envelope> batch) = 0;

  // Up to `max` oldest records, left in the queue; waits up to `wait` for
  // the first one. Empty when nothing arrived in time or the queue is closed
  // and empty.
  [[nodiscard]] virtual StatusOr<std::vector<QueuedEnvelope>> Peek(size_t max, Millis wait) = 0;

  // Removes every record up to and including `through_seq`; `refused` of
  // them the sink refused for good (they went to the dead letters) and are
  // counted so, the others as delivered.
  [[nodiscard]] virtual Status Remove(uint64_t through_seq, uint64_t refused) = 0;
  [[nodiscard]] Status Remove(uint64_t through_seq) { return Remove(through_seq, 0); }

  // Refuses further appends and wakes every waiter; queued records stay readable.
  virtual void Close() = 0;

  virtual size_t size() const = 0;
};

}  // namespace sluice

#endif  // SLUICE_PLATFORM_OUTBOX_H_
