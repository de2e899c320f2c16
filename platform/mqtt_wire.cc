#include "platform/mqtt_wire.h"

namespace sluice::mqtt {
namespace {

uint8_t FirstByte(PacketType type, uint8_t flags) {
  return static_cast<uint8_t>(static_cast<uint8_t>(type) << 4 | (flags & 0x0f));
}

void AppendRemainingLength(size_t length, std::string* out) {
  do {
    uint8_t byte = length % 128;
    length /= 128;
    if (length > 0) byte |= 0x80;
    out->push_back(static_cast<char>(byte));
  } while (length > 0);
}

void AppendU16(uint16_t v, std::string* out) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v & 0xff));
}

void AppendString(std::string_view s, std::string* out) {
  AppendU16(static_cast<uint16_t>(s.size()), out);
  out->append(s);
}

uint16_t U16At(std::string_view in, size_t at) {
  return static_cast<uint16_t>(static_cast<uint8_t>(in[at]) << 8 | static_cast<uint8_t>(in[at + 1]));
}

}  // namespace

StatusOr<size_t> ReadPacket(std::string_view in, Packet* out) {
  if (in.size() < 2) return size_t{0};
  const auto first = static_cast<uint8_t>(in[0]);
  const int type = first >> 4;
  if (type == 0 || type == 15) {
    return Status::InvalidArgument("not an MQTT packet (reserved type " + std::to_string(type) + ")");
  }
  size_t length = 0;
  size_t at = 1;
  for (int shift = 0;; shift += 7) {
    if (at >= in.size()) return size_t{0};
    if (at > 4) return Status::InvalidArgument("MQTT remaining length longer than four bytes");
    const auto byte = static_cast<uint8_t>(in[at++]);
    length |= static_cast<size_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) break;
  }
  if (in.size() - at < length) return size_t{0};
  out->type = static_cast<PacketType>(type);
  out->flags = first & 0x0f;
  out->body = in.substr(at, length);
  return at + length;
}

Status ParsePublish(const Packet& packet, Publish* out) {
  const std::string_view body = packet.body;
  out->qos = (packet.flags >> 1) & 0x03;
  out->dup = (packet.flags & 0x08) != 0;
  out->retain = (packet.flags & 0x01) != 0;
  if (out->qos == 3) return Status::InvalidArgument("PUBLISH with QoS 3");
  if (body.size() < 2) return Status::InvalidArgument("PUBLISH too short for its topic");
  const size_t topic_length = U16At(body, 0);
  size_t at = 2 + topic_length;
  if (body.size() < at) return Status::InvalidArgument("PUBLISH topic runs past the packet");
  out->topic = body.substr(2, topic_length);
  out->packet_id = 0;
  if (out->qos > 0) {
    if (body.size() < at + 2) return Status::InvalidArgument("PUBLISH without its packet id");
    out->packet_id = U16At(body, at);
    at += 2;
  }
  out->payload = body.substr(at);
  return Status::Ok();
}

StatusOr<int> ParseConnack(const Packet& packet) {
  if (packet.type != PacketType::kConnack || packet.body.size() != 2) {
    return Status::InvalidArgument("expected CONNACK");
  }
  return static_cast<int>(static_cast<uint8_t>(packet.body[1]));
}

std::string ConnackReason(int code) {
  switch (code) {
    case 0: return "accepted";
    case 1: return "the broker refused the protocol version (MQTT 3.1.1)";
    case 2: return "the broker refused the client id";
    case 3: return "the broker is unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorized";
  }
  return "refused with return code " + std::to_string(code);
}

Status ParseSuback(const Packet& packet, Suback* out) {
  if (packet.type != PacketType::kSuback || packet.body.size() < 3) {
    return Status::InvalidArgument("malformed SUBACK");
  }
  out->packet_id = U16At(packet.body, 0);
  out->codes.assign(packet.body.begin() + 2, packet.body.end());
  return Status::Ok();
}

StatusOr<uint16_t> ParseAckId(const Packet& packet) {
  if (packet.body.size() != 2) return Status::InvalidArgument("malformed acknowledgement");
  return U16At(packet.body, 0);
}

void AppendConnect(const ConnectOptions& options, std::string* out) {
  uint8_t flags = 0;
  if (options.clean_session) flags |= 0x02;
  if (!options.password.empty()) flags |= 0x40;
  if (!options.username.empty()) flags |= 0x80;
  std::string body;
  AppendString("MQTT", &body);
  body.push_back(4);  // protocol level: 3.1.1
  body.push_back(static_cast<char>(flags));
  AppendU16(options.keep_alive_s, &body);
  AppendString(options.client_id, &body);
  if (!options.username.empty()) AppendString(options.username, &body);
  if (!options.password.empty()) AppendString(options.password, &body);
  out->push_back(static_cast<char>(FirstByte(PacketType::kConnect, 0)));
  AppendRemainingLength(body.size(), out);
  out->append(body);
}

void AppendSubscribe(uint16_t packet_id, const std::vector<std::string>& filters, int qos,
                     std::string* out) {
  size_t length = 2;
  for (const std::string& f : filters) length += 2 + f.size() + 1;
  out->push_back(static_cast<char>(FirstByte(PacketType::kSubscribe, 0x02)));
  AppendRemainingLength(length, out);
  AppendU16(packet_id, out);
  for (const std::string& f : filters) {
    AppendString(f, out);
    out->push_back(static_cast<char>(qos));
  }
}

void AppendAck(PacketType type, uint16_t packet_id, std::string* out) {
  // PUBREL is the one acknowledgement with flags (0b0010).
  out->push_back(static_cast<char>(FirstByte(type, type == PacketType::kPubrel ? 0x02 : 0)));
  out->push_back(2);
  AppendU16(packet_id, out);
}

void AppendPublish(std::string_view topic, std::string_view payload, int qos,
                   uint16_t packet_id, std::string* out) {
  out->push_back(static_cast<char>(FirstByte(PacketType::kPublish, static_cast<uint8_t>(qos << 1))));
  AppendRemainingLength(2 + topic.size() + (qos > 0 ? 2 : 0) + payload.size(), out);
  AppendString(topic, out);
  if (qos > 0) AppendU16(packet_id, out);
  out->append(payload);
}

void AppendPingreq(std::string* out) {
  out->push_back(static_cast<char>(FirstByte(PacketType::kPingreq, 0)));
  out->push_back(0);
}

void AppendDisconnect(std::string* out) {
  out->push_back(static_cast<char>(FirstByte(PacketType::kDisconnect, 0)));
  out->push_back(0);
}

}  // namespace sluice::mqtt
