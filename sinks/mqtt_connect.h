// The Paho connect options shared by the MQTT source (agent/) and the MQTT
// sink, so that TLS and credentials behave the same on both sides.
//
//   mqtt::connect_options options = MakeMqttConnectOptions(
//       {config.tls, config.username, config.password, /*clean_session=*/true});
#ifndef SLUICE_SINKS_MQTT_CONNECT_H_
#define SLUICE_SINKS_MQTT_CONNECT_H_

#include <chrono>
#include <mqtt/connect_options.h>
#include <optional>

#include "config/config.h"

namespace sluice::sinks {

inline constexpr auto kMqttConnectTimeout = std::chrono::seconds(10);

struct MqttEndpoint {
  const std::optional<config::TlsConfig>& tls;
  const config::Secret& username;
  const config::Secret& password;
  bool clean_session = true;
};

// Keep-alive 30 s, connect timeout kMqttConnectTimeout, no automatic
// reconnect (the owner reconnects with its own backoff), server certificate
// verified whenever TLS is on.
mqtt::connect_options MakeMqttConnectOptions(const MqttEndpoint& endpoint);

}  // namespace sluice::sinks

#endif  // SLUICE_SINKS_MQTT_CONNECT_H_
