// MqttPublisher: one MQTT 3.1.1 connection that publishes, on NetStream and
// the wire code the MQTT source reads with: the MQTT sink's and `sluice
// simulate`'s, so that all three share TLS, credentials and their errors.
// Synchronous, on the caller's thread: between calls nothing is read,
// pinged or acknowledged, so a caller that idles calls KeepAlive().
//
//   ASSIGN_OR_RETURN(auto client, MqttPublisher::Connect(options, cancel_fd));
//   RETURN_IF_ERROR(client->Publish("plant/out", body, /*qos=*/1));
//   RETURN_IF_ERROR(client->Await(/*in_flight=*/0, deadline));  // all acknowledged
#ifndef SLUICE_PLATFORM_MQTT_PUBLISHER_H_
#define SLUICE_PLATFORM_MQTT_PUBLISHER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "platform/clock.h"
#include "platform/mqtt_wire.h"
#include "platform/net_stream.h"
#include "platform/status.h"

namespace sluice {

// An MQTT URL as config/ validated it: tcp://host:port or ssl://host:port
// (mqtt://, mqtts:// too), the host possibly a bracketed IPv6 address.
struct MqttEndpoint {
  std::string host;
  int port = 0;
  bool tls = false;
};
MqttEndpoint ParseMqttUrl(const std::string& url);

class MqttPublisher {
 public:
  struct Options {
    std::string url;
    std::optional<TlsOptions> tls;    // used with an ssl:// url
    mqtt::ConnectOptions connect;     // its version is ignored: 3.1.1
    Millis timeout{10000};            // to connect, and for CONNACK
  };

  // Connects, and returns once the broker accepted us: kUnavailable with the
  // broker's reason (kPermissionDenied for bad credentials), or what
  // NetStream says. `cancel_fd` readable: kAborted, here and in every wait.
  static StatusOr<std::unique_ptr<MqttPublisher>> Connect(const Options& options,
                                                          int cancel_fd = -1);
  ~MqttPublisher();

  // Queues one PUBLISH (written by Await, or here once much is queued). At
  // QoS 1 and 2 it stays in flight until the broker completes it.
  Status Publish(std::string_view topic, std::string_view payload, int qos);
  // Writes what is queued, then reads the broker's answers (PUBREC gets its
  // PUBREL) until at most `in_flight` publishes are unanswered. Pings when
  // nothing was sent for half the keep-alive. kDeadlineExceeded at
  // `deadline` (one already past: after taking what has arrived; the
  // connection is still good); kUnavailable when it broke.
  Status Await(size_t in_flight, SteadyTime deadline);
  // Never waits: takes what the broker sent meanwhile (answers, a
  // DISCONNECT, a closed socket) and pings when nothing was sent for half
  // the keep-alive; kUnavailable when a ping went unanswered that long. For
  // a caller with nothing to send, every second or so, so that the broker
  // does not drop an idle connection and a dead one is noticed.
  Status KeepAlive();
  // DISCONNECT, best effort: the broker drops our last will, if any.
  void Disconnect();

  size_t in_flight() const { return in_flight_.size(); }
  // QoS 1 and 2 publishes the broker completed, since Connect.
  uint64_t completed() const { return completed_; }

 private:
  MqttPublisher(std::unique_ptr<NetStream> net, Millis keep_alive, Millis write_timeout);
  // Writes what is queued, waiting up to `timeout` (write_timeout_) for room.
  Status Flush(std::optional<Millis> timeout = std::nullopt);
  Status Ping();
  // Handles what has arrived, without waiting.
  Status TakeArrived();
  // Records the first failure: once a write or read failed, the connection
  // is not used again (part of a packet may have gone out).
  Status Fail(Status why);
  // Reads once what is there (into in_), and handles every complete packet.
  Status ReadSome();
  Status ReadAndHandle();
  void Consume(size_t used);
  Status Handle(const mqtt::Packet& packet);
  uint16_t NextPacketId();

  enum class Stage : uint8_t { kAwaitingAck, kAwaitingComp };

  std::unique_ptr<NetStream> net_;
  const Millis keep_alive_;
  const Millis write_timeout_;
  Status broken_ = Status::Ok();
  std::string out_;
  std::vector<char> in_;
  size_t have_ = 0;
  std::unordered_map<uint16_t, Stage> in_flight_;
  uint16_t last_id_ = 0;
  uint64_t completed_ = 0;
  size_t pings_unanswered_ = 0;
  SteadyTime last_sent_;
};

}  // namespace sluice

#endif  // SLUICE_PLATFORM_MQTT_PUBLISHER_H_
