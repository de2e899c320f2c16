#include "platform/mqtt_publisher.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace sluice {
namespace {

// Queued bytes written at once by Publish rather than at the next Await:
// bounds what a long batch holds before it streams.
constexpr size_t kWriteAhead = 64 * 1024;
constexpr size_t kReadChunk = 16 * 1024;

SteadyTime Now() { return RealClock().Now(); }

// Whatever went wrong on the connection, for the caller it broke: a broker
// that sends what is not MQTT is not a reason to give records up for good.
Status Broken(std::string what) { return Status::Unavailable(std::move(what)); }

}  // namespace

MqttEndpoint ParseMqttUrl(const std::string& url) {
  MqttEndpoint e;
  const size_t scheme_end = url.find("://");
  const std::string scheme = url.substr(0, scheme_end);
  e.tls = scheme == "ssl" || scheme == "mqtts";
  const std::string rest = scheme_end == std::string::npos ? url : url.substr(scheme_end + 3);
  const size_t colon = rest.rfind(':');
  e.host = rest.substr(0, colon);
  if (e.host.size() >= 2 && e.host.front() == '[' && e.host.back() == ']') {
    e.host = e.host.substr(1, e.host.size() - 2);
  }
  e.port = colon == std::string::npos ? 0 : std::atoi(rest.c_str() + colon + 1);
  return e;
}

MqttPublisher::MqttPublisher(std::unique_ptr<NetStream> net, Millis keep_alive, Millis write_timeout)
    : net_(std::move(net)), keep_alive_(keep_alive), write_timeout_(write_timeout), last_sent_(Now()) {}

MqttPublisher::~MqttPublisher() = default;

StatusOr<std::unique_ptr<MqttPublisher>> MqttPublisher::Connect(const Options& options,
                                                                int cancel_fd) {
  const MqttEndpoint endpoint = ParseMqttUrl(options.url);
  const SteadyTime deadline = Now() + options.timeout;
  const TlsOptions tls = options.tls.value_or(TlsOptions{});
  ASSIGN_OR_RETURN(std::unique_ptr<NetStream> net,
                   NetStream::Connect(endpoint.host, endpoint.port, endpoint.tls ? &tls : nullptr,
                                      options.timeout, cancel_fd));
  mqtt::ConnectOptions connect = options.connect;
  connect.version = 4;
  std::unique_ptr<MqttPublisher> client(
      new MqttPublisher(std::move(net), Millis(int64_t{connect.keep_alive_s} * 1000), options.timeout));
  mqtt::AppendConnect(connect, &client->out_);
  RETURN_IF_ERROR(client->Flush());
  while (true) {
    mqtt::Packet packet;
    StatusOr<size_t> used = mqtt::ReadPacket({client->in_.data(), client->have_}, &packet);
    if (!used.ok()) return Broken("the broker's answer to CONNECT is not MQTT");
    if (*used > 0) {
      mqtt::Connack connack;
      if (packet.type != mqtt::PacketType::kConnack ||
          !mqtt::ParseConnack(packet, connect.version, &connack).ok()) {
        return Broken("the broker's answer to CONNECT is not a CONNACK");
      }
      client->Consume(*used);
      if (connack.code == 0) return client;
      return mqtt::ConnackRefusal(connack.code);
    }
    Status ready = client->net_->WaitReadable(deadline);
    if (ready.code() == StatusCode::kDeadlineExceeded) {
      return Status::DeadlineExceeded("no CONNACK within " +
                                      std::to_string(options.timeout.count() / 1000) + " s");
    }
    RETURN_IF_ERROR(ready);
    RETURN_IF_ERROR(client->ReadSome());
  }
}

Status MqttPublisher::Publish(std::string_view topic, std::string_view payload, int qos) {
  RETURN_IF_ERROR(broken_);
  const uint16_t id = qos > 0 ? NextPacketId() : 0;
  mqtt::AppendPublish(topic, payload, qos, id, &out_);
  if (qos > 0) in_flight_[id] = Stage::kAwaitingAck;
  return out_.size() >= kWriteAhead ? Flush() : Status::Ok();
}

Status MqttPublisher::Await(size_t in_flight, SteadyTime deadline) {
  RETURN_IF_ERROR(Flush());
  while (in_flight_.size() > in_flight || pings_unanswered_ > 0) {
    const SteadyTime ping_at = last_sent_ + keep_alive_ / 2;
    if (keep_alive_.count() > 0 && Now() >= ping_at) {
      RETURN_IF_ERROR(Ping());
      continue;
    }
    // Past the deadline this still takes what has arrived.
    Status ready = net_->WaitReadable(keep_alive_.count() > 0 ? std::min(deadline, ping_at) : deadline);
    if (ready.code() == StatusCode::kDeadlineExceeded) {
      if (Now() < deadline) continue;
      return Status::DeadlineExceeded(std::to_string(in_flight_.size()) +
                                      " publish(es) unanswered by the broker");
    }
    if (!ready.ok()) return Fail(ready);
    RETURN_IF_ERROR(ReadAndHandle());
    RETURN_IF_ERROR(Flush());  // PUBRELs
  }
  return Status::Ok();
}

Status MqttPublisher::KeepAlive() {
  RETURN_IF_ERROR(TakeArrived());
  if (keep_alive_.count() > 0 && Now() - last_sent_ >= keep_alive_ / 2) return Ping();
  return Status::Ok();
}

Status MqttPublisher::TakeArrived() {
  RETURN_IF_ERROR(broken_);
  // What the broker sent meanwhile: answers, a DISCONNECT, a closed socket.
  while (true) {
    Status ready = net_->WaitReadable(Now());
    if (ready.code() == StatusCode::kDeadlineExceeded) break;
    if (!ready.ok()) return Fail(ready);
    const size_t before = have_;
    const uint64_t completed = completed_;
    const size_t pings = pings_unanswered_;
    RETURN_IF_ERROR(ReadAndHandle());
    // Nothing taken (a TLS record still partial): wait for the rest later.
    if (have_ == before && completed_ == completed && pings_unanswered_ == pings &&
        !net_->buffered()) {
      break;
    }
  }
  return Flush();  // PUBRELs
}

void MqttPublisher::Disconnect() {
  if (!broken_.ok()) return;
  out_.clear();
  mqtt::AppendDisconnect(&out_);
  // Going away: a broker that takes nothing (frozen, a full window) must not
  // hold a stop for the whole write timeout.
  (void)Flush(Millis(1000));
}

Status MqttPublisher::Ping() {
  // A second ping due while the first is unanswered (its answer not even
  // waiting unread): the broker has said nothing for half the keep-alive.
  if (pings_unanswered_ > 0) RETURN_IF_ERROR(TakeArrived());
  if (pings_unanswered_ > 0) return Fail(Broken("no answer from the broker to a ping"));
  mqtt::AppendPingreq(&out_);
  ++pings_unanswered_;
  return Flush();
}

Status MqttPublisher::Flush(std::optional<Millis> timeout) {
  RETURN_IF_ERROR(broken_);
  if (out_.empty()) return Status::Ok();
  Status s = net_->WriteAll(out_, Now() + timeout.value_or(write_timeout_));
  out_.clear();
  last_sent_ = Now();
  // Part of a packet may have gone out: nothing more can follow it.
  if (!s.ok()) return Fail(s.code() == StatusCode::kAborted ? s : Broken("write: " + std::string(s.message())));
  return s;
}

Status MqttPublisher::Fail(Status why) {
  if (broken_.ok()) broken_ = why;
  return why;
}

Status MqttPublisher::ReadSome() {
  if (in_.size() - have_ < kReadChunk) in_.resize(have_ + kReadChunk);
  ASSIGN_OR_RETURN(size_t got, net_->Read(in_.data() + have_, in_.size() - have_));
  have_ += got;
  return Status::Ok();
}

void MqttPublisher::Consume(size_t used) {
  std::memmove(in_.data(), in_.data() + used, have_ - used);
  have_ -= used;
}

Status MqttPublisher::ReadAndHandle() {
  if (Status read = ReadSome(); !read.ok()) return Fail(read);
  size_t used = 0;
  Status s = Status::Ok();
  while (s.ok()) {
    mqtt::Packet packet;
    StatusOr<size_t> n = mqtt::ReadPacket({in_.data() + used, have_ - used}, &packet);
    if (!n.ok()) return Fail(Broken("the broker sent bytes that are not MQTT"));
    if (*n == 0) break;
    used += *n;
    s = Handle(packet);
  }
  Consume(used);
  return s.ok() ? s : Fail(s);
}

Status MqttPublisher::Handle(const mqtt::Packet& packet) {
  switch (packet.type) {
    case mqtt::PacketType::kPuback:
    case mqtt::PacketType::kPubcomp: {
      StatusOr<uint16_t> id = mqtt::ParseAckId(packet);
      if (!id.ok()) return Broken("the broker sent a malformed acknowledgement");
      auto it = in_flight_.find(*id);
      const Stage expected = packet.type == mqtt::PacketType::kPuback ? Stage::kAwaitingAck
                                                                      : Stage::kAwaitingComp;
      if (it != in_flight_.end() && it->second == expected) {
        in_flight_.erase(it);
        ++completed_;
      }
      return Status::Ok();  // a repeat, or for a publish given up
    }
    case mqtt::PacketType::kPubrec: {
      StatusOr<uint16_t> id = mqtt::ParseAckId(packet);
      if (!id.ok()) return Broken("the broker sent a malformed PUBREC");
      auto it = in_flight_.find(*id);
      if (it != in_flight_.end()) it->second = Stage::kAwaitingComp;
      // Released even when unknown: the broker holds the id until then.
      mqtt::AppendAck(mqtt::PacketType::kPubrel, *id, &out_);
      return Status::Ok();
    }
    case mqtt::PacketType::kPingresp:
      pings_unanswered_ = 0;
      return Status::Ok();
    case mqtt::PacketType::kPublish:
      return Status::Ok();  // nothing subscribed: a leftover of an old session
    case mqtt::PacketType::kDisconnect:
      return Broken("the broker closed the connection");
    default:
      return Broken("the broker sent an unexpected MQTT packet (type " +
                    std::to_string(static_cast<int>(packet.type)) + ")");
  }
}

uint16_t MqttPublisher::NextPacketId() {
  // Callers keep far fewer than 65,535 in flight; the bound only ends the loop.
  for (int tries = 0; tries < 65536; ++tries) {
    if (++last_id_ == 0) last_id_ = 1;
    if (in_flight_.count(last_id_) == 0) break;
  }
  return last_id_;
}

}  // namespace sluice
