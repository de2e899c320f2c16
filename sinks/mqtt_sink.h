// MqttSink: republishes records to a broker, for sites whose uplink is MQTT.
//
//   sinks:
//     upstream: { type: mqtt, url: "ssl://hub.example.com:8883",
//                 topic: "plants/{agent}/{pipeline}", qos: 1 }
//
// One message per record, its JSON body as the payload, on the rendered
// topic template (a record the template cannot be filled from is
// dead-lettered). A record counts as delivered when the broker acknowledged
// it (QoS 1: PUBACK, QoS 2: PUBCOMP; QoS 0: when written to the socket, so a
// broken connection can lose QoS 0 records). The connection is made on the
// first write and again after it is lost; until then records wait queued.
#ifndef SLUICE_SINKS_MQTT_SINK_H_
#define SLUICE_SINKS_MQTT_SINK_H_

#include <memory>

#include "config/config.h"
#include "sinks/sink.h"

namespace sluice::sinks {

// kInvalidArgument for a topic template that does not parse.
StatusOr<std::unique_ptr<Sink>> NewMqttSink(const std::string& sink_name,
                                            const config::MqttSinkConfig& config);

}  // namespace sluice::sinks

#endif  // SLUICE_SINKS_MQTT_SINK_H_
