// MQTT 3.1.1 packets as bytes: what the MQTT source needs to subscribe, and
// what its tests and benchmarks need to publish. Pure: no sockets, no
// allocation while reading (a parsed packet views the caller's buffer).
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
Status ParsePublish(const Packet& packet, Publish* out);

// CONNACK's return code (0: accepted), or an error for a malformed packet.
StatusOr<int> ParseConnack(const Packet& packet);
// The reason for a refused CONNECT, as MQTT 3.1.1 names return codes 1-5.
std::string ConnackReason(int code);

// SUBACK: its packet id and one granted QoS (0-2) or 0x80 (refused) per filter.
struct Suback {
  uint16_t packet_id = 0;
  std::vector<uint8_t> codes;
};
Status ParseSuback(const Packet& packet, Suback* out);

// PUBACK, PUBREC, PUBREL, PUBCOMP: the packet id.
StatusOr<uint16_t> ParseAckId(const Packet& packet);

struct ConnectOptions {
  std::string client_id;
  bool clean_session = true;
  uint16_t keep_alive_s = 30;
  std::string username;  // empty: none
  std::string password;  // empty: none
};

// Each appends one packet to *out, so that several go out in one write.
void AppendConnect(const ConnectOptions& options, std::string* out);
void AppendSubscribe(uint16_t packet_id, const std::vector<std::string>& filters, int qos,
                     std::string* out);
// PUBACK, PUBREC, PUBREL or PUBCOMP.
void AppendAck(PacketType type, uint16_t packet_id, std::string* out);
void AppendPublish(std::string_view topic, std::string_view payload, int qos,
                   uint16_t packet_id, std::string* out);
void AppendPingreq(std::string* out);
void AppendDisconnect(std::string* out);

}  // namespace sluice::mqtt

#endif  // SLUICE_PLATFORM_MQTT_WIRE_H_
