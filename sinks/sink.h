// Sink: where output records leave the agent.
//
//   SinkRegistry registry;
//   sinks::RegisterBuiltins(registry);
//   StatusOr<std::unique_ptr<Sink>> sink = registry.Create(sink_config);
//
// A sink is built from validated config once (bad config fails at start, not
// on the first record) and is then driven by a DeliveryLoop (delivery.h).
#ifndef SLUICE_SINKS_SINK_H_
#define SLUICE_SINKS_SINK_H_

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "config/config.h"
#include "platform/clock.h"
#include "platform/envelope.h"
#include "platform/status.h"

namespace sluice::sinks {

// A record the upstream refused for good (index into the written batch).
struct Rejection {
  size_t index;
  Status reason;
};

// What a sink says about one Write().
struct [[nodiscard]] WriteResult {
  // OK: every record not listed in `rejected` was delivered.
  // Transient (IsTransient): nothing counts as delivered; retry the batch.
  // Any other code: the whole batch is refused for good; dead-letter it.
  Status status;
  std::vector<Rejection> rejected;
  std::optional<Millis> retry_after;  // the upstream asked to wait this long
};

// How a sink wants its batches cut. The delivery loop waits up to
// `max_delay` after the first queued record for a fuller batch, then hands
// over at most `max_records` records and `max_bytes` of bodies (a single
// larger record still goes alone).
struct BatchLimits {
  size_t max_records = 512;
  uint64_t max_bytes = 0;  // 0: no limit
  Millis max_delay{2};
};

// Driven by one delivery thread: Write, Flush and Idle are never called at once.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual WriteResult Write(std::span<const Envelope> batch) = 0;
  // Makes everything written so far durable upstream; called at shutdown.
  [[nodiscard]] virtual Status Flush() { return Status::Ok(); }
  virtual BatchLimits batch_limits() const { return {}; }
  // Thread-safe: makes a Write or Flush in progress return soon (kCancelled,
  // nothing delivered that was not confirmed). Called when the shutdown
  // grace period is over.
  virtual void Abort() {}
  // Called by the delivery thread about every DeliveryOptions::idle_poll
  // while the queue is empty: keeps an idle connection alive (never waits).
  virtual void Idle() {}
  // Whether the sink holds a working connection upstream; nullopt for sinks
  // without one (file, stdout). Thread-safe.
  virtual std::optional<bool> connected() const { return std::nullopt; }
};

using SinkFactory =
    std::function<StatusOr<std::unique_ptr<Sink>>(const config::SinkConfig& config)>;
// What the factory would refuse, found without building the sink (no file
// opened, no thread, no connection): for `sluice validate`.
using SinkChecker = std::function<Status(const config::SinkConfig& config)>;

// Sink types by name. Filled explicitly (RegisterBuiltins), never by static
// initialisers, so a statically linked binary and a test's own registry both
// see exactly what was registered.
class SinkRegistry {
 public:
  // kAlreadyExists for a second factory under the same type.
  Status Register(const std::string& type, SinkFactory factory, SinkChecker checker = {});
  // kUnimplemented when `config.type` is not registered in this build.
  StatusOr<std::unique_ptr<Sink>> Create(const config::SinkConfig& config) const;
  // The type's checker (OK when it has none), errors prefixed "sink '<name>'".
  Status Check(const config::SinkConfig& config) const;
  bool Has(const std::string& type) const { return factories_.count(type) > 0; }

 private:
  std::map<std::string, SinkFactory> factories_;
  std::map<std::string, SinkChecker> checkers_;
};

// stdout, file, http, kafka and mqtt.
void RegisterBuiltins(SinkRegistry& registry);

}  // namespace sluice::sinks

#endif  // SLUICE_SINKS_SINK_H_
