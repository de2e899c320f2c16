// MQTT 5 and 3.1.1 packets as bytes: what the MQTT source needs to
// subscribe, and what its tests need to publish. Pure: no sockets, no
// allocation while reading (a parsed packet views the caller's buffer).
// `version` is the protocol level: 5 (MQTT 5) or 4 (MQTT 3.1.1). MQTT 5
// properties the source has no use for (user properties, content type...)
// are skipped.
//
//   mqtt::Packet packet;
//   StatusOr<size_t> used = mqtt::ReadPacket(buffer, &packet);
//   if (used.ok() && *used > 0 && packet.type == mqtt::PacketType::kPublish) {
//     mqtt::Publish publish;
//     RETURN_IF_ERROR(mqtt::ParsePublish(packet, &publish));
//   }
#ifndef SLUICE_PLATFORM_MQTT_WIRE_H_
#define SLUICE_PLATFORM_MQTT_WIRE_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "platform/status.h"

namespace sluice::mqtt {

enum class PacketType : uint8_t {
  kConnect = 1,
  kConnack = 2,
  kPublish = 3,
  kPuback = 4,
  kPubrec = 5,
  kPubrel = 6,
  kPubcomp = 7,
  kSubscribe = 8,
  kSuback = 9,
  kUnsubscribe = 10,
  kUnsuback = 11,
  kPingreq = 12,
  kPingresp = 13,
  kDisconnect = 14,
};

// The largest remaining length MQTT can encode (four length bytes).
inline constexpr size_t kMaxRemainingLength = 268'435'455;

struct Packet {
  PacketType type = PacketType::kConnect;
  uint8_t flags = 0;       // the low nibble of the first byte
  std::string_view body;   // after the fixed header
};

// One packet from the front of `in`: the bytes it took, or 0 when `in` holds
// only part of it (read more and call again). kInvalidArgument for bytes
// that cannot be MQTT (reserved type 0 or 15, a length over four bytes).
StatusOr<size_t> ReadPacket(std::string_view in, Packet* out);

struct Publish {
  std::string_view topic;
  std::string_view payload;
  uint16_t packet_id = 0;  // 0 at QoS 0
  int qos = 0;
  bool dup = false;
  bool retain = false;
};
Status ParsePublish(const Packet& packet, int version, Publish* out);

struct Connack {
  int code = 0;                 // 0: accepted
  int server_keep_alive_s = -1;  // MQTT 5: the keep-alive the broker imposes; -1: none
};
Status ParseConnack(const Packet& packet, int version, Connack* out);
// The reason for a refused CONNECT: MQTT 3.1.1 return codes 1-5, MQTT 5
// reason codes 0x80 and up.
std::string ConnackReason(int code);
// A refused CONNECT as a Status: kPermissionDenied for bad credentials or
// not authorized (3.1.1: 4, 5; MQTT 5: 0x86, 0x87), kUnavailable otherwise.
Status ConnackRefusal(int code);
// True when the code says the broker does not speak this protocol version
// (3.1.1: 1; 5: 0x84), so that the client can try the older one.
bool ConnackRefusedVersion(int code);

// SUBACK: its packet id and one granted QoS (0-2) or a refusal (0x80 and
// up) per filter.
struct Suback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> codes;
};
Status ParseSuback(const Packet& packet, int version, Suback* out);

// PUBACK, PUBREC, PUBREL, PUBCOMP: the packet id (an MQTT 5 reason code
// and properties after it are allowed and ignored).
StatusOr<uint16_t> ParseAckId(const Packet& packet);

struct ConnectOptions {
  int version = 5;
  std::string client_id;
  bool clean_session = true;  // MQTT 5: clean start, and the session ends with the connection
  uint16_t keep_alive_s = 30;
  std::string username;  // empty: none
  std::string password;  // empty: none
  // MQTT 5: how many QoS 1/2 messages the broker may send before it waits
  // for our acknowledgements (MQTT 3.1.1 leaves that to the broker's
  // configuration, mosquitto's max_inflight_messages: 20 by default).
  uint16_t receive_maximum = 65535;
};

// Why `topic` cannot be published to, or OK: empty, longer than 65,535
// bytes, a wildcard (+ #), or not what brokers take as a topic name:
// invalid UTF-8, U+0000, control characters (U+0001-U+001F,
// U+007F-U+009F) or non-characters (mosquitto hangs up on those, and a
// sender that retries would send the same packet for ever).
Status CheckTopicName(std::string_view topic);

// Each appends one packet to *out, so that several go out in one write.
void AppendConnect(const ConnectOptions& options, std::string* out);
void AppendSubscribe(int version, uint16_t packet_id, const std::vector<std::string>& filters,
                     int qos, std::string* out);
// PUBACK, PUBREC, PUBREL or PUBCOMP.
void AppendAck(PacketType type, uint16_t packet_id, std::string* out);
// MQTT 3.1.1's form (tests publish with it).
void AppendPublish(std::string_view topic, std::string_view payload, int qos,
                   uint16_t packet_id, std::string* out);
void AppendPingreq(std::string* out);
void AppendDisconnect(std::string* out);

}  // namespace sluice::mqtt

#endif  // SLUICE_PLATFORM_MQTT_WIRE_H_
