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

// Called from one delivery thread at a time.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual WriteResult Write(std::span<const Envelope> batch) = 0;
  // Makes everything written so far durable upstream; called at shutdown.
  [[nodiscard]] virtual Status Flush() { return Status::Ok(); }
  // The largest batch worth handing to Write().
  virtual size_t max_batch_records() const { return 512; }
};

using SinkFactory =
    std::function<StatusOr<std::unique_ptr<Sink>>(const config::SinkConfig& config)>;

// Sink types by name. Filled explicitly (RegisterBuiltins), never by static
// initialisers, so a statically linked binary and a test's own registry both
// see exactly what was registered.
class SinkRegistry {
 public:
  // kAlreadyExists for a second factory under the same type.
  Status Register(const std::string& type, SinkFactory factory);
  // kUnimplemented when `config.type` is not registered in this build.
  StatusOr<std::unique_ptr<Sink>> Create(const config::SinkConfig& config) const;
  bool Has(const std::string& type) const { return factories_.count(type) > 0; }

 private:
  std::map<std::string, SinkFactory> factories_;
};

// stdout and file.
void RegisterBuiltins(SinkRegistry& registry);

}  // namespace sluice::sinks

#endif  // SLUICE_SINKS_SINK_H_
