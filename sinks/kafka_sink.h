// KafkaSink: one Kafka message per output record, through librdkafka.
//
//   config::KafkaSinkConfig kafka;           // from the loader
//   kafka.brokers = {"kafka-1:9093"};
//   kafka.topic = "telemetry.{site}";
//   StatusOr<std::unique_ptr<Sink>> sink = NewKafkaSink("cloud", kafka);
//   DeliveryLoop loop("cloud", **sink, queue, dead_letters, clock);
//
// Message: value = the record's JSON body as stored, key = the rendered `key`
// template (the record's Envelope::key when the template is empty), header
// `sluice-id` = the record id, topic = the rendered `topic` template.
//
// Write() produces the whole batch, then polls until every delivery report
// of it has arrived: a record counts as delivered only on a successful
// report. Reports that mean "this record will never be accepted" (too large,
// not authorised, invalid record or topic) reject that record (dead-letter);
// every other failure (timeouts, brokers down, unknown topic, a fatal
// producer error) makes the whole batch transient (kUnavailable) and the
// delivery loop retries it: at least once, duplicates carry the same
// sluice-id. The producer is idempotent with acks=all.
//
// librdkafka stays behind this header (STYLE.md §1): only kafka_sink.cc
// includes rdkafka.h.
#ifndef SLUICE_SINKS_KAFKA_SINK_H_
#define SLUICE_SINKS_KAFKA_SINK_H_

#include <memory>
#include <string>

#include "config/config.h"
#include "platform/status.h"
#include "sinks/sink.h"

namespace sluice::sinks {

// Builds the producer (it connects in the background). kInvalidArgument when
// librdkafka refuses a setting (its message, never a property's value) or a
// template does not parse. Errors name the setting, not the sink: the
// registry adds "sink '<name>'".
StatusOr<std::unique_ptr<Sink>> NewKafkaSink(const std::string& sink_name,
                                             const config::KafkaSinkConfig& config);
// NewKafkaSink's checks without a producer (`sluice validate`): the same
// errors, no thread, no connection.
Status CheckKafkaSink(const std::string& sink_name, const config::KafkaSinkConfig& config);

}  // namespace sluice::sinks

#endif  // SLUICE_SINKS_KAFKA_SINK_H_
