#include "sinks/mqtt_sink.h"

#include <atomic>
#include <deque>
#include <mqtt/async_client.h>

#include "platform/log.h"
#include "sinks/mqtt_connect.h"
#include "sinks/record_template.h"

namespace sluice::sinks {
namespace {

// Publishes outstanding at once: above Paho's default of 10 so that a batch
// streams. A broker holds each QoS 2 publish until its PUBREL and takes only
// so many at once (mosquitto 20 by default, HiveMQ 10): one above its
// window is dropped unanswered, and the batch stalls until the ack times
// out. QoS 1 publishes are answered at once and need no such limit.
constexpr int kMaxInflight = 64;
constexpr int kMaxInflightQos2 = 10;
constexpr auto kAckTimeout = std::chrono::seconds(30);
constexpr auto kWaitStep = std::chrono::milliseconds(100);

class MqttSink : public Sink {
 public:
  MqttSink(std::string name, config::MqttSinkConfig config, RecordTemplate topic,
           std::unique_ptr<mqtt::async_client> client)
      : name_(std::move(name)),
        config_(std::move(config)),
        topic_(std::move(topic)),
        client_(std::move(client)) {
    options_ = MakeMqttConnectOptions({config_.tls, config_.username, config_.password, true});
    options_.set_max_inflight(kMaxInflight);
    client_->set_connection_lost_handler([this](const std::string& cause) {
      connected_.store(false);
      LogWarn("sink '", name_, "': connection to ", config_.url, " lost",
              cause.empty() ? std::string() : ": " + cause, "; reconnecting on the next write");
    });
  }

  ~MqttSink() override {
    try {
      if (client_->is_connected()) {
        client_->disconnect(std::chrono::seconds(2))->wait_for(std::chrono::seconds(5));
      }
    } catch (const mqtt::exception&) {
      // Going away anyway; what was not acknowledged is still queued.
    }
  }

  WriteResult Write(std::span<const Envelope> batch) override {
    if (Status s = EnsureConnected(); !s.ok()) return {s, {}, std::nullopt};

    WriteResult result;
    std::deque<mqtt::delivery_token_ptr> pending;
    try {
      for (size_t i = 0; i < batch.size(); ++i) {
        StatusOr<std::string> topic = topic_.Render(batch[i].body);
        if (!topic.ok()) {
          result.rejected.push_back({i, topic.status().WithContext("sink '" + name_ + "'")});
          continue;
        }
        if (topic->empty() || topic->find_first_of("+#") != std::string::npos) {
          result.rejected.push_back(
              {i, Status::InvalidArgument("sink '" + name_ + "': topic '" + *topic +
                                          "' rendered from '" + topic_.text() +
                                          "' is empty or holds a wildcard")});
          continue;
        }
        while (pending.size() >= static_cast<size_t>(config_.qos == 2 ? kMaxInflightQos2 : kMaxInflight)) {
          if (Status s = AwaitAck(pending.front()); !s.ok()) return {s, {}, std::nullopt};
          pending.pop_front();
        }
        const Envelope& e = batch[i];
        pending.push_back(client_->publish(*topic, e.body.data(), e.body.size(), config_.qos, false));
      }
      while (!pending.empty()) {
        if (Status s = AwaitAck(pending.front()); !s.ok()) return {s, {}, std::nullopt};
        pending.pop_front();
      }
    } catch (const mqtt::exception& e) {
      connected_.store(false);
      return {Status::Unavailable("sink '" + name_ + "': publish to " + config_.url + ": " +
                                  Reason(e)),
              {}, std::nullopt};
    }
    return result;
  }

  void Abort() override { aborted_.store(true); }

  // Unknown until the first write connects (or fails to): a sink idle since
  // the start is not down.
  std::optional<bool> connected() const override {
    if (!tried_.load()) return std::nullopt;
    return connected_.load();
  }

 private:
  static std::string Reason(const mqtt::exception& e) {
    return e.get_error_str().empty() ? e.what() : e.get_error_str();
  }

  Status EnsureConnected() {
    tried_.store(true);
    if (connected_.load() && client_->is_connected()) return Status::Ok();
    try {
      auto token = client_->connect(options_);
      if (!Await(token, kMqttConnectTimeout + std::chrono::seconds(2))) {
        return Status::Unavailable("sink '" + name_ + "': connect to " + config_.url +
                                   (aborted_.load() ? ": stopping" : ": timed out"));
      }
      token->get_connect_response();  // throws when the broker refused us
    } catch (const mqtt::exception& e) {
      return Status::Unavailable("sink '" + name_ + "': cannot connect to " + config_.url + ": " +
                                 Reason(e));
    }
    connected_.store(true);
    LogInfo("sink '", name_, "': connected to ", config_.url);
    return Status::Ok();
  }

  // Waits for `token` in small steps so that Abort() is seen; throws what the
  // token failed with.
  bool Await(const mqtt::token_ptr& token, std::chrono::milliseconds limit) {
    for (auto waited = std::chrono::milliseconds(0); waited < limit; waited += kWaitStep) {
      if (token->wait_for(kWaitStep)) return true;
      if (aborted_.load()) return false;
    }
    return false;
  }

  Status AwaitAck(const mqtt::delivery_token_ptr& token) {
    if (Await(token, kAckTimeout)) return Status::Ok();
    if (aborted_.load()) return Status::Aborted("sink '" + name_ + "': stopping");
    // No acknowledgement in time: the connection is suspect. Reconnecting on
    // the next write resends the whole batch.
    connected_.store(false);
    return Status::DeadlineExceeded("sink '" + name_ + "': no acknowledgement from " +
                                    config_.url + " within " +
                                    std::to_string(kAckTimeout.count()) + "s");
  }

  const std::string name_;
  const config::MqttSinkConfig config_;
  const RecordTemplate topic_;
  std::unique_ptr<mqtt::async_client> client_;
  mqtt::connect_options options_;
  std::atomic<bool> connected_{false};
  std::atomic<bool> tried_{false};
  std::atomic<bool> aborted_{false};
};

}  // namespace

StatusOr<std::unique_ptr<Sink>> NewMqttSink(const std::string& sink_name,
                                            const config::MqttSinkConfig& config) {
  ASSIGN_OR_RETURN(RecordTemplate topic, RecordTemplate::Parse(config.topic));
  std::unique_ptr<mqtt::async_client> client;
  try {
    // No client-side persistence: unacknowledged records stay in our outbox.
    client = std::make_unique<mqtt::async_client>(config.url, config.client_id,
                                                  mqtt::create_options(MQTTVERSION_3_1_1), nullptr);
  } catch (const mqtt::exception& e) {
    return Status::InvalidArgument("sink '" + sink_name + "': " + config.url + ": " + e.what());
  }
  return std::unique_ptr<Sink>(
      new MqttSink(sink_name, config, std::move(topic), std::move(client)));
}

}  // namespace sluice::sinks
