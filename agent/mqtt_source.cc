#include "agent/mqtt_source.h"

#include <poll.h>
#include <time.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include "platform/log.h"
#include "platform/mqtt_publisher.h"  // MqttEndpoint
#include "platform/mqtt_wire.h"
#include "platform/net_stream.h"
#include "platform/thread_name.h"

namespace sluice::agent {
namespace {

constexpr Millis kInitialBackoff{100};
constexpr Millis kMaxBackoff{30000};
constexpr Millis kConnectTimeout{10000};
constexpr Millis kSubscribeTimeout{10000};
constexpr Millis kWriteTimeout{10000};
constexpr uint16_t kKeepAliveSeconds = 30;
// A connection lost sooner than this after its subscription does not reset
// the backoff: a broker that drops us at once (another client took our
// client id, a limit, a bridge loop) is not hammered several times a second.
constexpr Millis kStableConnection{10000};
// Read at least this much at a time: at full load one read brings hundreds
// of messages, which then share one commit.
constexpr size_t kReadChunk = 64 * 1024;
// Bytes read before the batch is taken, and readings per batch: bounds the
// memory a batch holds and the time until its acknowledgements go out.
constexpr size_t kReadAhead = 256 * 1024;
// The read buffer's bytes are left uninitialised when it grows: its pages
// become resident as data arrives, not all at once (zeroing the 64 KiB ahead
// of every read made an idle source hold 128 KiB).
template <typename T>
struct Uninitialized : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = Uninitialized<U>;
  };
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
};
constexpr size_t kMaxBatch = 512;
// A batch is taken once it holds kBatchTarget messages (or kReadChunk
// bytes), or kBatchLinger after its first message was read. The source
// sleeps until the target should be reached at the recent arrival rate: at
// 5,000 readings/s a batch fills in ~13 ms, at 50,000/s in ~1.3 ms. Each
// commit costs ~0.25 ms of CPU whatever its size (wake-ups, reads, the
// transaction): 128 would cut the CPU at 5,000/s by a third but doubles the
// alert latency, past 5 ms at p99 at QoS 1's half ceiling (~18,000/s).
constexpr size_t kBatchTarget = 64;
constexpr std::chrono::microseconds kBatchLinger{20000};

}  // namespace

class MqttSource::Impl {
 public:
  Impl(const config::SourceConfig& config, int index, operators::DecodeOptions decode,
       PipelineRunner& pipelines, DeadLetterStore& dead_letters, const Clock& clock)
      : config_(config),
        index_(index),
        endpoint_(ParseMqttUrl(config.url)),
        decoder_(std::move(decode)),
        pipelines_(pipelines),
        dead_letters_(dead_letters),
        clock_(clock),
        bad_payload_log_(LogLevel::kWarn, Millis(60000), clock) {}

  ~Impl() {
    Stop();
    if (wake_fd_ >= 0) close(wake_fd_);
  }

  Status Init() {
    wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (wake_fd_ < 0) return Status::Internal(std::string("eventfd: ") + std::strerror(errno));
    // Room for a batch's read-ahead and the chunk after it, so that it does
    // not move while it fills (untouched until read into).
    buffer_.reserve(kReadAhead + 2 * kReadChunk);
    if (config_.tls) tls_ = TlsOptions{config_.tls->ca, config_.tls->cert, config_.tls->key};
    connect_.client_id = config_.client_id;
    connect_.clean_session = !config_.persistent_session;
    connect_.keep_alive_s = kKeepAliveSeconds;
    connect_.receive_maximum = kReceiveMaximum;
    connect_.username = config_.username.value();
    connect_.password = config_.password.value();
    return Status::Ok();
  }

  void Start() {
    thread_ = std::thread([this] {
      NameThisThread("source " + config_.name);
      Run();
    });
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_.exchange(true)) return;
      wake_.notify_all();
    }
    uint64_t one = 1;
    (void)!write(wake_fd_, &one, sizeof one);
    if (thread_.joinable()) thread_.join();
    counters_.connected.store(false);
  }

  const std::string& name() const { return config_.name; }
  const SourceCounters& counters() const { return counters_; }

 private:
  // Connects, subscribes, takes readings until the connection ends, and
  // reconnects with capped, jittered exponential backoff. Each state is
  // logged once per change, not per attempt.
  void Run() {
    Millis backoff = kInitialBackoff;
    bool said_failing = false;
    uint64_t jitter = 0x2545F4914F6CDD1Dull + static_cast<uint64_t>(index_);
    while (!stopping_) {
      subscribed_ = false;
      Status s = Session();
      counters_.connected.store(false);
      if (stopping_) break;
      if (retry_now_) {
        retry_now_ = false;
        continue;
      }
      const bool brief = subscribed_ && clock_.Now() - subscribed_at_ < kStableConnection;
      if (subscribed_ && !brief) {
        LogWarn("source '", config_.name, "': connection to ", config_.url, " lost: ",
                s.message(), "; reconnecting");
        said_failing = false;
        backoff = kInitialBackoff;
      } else if (brief && !said_failing) {
        LogWarn("source '", config_.name, "': connection to ", config_.url,
                " lost right after it was set up: ", s.message(),
                "; retrying with backoff up to ", kMaxBackoff.count() / 1000,
                "s (is another client connected with client id '", config_.client_id, "'?)");
        said_failing = true;
      } else if (!subscribed_ && !said_failing) {
        LogWarn("source '", config_.name, "': cannot connect to ", config_.url, ": ", s.message(),
                "; retrying with backoff up to ", kMaxBackoff.count() / 1000, "s");
        said_failing = true;
      }
      jitter ^= jitter << 13;
      jitter ^= jitter >> 7;
      jitter ^= jitter << 17;
      Millis delay(backoff.count() / 2 +
                   static_cast<int64_t>(jitter % static_cast<uint64_t>(backoff.count() / 2 + 1)));
      if (!subscribed_ || brief) backoff = std::min(kMaxBackoff, backoff * 2);
      std::unique_lock<std::mutex> lock(mu_);
      if (!stopping_) clock_.WaitUntil(lock, wake_, clock_.Now() + delay);
    }
  }

  // One connection, from connect to its end; returns why it ended.
  Status Session() {
    ASSIGN_OR_RETURN(std::unique_ptr<NetStream> net,
                     NetStream::Connect(endpoint_.host, endpoint_.port,
                                        endpoint_.tls ? &tls_ : nullptr, kConnectTimeout));
    net->AckEachRead();
    have_ = 0;
    out_.clear();
    connect_.version = version_;
    mqtt::AppendConnect(connect_, &out_);
    RETURN_IF_ERROR(Send(*net));
    RETURN_IF_ERROR(AwaitConnack(*net));
    // Subscribe on every connect: with a clean session, or a broker that
    // lost its state, nothing is resubscribed for us.
    mqtt::AppendSubscribe(version_, kSubscribeId, config_.topics, config_.qos, &out_);
    RETURN_IF_ERROR(Send(*net));
    Status s = Pump(*net, clock_.Now() + kSubscribeTimeout);
    if (stopping_) {
      // Unacknowledged readings stay with the broker (persistent session).
      out_.clear();
      mqtt::AppendDisconnect(&out_);
      (void)Send(*net);
    }
    return s;
  }

  Status Send(NetStream& net) {
    Status s = net.WriteAll(out_, clock_.Now() + kWriteTimeout);
    out_.clear();
    last_sent_ = clock_.Now();
    return s;
  }

  Status AwaitConnack(NetStream& net) {
    const SteadyTime deadline = clock_.Now() + kConnectTimeout;
    while (true) {
      mqtt::Packet packet;
      ASSIGN_OR_RETURN(size_t used, mqtt::ReadPacket({buffer_.data(), have_}, &packet));
      if (used > 0) {
        mqtt::Connack connack;
        RETURN_IF_ERROR(mqtt::ParseConnack(packet, version_, &connack));
        Consume(used);
        keep_alive_ = connack.server_keep_alive_s > 0 ? Millis(connack.server_keep_alive_s * 1000)
                                                      : Millis(kKeepAliveSeconds * 1000);
        if (connack.code == 0) return Status::Ok();
        if (version_ == 5 && mqtt::ConnackRefusedVersion(connack.code)) {
          // An MQTT 3.1.1 broker: the next attempt speaks its version.
          version_ = 4;
          retry_now_ = true;
          LogInfo("source '", config_.name, "': ", config_.url,
                  " speaks MQTT 3.1.1 only; using it (the broker's own limit on messages in "
                  "flight then bounds each batch)");
          return Status::Unavailable("the broker does not speak MQTT 5");
        }
        return mqtt::ConnackRefusal(connack.code);
      }
      if (stopping_) return Status::Cancelled("stopping");
      if (clock_.Now() >= deadline) return Status::DeadlineExceeded("no CONNACK within 10 s");
      RETURN_IF_ERROR(WaitAndRead(net, deadline));
    }
  }

  // Takes readings until the connection breaks or the source stops.
  Status Pump(NetStream& net, SteadyTime subscribe_deadline) {
    const Millis keep_alive = keep_alive_;
    last_received_ = clock_.Now();
    while (!stopping_) {
      bool more = false;
      RETURN_IF_ERROR(TakeBuffered(&more));
      if (!out_.empty()) RETURN_IF_ERROR(Send(net));
      if (more) continue;  // a full batch: more complete packets may be buffered
      const SteadyTime now = clock_.Now();
      if (!subscribed_ && now >= subscribe_deadline) {
        return Status::DeadlineExceeded("no SUBACK within 10 s");
      }
      if (now - last_received_ > keep_alive * 3 / 2) {
        return Status::Unavailable("nothing from the broker for " +
                                   std::to_string(keep_alive.count() * 3 / 2000) + " s");
      }
      if (now - last_sent_ >= keep_alive / 2) {
        mqtt::AppendPingreq(&out_);
        RETURN_IF_ERROR(Send(net));
      }
      RETURN_IF_ERROR(WaitAndRead(net, std::min(now + Millis(1000), last_sent_ + keep_alive / 2)));
    }
    return Status::Cancelled("stopping");
  }

  // Waits (until `deadline`, or Stop) for bytes and reads what is there, up
  // to kReadAhead. When that is little, it waits kBatchLinger more and reads
  // again, so that readings arriving at a modest rate share a commit.
  Status WaitAndRead(NetStream& net, SteadyTime deadline) {
    if (!net.buffered()) {
      pollfd fds[2] = {{net.fd(), POLLIN, 0}, {wake_fd_, POLLIN, 0}};
      auto left = std::chrono::duration_cast<Millis>(deadline - clock_.Now()).count();
      int n = poll(fds, 2, static_cast<int>(std::clamp<int64_t>(left, 0, 1000)));
      if (n < 0 && errno != EINTR) return Status::Internal(std::string("poll: ") + std::strerror(errno));
      if (n <= 0 || (fds[0].revents == 0 && !net.buffered())) return Status::Ok();
    }
    RETURN_IF_ERROR(ReadAvailable(net));
    // Lingering holds acknowledgements back: only when the broker keeps
    // sending meanwhile (MQTT 5's Receive Maximum), or nothing is acked.
    if (!subscribed_ || (version_ != 5 && config_.qos > 0)) return Status::Ok();
    // Sleeps until the batch should be full at the rate readings have been
    // arriving, rather than waking per message: at a few thousand
    // readings/s a wake-up per message would cost more than the commit saved.
    // Each nap is as long as the rest of the batch should take (sleeping
    // longer "to be safe" showed in the alert latency's p99); it doubles
    // only when a nap brought nothing, i.e. the rate dropped.
    const SteadyTime until = clock_.Now() + kBatchLinger;
    constexpr auto kMinNap = std::chrono::microseconds(500);
    auto idle_nap = kMinNap;
    for (size_t n, before = 0; have_ < kReadChunk && (n = CompletePackets(kBatchTarget)) < kBatchTarget;
         before = n) {
      const SteadyTime now = clock_.Now();
      if (now >= until) break;
      if (before > 0 && n == before) idle_nap *= 2;
      const auto fill = std::chrono::microseconds(
          arrivals_per_ms_ > 0 ? static_cast<int64_t>((kBatchTarget - n) * 1000 / arrivals_per_ms_)
                               : kBatchLinger.count());
      const auto nap = std::min(std::max({kMinNap, fill, idle_nap}),
                                std::chrono::duration_cast<std::chrono::microseconds>(until - now));
      pollfd wake{wake_fd_, POLLIN, 0};
      const timespec t{0, std::chrono::duration_cast<std::chrono::nanoseconds>(nap).count()};
      if (ppoll(&wake, 1, &t, nullptr) != 0) break;  // stopping
      RETURN_IF_ERROR(ReadAvailable(net));
    }
    return Status::Ok();
  }

  // Complete packets buffered, counting up to `limit`.
  size_t CompletePackets(size_t limit) const {
    size_t count = 0;
    for (size_t at = 0; count < limit; ++count) {
      mqtt::Packet packet;
      StatusOr<size_t> used = mqtt::ReadPacket({buffer_.data() + at, have_ - at}, &packet);
      if (!used.ok() || *used == 0) break;
      at += *used;
    }
    return count;
  }

  // Reads what is there, up to kReadAhead. Each read that empties the
  // socket acknowledges (AckEachRead), and on loopback the broker's data
  // that our ACK releases from its Nagle queue arrives during that very
  // call: one more read takes it, then this stops. Reading on until the
  // socket stays empty would ping-pong a few messages per read+ACK for as
  // long as the broker keeps up (at full speed: ~5 messages per read, 6×
  // the reads and ~25 % more CPU per reading).
  Status ReadAvailable(NetStream& net) {
    int emptied = 0;
    for (size_t read = 0; read < kReadAhead && emptied < 2;) {
      if (buffer_.size() - have_ < kReadChunk) buffer_.resize(have_ + kReadChunk);
      const size_t room = buffer_.size() - have_;
      StatusOr<size_t> got = net.Read(buffer_.data() + have_, room);
      // A broker that answers and hangs up (a refused CONNECT): what it said
      // is handled first, the closed connection on the next read.
      if (!got.ok()) return read > 0 ? Status::Ok() : got.status();
      const size_t n = *got;
      if (n == 0) break;
      have_ += n;
      read += n;
      last_received_ = clock_.Now();
      if (n < room && !net.buffered()) ++emptied;
    }
    return Status::Ok();
  }

  void Consume(size_t used) {
    if (used == 0) return;
    std::memmove(buffer_.data(), buffer_.data() + used, have_ - used);
    have_ -= used;
    // One huge message must not pin its buffer for good.
    if (buffer_.size() > 4 * kReadAhead && have_ < kReadAhead) {
      buffer_.resize(kReadAhead);
      buffer_.shrink_to_fit();
    }
  }

  // Every complete packet buffered (up to kMaxBatch readings): control
  // packets answered, readings taken as one batch, their acks queued in
  // out_. *more: the batch filled up before the buffer was empty.
  Status TakeBuffered(bool* more) {
    size_t used = 0;
    batch_.clear();
    while (batch_.size() < kMaxBatch) {
      mqtt::Packet packet;
      ASSIGN_OR_RETURN(size_t n, mqtt::ReadPacket({buffer_.data() + used, have_ - used}, &packet));
      if (n == 0) break;
      used += n;
      RETURN_IF_ERROR(Handle(packet));
    }
    *more = batch_.size() == kMaxBatch;
    if (!batch_.empty()) NoteArrivals(batch_.size());
    Status s = batch_.empty() ? Status::Ok() : TakeBatch();
    batch_.clear();  // it views buffer_
    Consume(used);
    return s;
  }

  // Readings per ms since the last batch, smoothed: what the linger
  // expects. A gap of a second or more says nothing about the rate.
  void NoteArrivals(size_t count) {
    const SteadyTime now = clock_.Now();
    const double ms = std::chrono::duration<double, std::milli>(now - last_batch_).count();
    last_batch_ = now;
    if (ms <= 0 || ms > 1000) return;
    const double rate = static_cast<double>(count) / ms;
    arrivals_per_ms_ = arrivals_per_ms_ == 0 ? rate : 0.8 * arrivals_per_ms_ + 0.2 * rate;
  }

  Status Handle(const mqtt::Packet& packet) {
    switch (packet.type) {
      case mqtt::PacketType::kPublish: {
        mqtt::Publish publish;
        RETURN_IF_ERROR(mqtt::ParsePublish(packet, version_, &publish));
        if (publish.qos == 2 && awaiting_release_.count(publish.packet_id) > 0) {
          // Sent again before our PUBREC arrived: taken already.
          mqtt::AppendAck(mqtt::PacketType::kPubrec, publish.packet_id, &out_);
          return Status::Ok();
        }
        batch_.push_back(publish);
        return Status::Ok();
      }
      case mqtt::PacketType::kPubrel: {
        ASSIGN_OR_RETURN(uint16_t id, mqtt::ParseAckId(packet));
        awaiting_release_.erase(id);
        mqtt::AppendAck(mqtt::PacketType::kPubcomp, id, &out_);
        return Status::Ok();
      }
      case mqtt::PacketType::kSuback: {
        mqtt::Suback suback;
        RETURN_IF_ERROR(mqtt::ParseSuback(packet, version_, &suback));
        for (uint8_t code : suback.codes) {
          if (code >= 0x80) {
            return Status::PermissionDenied("broker refused the subscription (return code " +
                                            std::to_string(code) + ")");
          }
        }
        subscribed_ = true;
        subscribed_at_ = clock_.Now();
        counters_.connected.store(true);
        LogInfo("source '", config_.name, "': connected to ", config_.url, " (MQTT ",
                version_ == 5 ? "5" : "3.1.1", "), subscribed to ", config_.topics.size(),
                " topic filter(s) at QoS ", config_.qos);
        return Status::Ok();
      }
      case mqtt::PacketType::kPingresp:
        return Status::Ok();
      case mqtt::PacketType::kDisconnect:
        return Status::Unavailable(
            "the broker closed the session" +
            (packet.body.empty() ? std::string()
                                 : " (reason code " +
                                       std::to_string(static_cast<uint8_t>(packet.body[0])) + ")"));
      default:
        return Status::InvalidArgument("unexpected MQTT packet type " +
                                       std::to_string(static_cast<int>(packet.type)) +
                                       " from the broker");
    }
  }

  // Decodes the batch, runs the pipelines on it with one commit, then
  // queues its acknowledgements. A reading that does not decode is
  // dead-lettered (and acknowledged once written there).
  Status TakeBatch() {
    if (records_.size() < batch_.size()) records_.resize(batch_.size());
    readings_.clear();
    const int64_t arrival = ToEpochMillis(clock_.WallNow());
    for (size_t i = 0; i < batch_.size(); ++i) {
      const mqtt::Publish& p = batch_[i];
      counters_.messages.fetch_add(1, std::memory_order_relaxed);
      counters_.bytes.fetch_add(p.payload.size(), std::memory_order_relaxed);
      if (p.retain) {
        // The broker's stored copy, sent because we subscribed (a live
        // message reaches a subscription with the flag cleared): it repeats
        // a reading already published, so every restart or reconnect would
        // count it again. Acknowledged with the batch like the others.
        counters_.retained_skipped.fetch_add(1, std::memory_order_relaxed);
        continue;
      }
      Status s = decoder_.Decode(p.topic, p.payload, arrival, &records_[i]);
      if (!s.ok()) {
        counters_.decode_errors.fetch_add(1, std::memory_order_relaxed);
        RETURN_IF_ERROR(DeadLetterMessage(p, s, arrival));
        continue;
      }
      // A repeat is dropped when the broker marks it as sent before, or when
      // the reading carries its own time: the same bytes, the same reading
      // (a device's own retry reaches us as a new message).
      readings_.push_back({&records_[i], p.topic, p.payload, p.dup || config_.time.has_value()});
    }
    if (!readings_.empty()) {
      // Not committed (stopping, or the store failed for good): no ack, and
      // the broker sends the readings again.
      if (Status s = pipelines_.Process(index_, readings_); !s.ok()) {
        return Status(s.code(), "readings not taken: " + std::string(s.message()));
      }
    }
    for (const mqtt::Publish& p : batch_) {
      if (p.qos == 1) mqtt::AppendAck(mqtt::PacketType::kPuback, p.packet_id, &out_);
      if (p.qos == 2) {
        awaiting_release_.insert(p.packet_id);
        mqtt::AppendAck(mqtt::PacketType::kPubrec, p.packet_id, &out_);
      }
    }
    return Status::Ok();
  }

  Status DeadLetterMessage(const mqtt::Publish& message, const Status& reason, int64_t arrival) {
    bad_payload_log_.Log("source '" + config_.name + "': bad payload on '" +
                         std::string(message.topic) + "' dead-lettered: " +
                         std::string(reason.message()));
    DeadLetter letter;
    letter.time_ms = arrival;
    letter.origin = "source";
    letter.name = config_.name;
    letter.topic = std::string(message.topic);
    letter.reason = std::string(reason.message());
    letter.payload = std::string(message.payload);
    // Hold the ack until the dead letter is written: a bad payload is kept too.
    Millis backoff = kInitialBackoff;
    while (true) {
      Status s = dead_letters_.Put(letter);
      if (s.ok()) return s;
      LogError("source '", config_.name, "': cannot write dead letter, holding the message: ",
               s.ToString());
      std::unique_lock<std::mutex> lock(mu_);
      if (stopping_) return Status::Cancelled("stopping");
      clock_.WaitUntil(lock, wake_, clock_.Now() + backoff);
      backoff = std::min(kMaxBackoff, backoff * 2);
    }
  }

  static constexpr uint16_t kSubscribeId = 1;
  // MQTT 5: QoS 1/2 messages the broker may have in flight to us. Large, so
  // that it sends on while a batch commits instead of queueing (and, past
  // its queue limit, dropping); our read buffer, not this, bounds memory.
  static constexpr uint16_t kReceiveMaximum = 4096;

  const config::SourceConfig config_;
  const int index_;
  const MqttEndpoint endpoint_;
  const operators::JsonDecoder decoder_;
  PipelineRunner& pipelines_;
  DeadLetterStore& dead_letters_;
  const Clock& clock_;
  RateLimitedLog bad_payload_log_;
  SourceCounters counters_;
  TlsOptions tls_;
  mqtt::ConnectOptions connect_;

  // The connection thread's own state.
  std::vector<char, Uninitialized<char>> buffer_;
  size_t have_ = 0;               // bytes of buffer_ read, not yet consumed
  std::string out_;               // packets to send
  std::vector<mqtt::Publish> batch_;
  std::vector<operators::Record> records_;  // reused: they keep their capacity
  std::vector<PipelineRunner::Reading> readings_;
  // QoS 2 packet ids taken and answered with PUBREC, until their PUBREL.
  std::unordered_set<uint16_t> awaiting_release_;
  SteadyTime last_sent_;
  SteadyTime last_received_;
  bool subscribed_ = false;
  SteadyTime subscribed_at_;
  SteadyTime last_batch_;
  double arrivals_per_ms_ = 0;  // NoteArrivals
  bool retry_now_ = false;  // a broker that refused MQTT 5: try 3.1.1 at once
  int version_ = 5;  // falls back to 4 (3.1.1) for a broker that refuses 5, for good
  Millis keep_alive_{kKeepAliveSeconds * 1000};

  std::thread thread_;
  int wake_fd_ = -1;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable wake_;
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
