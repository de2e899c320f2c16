// MqttSource: subscribes to a broker and feeds readings to the pipelines.
//
// One thread per source owns the connection: it connects (TLS with
// OpenSSL when the URL is ssl:// or mqtts://), subscribes on every connect
// (a broker that lost the session gets the subscriptions back), takes
// readings, and reconnects with capped exponential backoff. The state is
// logged once per change, not per attempt.
//
// The MQTT client is our own (platform/mqtt_wire.h) rather than a
// library's, for two reasons: acknowledge after commit for a whole batch
// (Paho acknowledges each message as its callback returns, which costs a
// commit per reading), and no allocation or copy per message on the way in
// (a reading is decoded straight from the read buffer). Everything read in
// one go (up to 512 messages) is one batch: decoded, run through the
// pipelines and committed once (PipelineRunner::Process); the PUBACKs (QoS
// 1) or PUBRECs (QoS 2) go out together after the commit. A reading that
// does not decode goes to the dead-letter store with the reason and is
// acknowledged only once it is written there.
//
// It speaks MQTT 5 and asks for a Receive Maximum of 4096: the broker keeps
// sending while a batch commits. Over MQTT 3.1.1 the broker's own limit
// applies (mosquitto: max_inflight_messages, 20 by default), so batches at
// QoS 1/2 are at most that big and the broker queues the rest meanwhile
// (and drops past max_queued_messages). A broker that refuses MQTT 5 is
// spoken to in 3.1.1 from then on.
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
  std::atomic<uint64_t> retained_skipped{0};
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
