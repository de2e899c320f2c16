// Operator: one stage of a pipeline, pure logic.
//
// Operators never touch a socket, a file or the system clock: time reaches
// them only as record timestamps, watermarks and ticks, so a test drives them
// exactly. Outputs leave through an Emitter.
//
// Not thread-safe: one thread at a time calls an operator.
#ifndef SLUICE_OPERATORS_OPERATOR_H_
#define SLUICE_OPERATORS_OPERATOR_H_

#include <cstdint>
#include <limits>
#include <memory>
#include <string>
#include <string_view>

#include "operators/record.h"
#include "platform/envelope.h"
#include "platform/status.h"

namespace sluice::operators {

// The watermark that closes everything: end of input.
inline constexpr int64_t kEndOfTime = std::numeric_limits<int64_t>::max();

class Emitter {
 public:
  virtual ~Emitter() = default;
  // One output record: `envelope` (serialized) goes to the pipeline's sinks,
  // `record` (the same content, structured) to pipelines that read this one.
  virtual void Emit(Envelope envelope, const Record& record) = 0;
  // A record the operator cannot use (too late for its window, ...): it is
  // dead-lettered with `reason`, never silently dropped.
  virtual void Reject(const Record& record, std::string_view reason) = 0;
  // True when the caller would rather take further output on a later call
  // (what it holds is already as much as it commits at once). An operator
  // may then put off work that can wait, such as closing more windows, to
  // its next call; it must not drop or reorder anything.
  virtual bool Saturated() const { return false; }
};

// Counters an operator keeps about itself (for metrics and status).
struct OperatorStats {
  uint64_t late = 0;            // records rejected as too late
  uint64_t unmatched = 0;       // expressions false because a field was missing or mistyped
  uint64_t filtered = 0;        // records a `where` dropped
  uint64_t open_windows = 0;
  uint64_t keys = 0;            // keys holding state
  uint64_t firing = 0;          // alerts firing now
  uint64_t state_bytes = 0;     // approximate memory held by state
};

class Operator {
 public:
  virtual ~Operator() = default;

  [[nodiscard]] virtual Status OnRecord(const Record& record, Emitter& out) = 0;

  // Event time has reached `watermark_ms` (kEndOfTime at end of input):
  // emit everything that closes at or before it.
  [[nodiscard]] virtual Status OnWatermark(int64_t watermark_ms, Emitter& out) = 0;

  // Processing time is `now_ms` (wall clock, epoch ms). Called about once a
  // second by the agent, never by `sluice test`; operators with idle
  // timeouts advance their watermark from it.
  [[nodiscard]] virtual Status OnTick(int64_t now_ms, Emitter& out) {
    (void)now_ms;
    (void)out;
    return Status::Ok();
  }

  // All state as bytes, and back: Restore(Snapshot()) on a fresh operator of
  // the same spec continues exactly where this one was. kDataLoss when the
  // snapshot is malformed (the operator is then left empty).
  virtual std::string Snapshot() const = 0;
  [[nodiscard]] virtual Status Restore(std::string_view snapshot) = 0;

  virtual OperatorStats Stats() const { return {}; }
};

// Who is emitting: stamped on every output record.
struct OutputContext {
  std::string agent_id;
  std::string pipeline;
};

// Emits every record as a `reading` output record (DESIGN.md, "Output records").
std::unique_ptr<Operator> NewPassthrough(OutputContext context);

}  // namespace sluice::operators

#endif  // SLUICE_OPERATORS_OPERATOR_H_
