#include "sinks/mqtt_connect.h"

#include <mqtt/ssl_options.h>

namespace sluice::sinks {

mqtt::connect_options MakeMqttConnectOptions(const MqttEndpoint& endpoint) {
  auto builder = mqtt::connect_options_builder()
                     .clean_session(endpoint.clean_session)
                     .keep_alive_interval(std::chrono::seconds(30))
                     .connect_timeout(kMqttConnectTimeout)
                     .automatic_reconnect(false);
  if (!endpoint.username.empty()) builder.user_name(endpoint.username.value());
  if (!endpoint.password.empty()) builder.password(endpoint.password.value());
  if (endpoint.tls) {
    mqtt::ssl_options ssl;
    if (!endpoint.tls->ca.empty()) ssl.set_trust_store(endpoint.tls->ca);
    if (!endpoint.tls->cert.empty()) ssl.set_key_store(endpoint.tls->cert);
    if (!endpoint.tls->key.empty()) ssl.set_private_key(endpoint.tls->key);
    ssl.set_enable_server_cert_auth(true);
    ssl.set_verify(true);
    builder.ssl(std::move(ssl));
  }
  return builder.finalize();
}

}  // namespace sluice::sinks
