#include "platform/mqtt_wire.h"

#include <cstdio>

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

void AppendU32(uint32_t v, std::string* out) {
  AppendU16(static_cast<uint16_t>(v >> 16), out);
  AppendU16(static_cast<uint16_t>(v & 0xffff), out);
}

// A variable byte integer at in[*at]; false when it runs past `in` or over
// four bytes.
bool ReadVarint(std::string_view in, size_t* at, size_t* value) {
  *value = 0;
  for (int i = 0; i < 4; ++i) {
    if (*at >= in.size()) return false;
    const auto byte = static_cast<uint8_t>(in[(*at)++]);
    *value |= static_cast<size_t>(byte & 0x7f) << (7 * i);
    if ((byte & 0x80) == 0) return true;
  }
  return false;
}

// Skips an MQTT 5 property block at in[*at]; returns it (without its length).
StatusOr<std::string_view> ReadProperties(std::string_view in, size_t* at, const char* packet) {
  size_t length = 0;
  if (!ReadVarint(in, at, &length) || in.size() - *at < length) {
    return Status::InvalidArgument(std::string(packet) + " properties run past the packet");
  }
  std::string_view properties = in.substr(*at, length);
  *at += length;
  return properties;
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

Status ParsePublish(const Packet& packet, int version, Publish* out) {
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
  if (version >= 5) RETURN_IF_ERROR(ReadProperties(body, &at, "PUBLISH").status());
  out->payload = body.substr(at);
  return Status::Ok();
}

Status ParseConnack(const Packet& packet, int version, Connack* out) {
  const std::string_view body = packet.body;
  if (packet.type != PacketType::kConnack || body.size() < 2) {
    return Status::InvalidArgument("expected CONNACK");
  }
  out->code = static_cast<uint8_t>(body[1]);
  out->server_keep_alive_s = -1;
  // A 3.1.1 broker answers a version-5 CONNECT with a 3.1.1 CONNACK (no properties).
  if (version < 5 || body.size() == 2) return Status::Ok();
  size_t at = 2;
  ASSIGN_OR_RETURN(std::string_view properties, ReadProperties(body, &at, "CONNACK"));
  // Walk the properties for Server Keep Alive (0x13); every other one is
  // skipped by its type's size.
  for (size_t p = 0; p < properties.size();) {
    const auto id = static_cast<uint8_t>(properties[p++]);
    size_t size = 0;
    switch (id) {
      case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2a:
        size = 1;
        break;
      case 0x13: case 0x21: case 0x22: case 0x23:
        size = 2;
        break;
      case 0x02: case 0x11: case 0x18: case 0x27:
        size = 4;
        break;
      case 0x0b: {
        size_t ignored = 0;
        if (!ReadVarint(properties, &p, &ignored)) return Status::InvalidArgument("malformed CONNACK property");
        continue;
      }
      case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1a: case 0x1c:
      case 0x1f:
        if (properties.size() - p < 2) return Status::InvalidArgument("malformed CONNACK property");
        size = 2 + U16At(properties, p);
        break;
      case 0x26: {  // user property: two strings
        for (int i = 0; i < 2; ++i) {
          if (properties.size() - p < 2) return Status::InvalidArgument("malformed CONNACK property");
          p += 2 + U16At(properties, p);
          if (p > properties.size()) return Status::InvalidArgument("malformed CONNACK property");
        }
        continue;
      }
      default:
        return Status::InvalidArgument("unknown CONNACK property " + std::to_string(id));
    }
    if (properties.size() - p < size) return Status::InvalidArgument("malformed CONNACK property");
    if (id == 0x13) out->server_keep_alive_s = U16At(properties, p);
    p += size;
  }
  return Status::Ok();
}

std::string ConnackReason(int code) {
  switch (code) {
    case 0: return "accepted";
    case 1: return "the broker refused the protocol version (MQTT 3.1.1)";
    case 2: return "the broker refused the client id";
    case 3: return "the broker is unavailable";
    case 4: return "bad user name or password";
    case 5: return "not authorized";
    case 0x80: return "unspecified error";
    case 0x81: return "malformed packet";
    case 0x82: return "protocol error";
    case 0x83: return "implementation specific error";
    case 0x84: return "the broker refused the protocol version (MQTT 5)";
    case 0x85: return "the broker refused the client id";
    case 0x86: return "bad user name or password";
    case 0x87: return "not authorized";
    case 0x88: return "the broker is unavailable";
    case 0x89: return "the broker is busy";
    case 0x8a: return "banned";
    case 0x8c: return "bad authentication method";
    case 0x95: return "packet too large";
    case 0x97: return "quota exceeded";
    case 0x9c: return "use another server";
    case 0x9d: return "server moved";
    case 0x9f: return "connection rate exceeded";
  }
  return "refused with reason code " + std::to_string(code);
}

Status ConnackRefusal(int code) {
  std::string reason = "the broker refused the connection: " + ConnackReason(code);
  return code == 4 || code == 5 || code == 0x86 || code == 0x87 ? Status::PermissionDenied(reason)
                                                                 : Status::Unavailable(reason);
}

bool ConnackRefusedVersion(int code) { return code == 1 || code == 0x84; }

Status ParseSuback(const Packet& packet, int version, Suback* out) {
  if (packet.type != PacketType::kSuback || packet.body.size() < 3) {
    return Status::InvalidArgument("malformed SUBACK");
  }
  out->packet_id = U16At(packet.body, 0);
  size_t at = 2;
  if (version >= 5) RETURN_IF_ERROR(ReadProperties(packet.body, &at, "SUBACK").status());
  if (at >= packet.body.size()) return Status::InvalidArgument("SUBACK without reason codes");
  out->codes.assign(packet.body.begin() + static_cast<std::ptrdiff_t>(at), packet.body.end());
  return Status::Ok();
}

StatusOr<uint16_t> ParseAckId(const Packet& packet) {
  if (packet.body.size() < 2) return Status::InvalidArgument("malformed acknowledgement");
  return U16At(packet.body, 0);
}

void AppendConnect(const ConnectOptions& options, std::string* out) {
  uint8_t flags = 0;
  if (options.clean_session) flags |= 0x02;
  if (!options.password.empty()) flags |= 0x40;
  if (!options.username.empty()) flags |= 0x80;
  std::string body;
  AppendString("MQTT", &body);
  body.push_back(static_cast<char>(options.version));
  body.push_back(static_cast<char>(flags));
  AppendU16(options.keep_alive_s, &body);
  if (options.version >= 5) {
    std::string properties;
    if (!options.clean_session) {
      // Session Expiry Interval: the session outlives the connection, as a
      // 3.1.1 persistent session does (0xFFFFFFFF: it does not expire).
      properties.push_back(0x11);
      AppendU32(0xffffffff, &properties);
    }
    properties.push_back(0x21);  // Receive Maximum
    AppendU16(options.receive_maximum, &properties);
    AppendRemainingLength(properties.size(), &body);
    body.append(properties);
  }
  AppendString(options.client_id, &body);
  if (!options.username.empty()) AppendString(options.username, &body);
  if (!options.password.empty()) AppendString(options.password, &body);
  out->push_back(static_cast<char>(FirstByte(PacketType::kConnect, 0)));
  AppendRemainingLength(body.size(), out);
  out->append(body);
}

void AppendSubscribe(int version, uint16_t packet_id, const std::vector<std::string>& filters,
                     int qos, std::string* out) {
  size_t length = 2 + (version >= 5 ? 1 : 0);
  for (const std::string& f : filters) length += 2 + f.size() + 1;
  out->push_back(static_cast<char>(FirstByte(PacketType::kSubscribe, 0x02)));
  AppendRemainingLength(length, out);
  AppendU16(packet_id, out);
  if (version >= 5) out->push_back(0);  // no properties
  for (const std::string& f : filters) {
    AppendString(f, out);
    // MQTT 5 options: QoS in bits 0-1; no-local, retain-as-published and
    // retain handling 0: the 3.1.1 behaviour.
    out->push_back(static_cast<char>(qos));
  }
}

Status CheckTopicName(std::string_view topic) {
  if (topic.empty()) return Status::InvalidArgument("the topic is empty");
  if (topic.size() > 65535) return Status::InvalidArgument("the topic is longer than 65,535 bytes");
  for (size_t i = 0; i < topic.size();) {
    const auto lead = static_cast<unsigned char>(topic[i]);
    size_t length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xe ? 3 : (lead >> 3) == 0x1e ? 4 : 0;
    if (length == 0 || i + length > topic.size()) {
      return Status::InvalidArgument("the topic is not valid UTF-8 (at byte " + std::to_string(i) + ")");
    }
    uint32_t cp = length == 1 ? lead : lead & (0x7f >> length);
    for (size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(topic[i + k]);
      if ((next & 0xc0) != 0x80) {
        return Status::InvalidArgument("the topic is not valid UTF-8 (at byte " + std::to_string(i) + ")");
      }
      cp = (cp << 6) | (next & 0x3f);
    }
    static constexpr uint32_t kLeast[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kLeast[length] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      return Status::InvalidArgument("the topic is not valid UTF-8 (at byte " + std::to_string(i) + ")");
    }
    if (cp == '+' || cp == '#') return Status::InvalidArgument("the topic holds a wildcard (+ or #)");
    if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0xfdd0 && cp <= 0xfdef) ||
        (cp & 0xfffe) == 0xfffe) {
      char code[16];
      std::snprintf(code, sizeof code, "U+%04X", static_cast<unsigned>(cp));
      return Status::InvalidArgument(std::string("the topic holds ") + code +
                                     ", a control character or non-character brokers refuse");
    }
    i += length;
  }
  return Status::Ok();
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
