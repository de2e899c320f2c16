#include "agent/mqtt_source.h"

#include <condition_variable>
#include <mqtt/async_client.h>
#include <mutex>
#include <thread>

#include "platform/log.h"
#include "sinks/mqtt_connect.h"

namespace sluice::agent {
namespace {

constexpr Millis kInitialBackoff{100};
constexpr Millis kMaxBackoff{30000};
constexpr auto kConnectTimeout = sinks::kMqttConnectTimeout;
constexpr auto kSubscribeTimeout = std::chrono::seconds(10);

}  // namespace

class MqttSource::Impl {
 public:
  Impl(const config::SourceConfig& config, int index, operators::DecodeOptions decode,
       PipelineRunner& pipelines, DeadLetterStore& dead_letters, const Clock& clock)
      : config_(config),
        index_(index),
        decoder_(std::move(decode)),
        pipelines_(pipelines),
        dead_letters_(dead_letters),
        clock_(clock),
        bad_payload_log_(LogLevel::kWarn, Millis(60000), clock) {}

  ~Impl() { Stop(); }

  Status Init() {
    try {
      // No client-side persistence: what we must not lose is kept by the
      // broker (persistent session) until we ack it, and by our own outbox.
      client_ = std::make_unique<mqtt::async_client>(config_.url, config_.client_id,
                                                     mqtt::create_options(MQTTVERSION_3_1_1),
                                                     nullptr);
    } catch (const mqtt::exception& e) {
      return Status::InvalidArgument("source '" + config_.name + "': " + e.what());
    }
    client_->set_message_callback([this](mqtt::const_message_ptr msg) { OnMessage(msg); });
    client_->set_connection_lost_handler([this](const std::string& cause) {
      counters_.connected.store(false);
      LogWarn("source '", config_.name, "': connection to ", config_.url, " lost",
              cause.empty() ? std::string() : ": " + cause, "; reconnecting");
      std::lock_guard<std::mutex> lock(mu_);
      connected_ = false;
      wake_.notify_all();
    });

    connect_options_ = sinks::MakeMqttConnectOptions(
        {config_.tls, config_.username, config_.password, !config_.persistent_session});
    return Status::Ok();
  }

  void Start() { supervisor_ = std::thread([this] { Supervise(); }); }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return;
      stopping_ = true;
      wake_.notify_all();
    }
    if (supervisor_.joinable()) supervisor_.join();
    if (client_ && client_->is_connected()) {
      try {
        client_->disconnect(std::chrono::seconds(5))->wait_for(std::chrono::seconds(10));
      } catch (const mqtt::exception& e) {
        LogWarn("source '", config_.name, "': disconnect: ", e.what());
      }
    }
    counters_.connected.store(false);
  }

  const std::string& name() const { return config_.name; }
  const SourceCounters& counters() const { return counters_; }

 private:
  void Supervise() {
    Millis backoff = kInitialBackoff;
    bool said_failing = false;
    uint64_t jitter = 0x2545F4914F6CDD1Dull + static_cast<uint64_t>(index_);
    while (true) {
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (stopping_) return;
        if (connected_) {
          wake_.wait(lock, [&] { return stopping_ || !connected_; });
          continue;
        }
      }
      Status s = ConnectAndSubscribe();
      if (s.ok()) {
        LogInfo("source '", config_.name, "': connected to ", config_.url, ", subscribed to ",
                config_.topics.size(), " topic filter(s) at QoS ", config_.qos);
        said_failing = false;
        backoff = kInitialBackoff;
        continue;
      }
      if (!said_failing) {
        LogWarn("source '", config_.name, "': cannot connect to ", config_.url, ": ", s.message(),
                "; retrying with backoff up to ", kMaxBackoff.count() / 1000, "s");
        said_failing = true;
      }
      jitter ^= jitter << 13;
      jitter ^= jitter >> 7;
      jitter ^= jitter << 17;
      Millis delay(backoff.count() / 2 +
                   static_cast<int64_t>(jitter % static_cast<uint64_t>(backoff.count() / 2 + 1)));
      backoff = std::min(kMaxBackoff, backoff * 2);
      std::unique_lock<std::mutex> lock(mu_);
      clock_.WaitUntil(lock, wake_, clock_.Now() + delay);
    }
  }

  Status ConnectAndSubscribe() {
    try {
      if (client_->is_connected()) {
        client_->disconnect()->wait_for(std::chrono::seconds(5));
      }
      auto tok = client_->connect(connect_options_);
      if (!tok->wait_for(kConnectTimeout + std::chrono::seconds(2))) {
        return Status::Unavailable("connect timed out");
      }
      // Subscribe on every connect: with a clean session, or a broker that
      // lost its state, nothing is resubscribed for us.
      auto filters = std::make_shared<mqtt::string_collection>();
      mqtt::iasync_client::qos_collection qos;
      for (const std::string& t : config_.topics) {
        filters->push_back(t);
        qos.push_back(config_.qos);
      }
      auto sub = client_->subscribe(filters, qos);
      if (!sub->wait_for(kSubscribeTimeout)) return Status::Unavailable("subscribe timed out");
      mqtt::subscribe_response response = sub->get_subscribe_response();
      for (auto code : response.get_reason_codes()) {
        if (static_cast<int>(code) >= 0x80) {
          return Status::PermissionDenied("broker refused the subscription (reason code " +
                                          std::to_string(static_cast<int>(code)) + ")");
        }
      }
    } catch (const mqtt::exception& e) {
      return Status::Unavailable(e.get_error_str().empty() ? e.what() : e.get_error_str());
    }
    std::lock_guard<std::mutex> lock(mu_);
    connected_ = true;
    counters_.connected.store(true);
    return Status::Ok();
  }

  // Runs on Paho's callback thread; Paho acks the message when this returns.
  void OnMessage(const mqtt::const_message_ptr& msg) {
    const std::string& payload = msg->get_payload_ref().str();
    counters_.messages.fetch_add(1, std::memory_order_relaxed);
    counters_.bytes.fetch_add(payload.size(), std::memory_order_relaxed);
    int64_t arrival = ToEpochMillis(clock_.WallNow());
    // Paho calls this from one thread per client: the scratch record is
    // reused, so its vectors and strings keep their capacity.
    operators::Record& record = scratch_;
    Status s = decoder_.Decode(msg->get_topic(), payload, arrival, &record);
    if (!s.ok()) {
      counters_.decode_errors.fetch_add(1, std::memory_order_relaxed);
      DeadLetterMessage(*msg, s, arrival);
      return;
    }
    // The raw message goes along: journaled with the outputs when a window or
    // alert reads this source, so the ack below follows a commit of both.
    s = pipelines_.Process(index_, record, msg->get_topic(), payload);
    if (!s.ok()) {
      // Only during shutdown, after the pipelines closed; the broker
      // redelivers what we did not take, as long as the session is persistent.
      LogWarn("source '", config_.name, "': reading not taken: ", s.ToString());
    }
  }

  void DeadLetterMessage(const mqtt::message& msg, const Status& reason, int64_t arrival) {
    bad_payload_log_.Log("source '" + config_.name + "': bad payload on '" +
                         msg.get_topic() + "' dead-lettered: " +
                         std::string(reason.message()));
    DeadLetter letter;
    letter.time_ms = arrival;
    letter.origin = "source";
    letter.name = config_.name;
    letter.topic = msg.get_topic();
    letter.reason = std::string(reason.message());
    letter.payload = msg.get_payload();
    // Hold the ack until the dead letter is written: a bad payload is kept too.
    Millis backoff = kInitialBackoff;
    while (true) {
      Status s = dead_letters_.Put(letter);
      if (s.ok()) return;
      LogError("source '", config_.name, "': cannot write dead letter, holding the message: ",
               s.ToString());
      {
        std::unique_lock<std::mutex> lock(mu_);
        if (stopping_) return;
        clock_.WaitUntil(lock, wake_, clock_.Now() + backoff);
      }
      backoff = std::min(kMaxBackoff, backoff * 2);
    }
  }

  const config::SourceConfig config_;
  const int index_;
  const operators::JsonDecoder decoder_;
  PipelineRunner& pipelines_;
  DeadLetterStore& dead_letters_;
  const Clock& clock_;
  RateLimitedLog bad_payload_log_;
  SourceCounters counters_;
  operators::Record scratch_;

  std::unique_ptr<mqtt::async_client> client_;
  mqtt::connect_options connect_options_;
  std::mutex mu_;
  std::condition_variable wake_;
  bool connected_ = false;
  bool stopping_ = false;
  std::thread supervisor_;
};

StatusOr<std::unique_ptr<MqttSource>> MqttSource::Create(const config::SourceConfig& config,
                                                         int index,
                                                         operators::DecodeOptions decode,
                                                         PipelineRunner& pipelines,
                                                         DeadLetterStore& dead_letters,
                                                         const Clock& clock) {
  auto impl = std::make_unique<Impl>(config, index, std::move(decode), pipelines, dead_letters, clock);
  RETURN_IF_ERROR(impl->Init());
  return std::unique_ptr<MqttSource>(new MqttSource(std::move(impl)));
}

MqttSource::MqttSource(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
MqttSource::~MqttSource() = default;
void MqttSource::Start() { impl_->Start(); }
void MqttSource::Stop() { impl_->Stop(); }
const std::string& MqttSource::name() const { return impl_->name(); }
const SourceCounters& MqttSource::counters() const { return impl_->counters(); }

}  // namespace sluice::agent
