#include "sinks/kafka_sink.h"

#include <dlfcn.h>
#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "platform/clock.h"
#include "platform/log.h"
#include "sinks/record_template.h"

namespace sluice::sinks {
namespace {

// librdkafka is loaded with the first Kafka sink (or its check), not at
// start: an agent without one maps neither it nor what it pulls in (SASL,
// zstd, lz4, libcrypto). The package depends on librdkafka1 by name.
#define SLUICE_RDKAFKA_FUNCTIONS(X)                                                   \
  X(rd_kafka_conf_destroy)                                                     \
  X(rd_kafka_conf_get)                                                         \
  X(rd_kafka_conf_new)                                                         \
  X(rd_kafka_conf_set)                                                         \
  X(rd_kafka_conf_set_dr_msg_cb)                                               \
  X(rd_kafka_conf_set_error_cb)                                                \
  X(rd_kafka_conf_set_log_cb)                                                  \
  X(rd_kafka_conf_set_opaque)                                                  \
  X(rd_kafka_destroy)                                                          \
  X(rd_kafka_err2name)                                                         \
  X(rd_kafka_err2str)                                                          \
  X(rd_kafka_fatal_error)                                                      \
  X(rd_kafka_flush)                                                            \
  X(rd_kafka_message_status)                                                   \
  X(rd_kafka_new)                                                              \
  X(rd_kafka_opaque)                                                           \
  X(rd_kafka_outq_len)                                                         \
  X(rd_kafka_poll)                                                             \
  X(rd_kafka_producev)                                                         \
  X(rd_kafka_purge)                                                            \
  X(rd_kafka_topic_name)

struct Rdkafka {
#define SLUICE_DECLARE(name) decltype(&::name) name = nullptr;
  SLUICE_RDKAFKA_FUNCTIONS(SLUICE_DECLARE)
#undef SLUICE_DECLARE
};

// Filled once by LoadRdkafka, before any sink or check uses it.
Rdkafka rdkafka;

Status LoadRdkafka() {
  static std::string error;
  static std::once_flag once;
  std::call_once(once, [] {
    constexpr char kSoname[] = "librdkafka.so.1";
    void* handle = dlopen(kSoname, RTLD_NOW | RTLD_LOCAL);
    if (handle == nullptr) {
      error = std::string("kafka: the Kafka sink needs ") + kSoname + " (Debian: librdkafka1): " + dlerror();
      return;
    }
#define SLUICE_LOAD(name)                                                    \
    rdkafka.name = reinterpret_cast<decltype(&::name)>(dlsym(handle, #name)); \
    if (rdkafka.name == nullptr && error.empty()) error = std::string(kSoname) + " lacks " #name;
    SLUICE_RDKAFKA_FUNCTIONS(SLUICE_LOAD)
#undef SLUICE_LOAD
  });
  return error.empty() ? Status::Ok() : Status::FailedPrecondition(error);
}

constexpr char kIdHeader[] = "sluice-id";
constexpr size_t kMaxBatchRecords = 1000;
// One poll's wait: how soon Abort() and the deadline are noticed.
constexpr int kPollStepMs = 20;
// librdkafka fails a message itself after message.timeout.ms; Write gives up
// a little later, only in case a report never comes.
constexpr Millis kDeadlineMargin{5000};
// After a purge, the purged messages' reports come at the next poll; this
// only bounds a wait that should take microseconds.
constexpr Millis kPurgeCollectLimit{5000};
constexpr Millis kDestroyFlushLimit{5000};

std::string ErrName(rd_kafka_resp_err_t err) {
  return std::string(rdkafka.rd_kafka_err2name(err)) + " (" + rdkafka.rd_kafka_err2str(err) + ")";
}

// Reports that will not change however often the record is sent again: the
// record is dead-lettered with this code. Everything else is transient.
std::optional<StatusCode> PermanentCode(rd_kafka_resp_err_t err) {
  switch (err) {
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:  // also librdkafka's local size check
    case RD_KAFKA_RESP_ERR_INVALID_MSG_SIZE:
    case RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE:
    case RD_KAFKA_RESP_ERR_INVALID_MSG:  // CORRUPT_MESSAGE
    case RD_KAFKA_RESP_ERR_INVALID_RECORD:
    case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:  // invalid topic
      return StatusCode::kInvalidArgument;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
      return StatusCode::kPermissionDenied;
    default:
      return std::nullopt;
  }
}

// Kafka's own rule for topic names; checked here so that a template that
// renders "plant 7" is dead-lettered at once instead of being refused by
// the broker after a metadata round trip (or not at all by some brokers).
bool IsValidTopicName(std::string_view topic) {
  if (topic.empty() || topic.size() > 249 || topic == "." || topic == "..") return false;
  return std::all_of(topic.begin(), topic.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
  });
}

// librdkafka quotes a refused value in its message ("Invalid value "x" for
// configuration property ..."); property values may be secrets.
std::string WithoutValue(std::string text, const std::string& value) {
  if (value.empty()) return text;
  const std::string quoted = "\"" + value + "\"";
  for (size_t at = text.find(quoted); at != std::string::npos; at = text.find(quoted, at)) {
    text.replace(at, quoted.size(), "<value hidden>");
  }
  if (value.size() >= 4) {
    for (size_t at = text.find(value); at != std::string::npos; at = text.find(value, at)) {
      text.replace(at, value.size(), "<value hidden>");
    }
  }
  return text;
}

struct Setting {
  std::string name;
  std::string value;
};

class KafkaSink final : public Sink {
 public:
  KafkaSink(std::string name, std::vector<Setting> settings, RecordTemplate topic,
            std::optional<RecordTemplate> key, Millis linger)
      : name_(std::move(name)),
        context_("sink '" + name_ + "': kafka: "),
        settings_(std::move(settings)),
        topic_(std::move(topic)),
        key_(std::move(key)),
        linger_(linger) {}

  ~KafkaSink() override { DestroyProducer(aborted_.load() ? Millis(0) : kDestroyFlushLimit); }

  KafkaSink(const KafkaSink&) = delete;
  KafkaSink& operator=(const KafkaSink&) = delete;

  // Builds the first producer: every setting is checked here, at start.
  Status Start() { return CreateProducer(); }

  WriteResult Write(std::span<const Envelope> batch) override;
  // Write returns only once every report of its batch is in (or purged):
  // nothing is ever left to flush.
  Status Flush() override { return Status::Ok(); }
  BatchLimits batch_limits() const override {
    BatchLimits limits;
    limits.max_records = kMaxBatchRecords;
    limits.max_bytes = 0;  // librdkafka splits into protocol batches itself
    limits.max_delay = std::min(linger_, Millis(5));
    return limits;
  }
  void Abort() override { aborted_.store(true); }
  std::optional<bool> connected() const override { return connected_.load(); }

 private:
  enum class Outcome : uint8_t { kPending, kDelivered, kRejected, kTransient };
  struct Slot {
    Outcome outcome = Outcome::kPending;
    Status reason;
  };

  Status CreateProducer();
  void DestroyProducer(Millis flush_limit);
  // kOk once queued in librdkafka; kInvalidArgument/kPermissionDenied: the
  // record is refused for good; otherwise transient (give up the batch).
  Status Produce(size_t index, const Envelope& e, const std::string& topic,
                 const std::string& key, SteadyTime deadline);
  // Non-OK (transient) when the producer is dead or the write must stop.
  Status Interrupted(SteadyTime deadline);
  // Purges whatever of this batch is still in librdkafka and collects the
  // purged messages' reports, so that none arrives after Write returned
  // (and a stray one could only ever hit a stale sequence number).
  void GiveUp();
  void RememberConfirmed(std::span<const Envelope> batch);
  std::optional<Status> FatalError();
  void HandleFatal(const Status& fatal);

  void OnDelivery(const rd_kafka_message_t* m);
  void OnError(int err, const char* reason);
  void OnLog(int level, const char* facility, const char* text);

  static void DeliveryCallback(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    static_cast<KafkaSink*>(opaque)->OnDelivery(m);
  }
  static void ErrorCallback(rd_kafka_t*, int err, const char* reason, void* opaque) {
    static_cast<KafkaSink*>(opaque)->OnError(err, reason);
  }
  static void LogCallback(const rd_kafka_t* rk, int level, const char* facility,
                          const char* text) {
    if (void* opaque = rdkafka.rd_kafka_opaque(rk)) {
      static_cast<KafkaSink*>(opaque)->OnLog(level, facility, text);
    }
  }

  const std::string name_;
  const std::string context_;  // "sink 'cloud': kafka: "
  const std::vector<Setting> settings_;
  const RecordTemplate topic_;
  const std::optional<RecordTemplate> key_;  // nullopt: the envelope's key
  const Millis linger_;
  Millis attempt_timeout_{30000};  // message.timeout.ms as librdkafka took it

  rd_kafka_t* producer_ = nullptr;  // null after a fatal error until the next Write

  // The batch being written. A message carries its sequence number as its
  // opaque; slot = seq - base_seq_. Reports of earlier batches fall outside
  // [0, slots_.size()) and are ignored: no report ever points into memory.
  uintptr_t next_seq_ = 1;
  uintptr_t base_seq_ = 0;
  std::vector<Slot> slots_;
  size_t outstanding_ = 0;

  // Records a successful report confirmed during the last Write that still
  // failed as a whole (id → hash of the body). The loop retries that same
  // batch; these are not sent again, so an outage that ends mid-batch does
  // not duplicate the part that got through. Cleared by a Write that succeeds.
  std::unordered_map<std::string, size_t> confirmed_;

  std::atomic<bool> aborted_{false};
  std::atomic<bool> connected_{false};
  RateLimitedLog error_log_{LogLevel::kWarn, Millis(30000)};
  RateLimitedLog rdkafka_warn_log_{LogLevel::kWarn, Millis(30000)};
};

StatusOr<rd_kafka_conf_t*> NewConf(const std::vector<Setting>& settings) {
  RETURN_IF_ERROR(LoadRdkafka());
  char errstr[512] = {};
  rd_kafka_conf_t* conf = rdkafka.rd_kafka_conf_new();
  for (const Setting& s : settings) {
    if (rdkafka.rd_kafka_conf_set(conf, s.name.c_str(), s.value.c_str(), errstr, sizeof errstr) !=
        RD_KAFKA_CONF_OK) {
      rdkafka.rd_kafka_conf_destroy(conf);
      return Status::InvalidArgument("kafka: property '" + s.name +
                                     "' refused by librdkafka: " + WithoutValue(errstr, s.value));
    }
  }
  return conf;
}

Status KafkaSink::CreateProducer() {
  char errstr[512] = {};
  ASSIGN_OR_RETURN(rd_kafka_conf_t * conf, NewConf(settings_));
  size_t size = sizeof errstr;
  if (rdkafka.rd_kafka_conf_get(conf, "message.timeout.ms", errstr, &size) == RD_KAFKA_CONF_OK) {
    attempt_timeout_ = Millis(std::strtoll(errstr, nullptr, 10));
  }
  rdkafka.rd_kafka_conf_set_opaque(conf, this);
  rdkafka.rd_kafka_conf_set_dr_msg_cb(conf, &KafkaSink::DeliveryCallback);
  rdkafka.rd_kafka_conf_set_error_cb(conf, &KafkaSink::ErrorCallback);
  rdkafka.rd_kafka_conf_set_log_cb(conf, &KafkaSink::LogCallback);
  errstr[0] = '\0';
  rd_kafka_t* rk = rdkafka.rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk == nullptr) {
    rdkafka.rd_kafka_conf_destroy(conf);  // rd_kafka_new owns it only on success
    std::string message = errstr;
    for (const Setting& s : settings_) message = WithoutValue(message, s.value);
    return Status::InvalidArgument("kafka: creating the producer failed: " + message);
  }
  producer_ = rk;
  return Status::Ok();
}

void KafkaSink::DestroyProducer(Millis flush_limit) {
  if (producer_ == nullptr) return;
  // Write leaves nothing in flight; this only bounds the unexpected.
  if (rdkafka.rd_kafka_outq_len(producer_) > 0) {
    rdkafka.rd_kafka_flush(producer_, static_cast<int>(flush_limit.count()));
    rdkafka.rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    rdkafka.rd_kafka_poll(producer_, 0);
  }
  rdkafka.rd_kafka_destroy(producer_);
  producer_ = nullptr;
}

std::optional<Status> KafkaSink::FatalError() {
  char errstr[512] = {};
  rd_kafka_resp_err_t err = rdkafka.rd_kafka_fatal_error(producer_, errstr, sizeof errstr);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return std::nullopt;
  return Status::Unavailable("kafka: fatal producer error " + std::string(rdkafka.rd_kafka_err2name(err)) +
                             ": " + errstr + "; the producer is recreated");
}

void KafkaSink::HandleFatal(const Status& fatal) {
  // Said once per dead producer: the next Write builds a new one.
  LogError("sink '", name_, "': ", fatal.message());
  DestroyProducer(Millis(0));
  connected_.store(false);
}

Status KafkaSink::Interrupted(SteadyTime deadline) {
  if (aborted_.load()) {
    return Status(StatusCode::kAborted, "kafka: aborted at shutdown; the batch stays queued");
  }
  if (std::optional<Status> fatal = FatalError()) return *fatal;
  if (RealClock().Now() >= deadline) {
    return Status::DeadlineExceeded("kafka: no delivery report within " +
                                    std::to_string((attempt_timeout_ + kDeadlineMargin).count()) +
                                    " ms; the batch will be sent again");
  }
  return Status::Ok();
}

Status KafkaSink::Produce(size_t index, const Envelope& e, const std::string& topic,
                          const std::string& key, SteadyTime deadline) {
  while (true) {
    const rd_kafka_resp_err_t err = rdkafka.rd_kafka_producev(
        producer_, RD_KAFKA_V_TOPIC(topic.c_str()),
        RD_KAFKA_V_VALUE(const_cast<char*>(e.body.data()), e.body.size()),
        RD_KAFKA_V_KEY(key.empty() ? nullptr : key.data(), key.size()),
        RD_KAFKA_V_HEADER(kIdHeader, e.id.data(), static_cast<ssize_t>(e.id.size())),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(base_seq_ + index)), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return Status::Ok();
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
      // librdkafka's queue is full: serve reports to make room, then retry.
      rdkafka.rd_kafka_poll(producer_, kPollStepMs);
      RETURN_IF_ERROR(Interrupted(deadline));
      continue;
    }
    if (std::optional<StatusCode> code = PermanentCode(err)) {
      return Status(*code, "kafka: topic '" + topic + "' refused the record: " + ErrName(err));
    }
    return Status::Unavailable("kafka: producing to topic '" + topic + "' failed: " +
                               ErrName(err));
  }
}

WriteResult KafkaSink::Write(std::span<const Envelope> batch) {
  if (aborted_.load()) {
    return {Status(StatusCode::kAborted, "kafka: aborted at shutdown; the batch stays queued"),
            {},
            std::nullopt};
  }
  if (producer_ == nullptr) {
    if (Status s = CreateProducer(); !s.ok()) {
      return {Status::Unavailable(s.message()), {}, std::nullopt};
    }
    LogInfo(context_, "producer recreated");
  }
  rdkafka.rd_kafka_poll(producer_, 0);  // events from while the queue was idle
  const SteadyTime deadline = RealClock().Now() + attempt_timeout_ + kDeadlineMargin;
  base_seq_ = next_seq_;
  next_seq_ += batch.size();
  slots_.assign(batch.size(), Slot{});
  outstanding_ = 0;

  Status stop;  // non-OK: give the batch up (transient)
  for (size_t i = 0; i < batch.size() && stop.ok(); ++i) {
    const Envelope& e = batch[i];
    Slot& slot = slots_[i];
    if (auto it = confirmed_.find(e.id);
        it != confirmed_.end() && it->second == std::hash<std::string>{}(e.body)) {
      slot.outcome = Outcome::kDelivered;  // written in the previous attempt
      continue;
    }
    StatusOr<std::string> topic = topic_.Render(e.body);
    if (topic.ok() && !IsValidTopicName(*topic)) {
      topic = Status::InvalidArgument(
          "kafka: topic template '" + topic_.text() + "' gave '" + *topic +
          "', not a valid Kafka topic (letters, digits, '.', '_', '-'; at most 249)");
    }
    StatusOr<std::string> key = key_ ? key_->Render(e.body) : StatusOr<std::string>(e.key);
    if (!topic.ok() || !key.ok()) {
      slot.outcome = Outcome::kRejected;
      slot.reason = Status::InvalidArgument(
          "kafka: record cannot be routed: " +
          std::string(topic.ok() ? key.status().message() : topic.status().message()));
      continue;
    }
    Status produced = Produce(i, e, *topic, *key, deadline);
    if (produced.ok()) {
      ++outstanding_;
    } else if (!IsTransient(produced) && produced.code() != StatusCode::kAborted) {
      slot.outcome = Outcome::kRejected;
      slot.reason = produced;
    } else {
      stop = produced;
    }
  }
  while (stop.ok() && outstanding_ > 0) {
    rdkafka.rd_kafka_poll(producer_, kPollStepMs);
    if (outstanding_ > 0) stop = Interrupted(deadline);
  }
  if (stop.ok()) {
    if (std::optional<Status> fatal = FatalError()) stop = *fatal;
  }
  if (!stop.ok()) {
    GiveUp();
    RememberConfirmed(batch);
    if (FatalError()) HandleFatal(stop);
    return {stop.code() == StatusCode::kAborted ? stop : Status::Unavailable(stop.message()),
            {},
            std::nullopt};
  }

  WriteResult result{Status::Ok(), {}, std::nullopt};
  size_t transient = 0;
  Status first_transient;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].outcome == Outcome::kRejected) {
      result.rejected.push_back({i, slots_[i].reason});
    } else if (slots_[i].outcome == Outcome::kTransient) {
      if (transient++ == 0) first_transient = slots_[i].reason;
    }
  }
  if (transient > 0) {
    // Nothing of the batch counts: the loop sends it again (less what was
    // confirmed now), and records refused for good are refused again then.
    RememberConfirmed(batch);
    return {Status::Unavailable("kafka: " + std::to_string(transient) + " of " +
                                std::to_string(batch.size()) +
                                " records not delivered; first: " +
                                std::string(first_transient.message())),
            {},
            std::nullopt};
  }
  confirmed_.clear();
  return result;
}

void KafkaSink::RememberConfirmed(std::span<const Envelope> batch) {
  confirmed_.clear();
  for (size_t i = 0; i < slots_.size() && i < batch.size(); ++i) {
    if (slots_[i].outcome == Outcome::kDelivered) {
      confirmed_[batch[i].id] = std::hash<std::string>{}(batch[i].body);
    }
  }
}

void KafkaSink::GiveUp() {
  if (producer_ == nullptr) return;
  rdkafka.rd_kafka_purge(producer_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  const SteadyTime until = RealClock().Now() + kPurgeCollectLimit;
  while (outstanding_ > 0 && RealClock().Now() < until) rdkafka.rd_kafka_poll(producer_, kPollStepMs);
  if (outstanding_ > 0) {
    LogWarn(context_, outstanding_,
            " delivery reports still missing after a purge; they will be ignored");
  }
  for (Slot& slot : slots_) {
    if (slot.outcome == Outcome::kPending) slot.outcome = Outcome::kTransient;
  }
  outstanding_ = 0;
}

void KafkaSink::OnDelivery(const rd_kafka_message_t* m) {
  const uintptr_t index = reinterpret_cast<uintptr_t>(m->_private) - base_seq_;
  if (index >= slots_.size() || slots_[index].outcome != Outcome::kPending) return;  // stale
  Slot& slot = slots_[index];
  --outstanding_;
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR &&
      rdkafka.rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_PERSISTED) {
    slot.outcome = Outcome::kDelivered;
    connected_.store(true);
    return;
  }
  const std::string topic = m->rkt != nullptr ? rdkafka.rd_kafka_topic_name(m->rkt) : "?";
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    // Not seen in practice; never count a record that is not known written.
    slot.outcome = Outcome::kTransient;
    slot.reason = Status::Unavailable("kafka: topic '" + topic +
                                      "': delivery report without an error, not persisted");
    return;
  }
  if (std::optional<StatusCode> code = PermanentCode(m->err)) {
    slot.outcome = Outcome::kRejected;
    slot.reason = Status(*code, "kafka: topic '" + topic + "' refused the record: " +
                                    ErrName(m->err));
    return;
  }
  slot.outcome = Outcome::kTransient;
  std::string reason = "kafka: topic '" + topic + "': " + ErrName(m->err);
  if (rdkafka.rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED) {
    reason += " (possibly written; sent again, a duplicate carries the same sluice-id)";
  }
  slot.reason = Status::Unavailable(reason);
}

void KafkaSink::OnError(int code, const char* reason) {
  const auto err = static_cast<rd_kafka_resp_err_t>(code);
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT) {
    connected_.store(false);
  }
  if (err == RD_KAFKA_RESP_ERR__FATAL) return;  // Write finds it and says it once
  error_log_.Log(context_ + rdkafka.rd_kafka_err2name(err) + ": " + (reason ? reason : ""));
}

void KafkaSink::OnLog(int level, const char* facility, const char* text) {
  // syslog levels. Errors and warnings repeat while a broker is away (and the
  // error callback reports the same events): rate-limited.
  const std::string line =
      context_ + "librdkafka " + (facility ? facility : "") + ": " + (text ? text : "");
  if (level <= 4) {
    rdkafka_warn_log_.Log(line);
  } else if (level <= 6) {
    LogInfo(line);
  } else {
    LogDebug(line);
  }
}

}  // namespace

namespace {

// What a sink's config makes of the producer: its librdkafka settings and
// templates. Side-effect free; shared by NewKafkaSink and CheckKafkaSink.
struct KafkaPlan {
  std::vector<Setting> settings;
  RecordTemplate topic;
  std::optional<RecordTemplate> key;
};

StatusOr<KafkaPlan> PlanKafka(const std::string& sink_name, const config::KafkaSinkConfig& config) {
  if (config.brokers.empty()) return Status::InvalidArgument("kafka: no brokers");
  StatusOr<RecordTemplate> topic = RecordTemplate::Parse(config.topic);
  if (!topic.ok()) return topic.status().WithContext("kafka: topic");
  std::optional<RecordTemplate> key;
  if (!config.key.empty()) {
    StatusOr<RecordTemplate> parsed = RecordTemplate::Parse(config.key);
    if (!parsed.ok()) return parsed.status().WithContext("kafka: key");
    key = std::move(*parsed);
  }

  std::string brokers;
  for (const std::string& b : config.brokers) brokers += (brokers.empty() ? "" : ",") + b;
  std::vector<Setting> settings = {
      {"client.id", "sluice-" + sink_name},
      {"bootstrap.servers", brokers},
      // At least once without the producer's own retries adding duplicates
      // or reordering a partition (the loader refuses properties that
      // would turn these off).
      {"enable.idempotence", "true"},
      {"acks", "all"},
      // The Java client's partitioner: a key lands on the same partition
      // whichever client wrote it.
      {"partitioner", "murmur2_random"},
      {"compression.codec", config.compression},
      {"linger.ms", std::to_string(config.linger.count())},
      {"message.timeout.ms", std::to_string(config.timeout.count())},
      // Idle connections closed by brokers are normal, not worth a line.
      {"log.connection.close", "false"},
  };
  if (config.batch_size) settings.push_back({"batch.size", std::to_string(*config.batch_size)});
  if (config.tls) {
    if (!config.tls->ca.empty()) settings.push_back({"ssl.ca.location", config.tls->ca});
    if (!config.tls->cert.empty()) {
      settings.push_back({"ssl.certificate.location", config.tls->cert});
    }
    if (!config.tls->key.empty()) settings.push_back({"ssl.key.location", config.tls->key});
  }
  if (config.sasl) {
    settings.push_back({"security.protocol", config.tls ? "sasl_ssl" : "sasl_plaintext"});
    settings.push_back({"sasl.mechanisms", config.sasl->mechanism});
    settings.push_back({"sasl.username", config.sasl->username.value()});
    settings.push_back({"sasl.password", config.sasl->password.value()});
  } else if (config.tls) {
    settings.push_back({"security.protocol", "ssl"});
  }
  for (const auto& [name, value] : config.properties) settings.push_back({name, value.value()});
  return KafkaPlan{std::move(settings), std::move(*topic), std::move(key)};
}

}  // namespace

Status CheckKafkaSink(const std::string& sink_name, const config::KafkaSinkConfig& config) {
  ASSIGN_OR_RETURN(KafkaPlan plan, PlanKafka(sink_name, config));
  ASSIGN_OR_RETURN(rd_kafka_conf_t * conf, NewConf(plan.settings));
  rdkafka.rd_kafka_conf_destroy(conf);
  return Status::Ok();
}

StatusOr<std::unique_ptr<Sink>> NewKafkaSink(const std::string& sink_name,
                                             const config::KafkaSinkConfig& config) {
  ASSIGN_OR_RETURN(KafkaPlan plan, PlanKafka(sink_name, config));

  auto sink = std::make_unique<KafkaSink>(sink_name, std::move(plan.settings),
                                          std::move(plan.topic), std::move(plan.key),
                                          config.linger);
  RETURN_IF_ERROR(sink->Start());
  return std::unique_ptr<Sink>(std::move(sink));
}

}  // namespace sluice::sinks
