// MqttSource: subscribes to a broker and feeds readings to the pipelines.
//
// One supervisor thread owns the connection: it connects, subscribes (on
// every connect, so a broker that lost the session gets the subscriptions
// back), and reconnects with capped exponential backoff. The state is logged
// once per change, not per attempt.
//
// Paho sends a QoS 1/2 ack when the message callback returns, so the callback
// returns only after PipelineRunner::Process() has queued the reading's
// outputs for the sinks. A reading that does not decode goes to the
// dead-letter store with the reason; it is acknowledged only once it is
// written there.
#ifndef SLUICE_AGENT_MQTT_SOURCE_H_
#define SLUICE_AGENT_MQTT_SOURCE_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "agent/pipeline_runner.h"
#include "config/config.h"
#include "operators/decode.h"
#include "platform/clock.h"
#include "platform/dead_letter.h"
#include "platform/status.h"

namespace sluice::agent {

struct SourceCounters {
  std::atomic<uint64_t> messages{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> decode_errors{0};
  std::atomic<bool> connected{false};
};

class MqttSource {
 public:
  // `index` identifies the source to the pipelines.
  static StatusOr<std::unique_ptr<MqttSource>> Create(const config::SourceConfig& config,
                                                      int index,
                                                      operators::DecodeOptions decode,
                                                      PipelineRunner& pipelines,
                                                      DeadLetterStore& dead_letters,
                                                      const Clock& clock);
  ~MqttSource();

  // Starts connecting in the background; returns at once.
  void Start();
  // Disconnects (waiting for callbacks in flight) and stops the supervisor.
  void Stop();

  const std::string& name() const;
  const SourceCounters& counters() const;

  class Impl;

 private:
  explicit MqttSource(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_MQTT_SOURCE_H_
