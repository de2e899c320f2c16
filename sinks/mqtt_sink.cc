#include "sinks/mqtt_sink.h"

#include <atomic>
#include <cerrno>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>

#include "platform/log.h"
#include "platform/mqtt_publisher.h"
#include "platform/mqtt_wire.h"
#include "sinks/record_template.h"

namespace sluice::sinks {
namespace {

// Publishes unanswered at once, so that a batch streams. A broker holds each
// QoS 2 publish until its PUBREL and takes only so many at once (mosquitto
// 20 by default, HiveMQ 10): one above its window is dropped unanswered, and
// the batch would stall until the wait below gives up. QoS 1 publishes are
// answered at once and need no such limit.
constexpr size_t kMaxInflight = 64;
constexpr size_t kMaxInflightQos2 = 10;
// How long the broker may take to answer (a publish, a ping) before the
// connection counts as broken; the batch is then sent again on a new one.
constexpr Millis kAckTimeout{30000};
constexpr Millis kConnectTimeout{10000};
constexpr uint16_t kKeepAliveSeconds = 30;

SteadyTime Now() { return RealClock().Now(); }

class MqttSink : public Sink {
 public:
  MqttSink(std::string name, config::MqttSinkConfig config, RecordTemplate topic, int cancel_fd)
      : name_(std::move(name)),
        config_(std::move(config)),
        topic_(std::move(topic)),
        cancel_fd_(cancel_fd) {
    options_.url = config_.url;
    if (config_.tls) options_.tls = TlsOptions{config_.tls->ca, config_.tls->cert, config_.tls->key};
    options_.connect.client_id = config_.client_id;
    options_.connect.clean_session = true;  // unacknowledged records stay in our outbox
    options_.connect.keep_alive_s = kKeepAliveSeconds;
    options_.connect.username = config_.username.value();
    options_.connect.password = config_.password.value();
    options_.timeout = kConnectTimeout;
  }

  ~MqttSink() override {
    // Going away: what was not acknowledged is still queued.
    if (client_) client_->Disconnect();
    client_.reset();
    close(cancel_fd_);
  }

  WriteResult Write(std::span<const Envelope> batch) override {
    if (Status s = EnsureConnected(); !s.ok()) return {s, {}, std::nullopt};

    WriteResult result;
    const size_t window = config_.qos == 2 ? kMaxInflightQos2 : kMaxInflight;
    Status s = Status::Ok();
    for (size_t i = 0; i < batch.size() && s.ok(); ++i) {
      StatusOr<std::string> topic = topic_.Render(batch[i].body);
      if (!topic.ok()) {
        result.rejected.push_back({i, topic.status().WithContext("sink '" + name_ + "'")});
        continue;
      }
      // What a broker would answer by hanging up, so that the batch would be
      // retried for ever: refused here, for this record alone.
      if (Status valid = mqtt::CheckTopicName(*topic); !valid.ok()) {
        const std::string shown = topic->size() > 200 ? topic->substr(0, 200) + "..." : *topic;
        result.rejected.push_back(
            {i, Status::InvalidArgument("sink '" + name_ + "': topic '" + shown +
                                        "' rendered from '" + topic_.text() +
                                        "' cannot be published to: " + std::string(valid.message()))});
        continue;
      }
      s = client_->Publish(*topic, batch[i].body, config_.qos);
      if (s.ok() && client_->in_flight() >= window) s = client_->Await(window - 1, Now() + kAckTimeout);
    }
    if (s.ok()) s = client_->Await(0, Now() + kAckTimeout);
    if (!s.ok()) return {Broken("publish to", s), {}, std::nullopt};
    return result;
  }

  void Idle() override {
    if (!client_) return;
    if (Status s = client_->KeepAlive(); !s.ok()) Lost(s);
  }

  void Abort() override {
    aborted_.store(true);
    const uint64_t one = 1;
    (void)!write(cancel_fd_, &one, sizeof one);  // wakes every wait on the connection
  }

  // Unknown until the first write connects (or fails to): a sink idle since
  // the start is not down.
  std::optional<bool> connected() const override {
    if (!tried_.load()) return std::nullopt;
    return connected_.load();
  }

 private:
  Status EnsureConnected() {
    tried_.store(true);
    if (client_) {
      // What came while no batch was written (Idle kept the connection alive).
      Status alive = client_->KeepAlive();
      if (alive.ok()) return alive;
      Lost(alive);
    }
    if (aborted_.load()) return Stopping();
    StatusOr<std::unique_ptr<MqttPublisher>> client = MqttPublisher::Connect(options_, cancel_fd_);
    if (!client.ok()) {
      if (aborted_.load()) return Stopping();
      // Refused credentials too: the records wait for a broker that takes them.
      return Status::Unavailable("sink '" + name_ + "': cannot connect to " + config_.url + ": " +
                                 std::string(client.status().message()));
    }
    client_ = std::move(*client);
    connected_.store(true);
    LogInfo("sink '", name_, "': connected to ", config_.url);
    return Status::Ok();
  }

  void Lost(const Status& why) {
    client_.reset();
    connected_.store(false);
    if (aborted_.load()) return;
    LogWarn("sink '", name_, "': connection to ", config_.url, " lost (", why.message(),
            "); reconnecting with the next batch");
  }

  // The connection is not to be trusted after any failure: the next write
  // makes a new one and sends the batch again.
  Status Broken(const char* doing, const Status& why) {
    client_.reset();
    connected_.store(false);
    if (aborted_.load()) return Stopping();
    return Status(why.code() == StatusCode::kDeadlineExceeded ? StatusCode::kDeadlineExceeded
                                                               : StatusCode::kUnavailable,
                  "sink '" + name_ + "': " + doing + " " + config_.url + ": " +
                      std::string(why.message()));
  }

  Status Stopping() const {
    return Status(StatusCode::kAborted, "sink '" + name_ + "': stopping (the batch stays queued)");
  }

  const std::string name_;
  const config::MqttSinkConfig config_;
  const RecordTemplate topic_;
  const int cancel_fd_;
  MqttPublisher::Options options_;
  std::unique_ptr<MqttPublisher> client_;
  std::atomic<bool> connected_{false};
  std::atomic<bool> tried_{false};
  std::atomic<bool> aborted_{false};
};

}  // namespace

StatusOr<std::unique_ptr<Sink>> NewMqttSink(const std::string& sink_name,
                                            const config::MqttSinkConfig& config) {
  ASSIGN_OR_RETURN(RecordTemplate topic, RecordTemplate::Parse(config.topic));
  const int cancel_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (cancel_fd < 0) return Status::Internal(std::string("eventfd: ") + std::strerror(errno));
  return std::unique_ptr<Sink>(new MqttSink(sink_name, config, std::move(topic), cancel_fd));
}

}  // namespace sluice::sinks
