// MQTT 3.1.1 packets against bytes written out by hand from the
// specification (OASIS MQTT 3.1.1, sections 2 and 3), not by the encoder.
#include <catch2/catch.hpp>

#include <string>
#include <utility>
#include <vector>

#include "platform/mqtt_wire.h"

using namespace sluice;
using namespace sluice::mqtt;

namespace {

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

}  // namespace

TEST_CASE("CONNECT carries the protocol level, flags, keep-alive and credentials") {
  std::string out;
  AppendConnect({4, "gw", false, 30, "u", "pw"}, &out);
  // 0x10, remaining 21 (10 + 4 + 3 + 4); "MQTT", level 4, flags user|password (0xc0), keep-alive 30,
  // client id "gw", user "u", password "pw".
  CHECK(out == Bytes({0x10, 21, 0, 4, 'M', 'Q', 'T', 'T', 4, 0xc0, 0, 30, 0, 2, 'g', 'w', 0, 1,
                      'u', 0, 2, 'p', 'w'}));
  out.clear();
  AppendConnect({4, "gw", true, 60, "", ""}, &out);
  CHECK(out == Bytes({0x10, 14, 0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60, 0, 2, 'g', 'w'}));
}

TEST_CASE("SUBSCRIBE has the reserved flags 0b0010 and a QoS per filter") {
  std::string out;
  AppendSubscribe(4, 1, {"a/#", "b"}, 1, &out);
  CHECK(out == Bytes({0x82, 12, 0, 1, 0, 3, 'a', '/', '#', 1, 0, 1, 'b', 1}));
  out.clear();
  AppendSubscribe(5, 1, {"a/#"}, 2, &out);  // MQTT 5: an empty property block
  CHECK(out == Bytes({0x82, 9, 0, 1, 0, 0, 3, 'a', '/', '#', 2}));
}

TEST_CASE("an MQTT 5 CONNECT asks for a Receive Maximum, and a session expiry when persistent") {
  std::string out;
  ConnectOptions options{5, "gw", false, 30, "", ""};
  options.receive_maximum = 4096;
  AppendConnect(options, &out);
  // 10 bytes of variable header, properties: length 8, 0x11 FFFFFFFF, 0x21 0x1000; client id.
  CHECK(out == Bytes({0x10, 23, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x00, 0, 30, 8, 0x11, 0xff, 0xff,
                      0xff, 0xff, 0x21, 0x10, 0x00, 0, 2, 'g', 'w'}));
  out.clear();
  options.clean_session = true;
  AppendConnect(options, &out);
  CHECK(out == Bytes({0x10, 18, 0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 30, 3, 0x21, 0x10, 0x00,
                      0, 2, 'g', 'w'}));
}

TEST_CASE("MQTT 5 PUBLISH, CONNACK and SUBACK properties are skipped") {
  // QoS 1 PUBLISH, topic "t", id 3, properties: payload format 1, user property ("k","v").
  std::string in = Bytes({0x32, 18, 0, 1, 't', 0, 3, 9, 0x01, 1, 0x26, 0, 1, 'k', 0, 1, 'v',
                          'h', 'i', '!'});
  Packet packet;
  std::string wire;  // the bytes a packet views: alive while it is parsed
  REQUIRE(ReadPacket(in, &packet).ok());
  Publish p;
  REQUIRE(ParsePublish(packet, 5, &p).ok());
  CHECK(p.topic == "t");
  CHECK(p.packet_id == 3);
  CHECK(p.payload == "hi!");

  // CONNACK: session present 0, success, properties: receive maximum 10,
  // assigned client id "x", server keep alive 60.
  wire = Bytes({0x20, 13, 0, 0, 10, 0x21, 0, 10, 0x12, 0, 1, 'x', 0x13, 0, 60});
  REQUIRE(ReadPacket(wire, &packet).ok());
  Connack connack;
  REQUIRE(ParseConnack(packet, 5, &connack).ok());
  CHECK(connack.code == 0);
  CHECK(connack.server_keep_alive_s == 60);
  // A 3.1.1 broker's answer to an MQTT 5 CONNECT: two bytes, return code 1.
  wire = Bytes({0x20, 2, 0, 1});
  REQUIRE(ReadPacket(wire, &packet).ok());
  REQUIRE(ParseConnack(packet, 5, &connack).ok());
  CHECK(ConnackRefusedVersion(connack.code));
  CHECK(connack.server_keep_alive_s == -1);
  // Properties that run past the packet are refused.
  wire = Bytes({0x20, 4, 0, 0, 9, 0x21});
  REQUIRE(ReadPacket(wire, &packet).ok());
  CHECK_FALSE(ParseConnack(packet, 5, &connack).ok());

  // SUBACK: id 1, a reason string property, codes 1 and 0x87 (not authorized).
  wire = Bytes({0x90, 9, 0, 1, 4, 0x1f, 0, 1, 'n', 1, 0x87});
  REQUIRE(ReadPacket(wire, &packet).ok());
  Suback suback;
  REQUIRE(ParseSuback(packet, 5, &suback).ok());
  CHECK(suback.codes == std::vector<uint8_t>{1, 0x87});
}

TEST_CASE("acknowledgements: PUBREL alone has flags") {
  std::string out;
  AppendAck(PacketType::kPuback, 0x1234, &out);
  AppendAck(PacketType::kPubrec, 7, &out);
  AppendAck(PacketType::kPubrel, 7, &out);
  AppendAck(PacketType::kPubcomp, 7, &out);
  AppendPingreq(&out);
  AppendDisconnect(&out);
  CHECK(out == Bytes({0x40, 2, 0x12, 0x34, 0x50, 2, 0, 7, 0x62, 2, 0, 7, 0x70, 2, 0, 7, 0xc0, 0,
                      0xe0, 0}));
}

TEST_CASE("a QoS 1 PUBLISH from the broker is read with its topic, id and payload") {
  std::string in = Bytes({0x3a, 9, 0, 3, 'a', '/', 'b', 0, 5, '4', '2'});  // dup, QoS 1
  Packet packet;
  auto used = ReadPacket(in, &packet);
  REQUIRE(used.ok());
  CHECK(*used == in.size());
  CHECK(packet.type == PacketType::kPublish);
  Publish p;
  REQUIRE(ParsePublish(packet, 4, &p).ok());
  CHECK(p.topic == "a/b");
  CHECK(p.packet_id == 5);
  CHECK(p.qos == 1);
  CHECK(p.dup);
  CHECK_FALSE(p.retain);
  CHECK(p.payload == "42");
}

TEST_CASE("a QoS 0 PUBLISH has no packet id, and an empty payload is fine") {
  std::string in = Bytes({0x31, 3, 0, 1, 't'});  // retained
  Packet packet;
  REQUIRE(ReadPacket(in, &packet).ok());
  Publish p;
  REQUIRE(ParsePublish(packet, 4, &p).ok());
  CHECK(p.qos == 0);
  CHECK(p.retain);
  CHECK(p.packet_id == 0);
  CHECK(p.topic == "t");
  CHECK(p.payload.empty());
}

TEST_CASE("the remaining length takes up to four bytes, least significant first") {
  // 321 = 0xc1 0x02 (65 + 2 * 128).
  std::string payload(321 - 2 - 1, 'x');
  std::string in = Bytes({0x30, 0xc1, 0x02, 0, 1, 't'}) + payload;
  Packet packet;
  auto used = ReadPacket(in, &packet);
  REQUIRE(used.ok());
  CHECK(*used == 3 + 321);
  CHECK(packet.body.size() == 321);
  // What AppendPublish writes reads back the same.
  std::string out;
  AppendPublish("t", payload, 0, 0, &out);
  CHECK(out == in);
}

TEST_CASE("a partial packet asks for more bytes, at every cut") {
  std::string whole;
  AppendPublish("sensors/a/b", std::string(200, 'p'), 2, 9, &whole);
  for (size_t cut = 0; cut < whole.size(); ++cut) {
    Packet packet;
    auto used = ReadPacket(std::string_view(whole).substr(0, cut), &packet);
    REQUIRE(used.ok());
    CHECK(*used == 0);
  }
  Packet packet;
  auto used = ReadPacket(whole + "trailing", &packet);
  REQUIRE(used.ok());
  CHECK(*used == whole.size());
}

TEST_CASE("bytes that cannot be MQTT are refused, never read past") {
  Packet packet;
  std::string wire;  // the bytes a packet views: alive while it is parsed
  CHECK_FALSE(ReadPacket(Bytes({0x00, 0}), &packet).ok());             // reserved type 0
  CHECK_FALSE(ReadPacket(Bytes({0xf0, 0}), &packet).ok());             // reserved type 15
  CHECK_FALSE(ReadPacket(Bytes({0x30, 0xff, 0xff, 0xff, 0xff, 1}), &packet).ok());  // 5-byte length

  Publish p;
  wire = Bytes({0x30, 1, 0});
  REQUIRE(ReadPacket(wire, &packet).ok());
  CHECK_FALSE(ParsePublish(packet, 4, &p).ok());  // no room for the topic length
  wire = Bytes({0x30, 3, 0, 9, 'a'});
  REQUIRE(ReadPacket(wire, &packet).ok());
  CHECK_FALSE(ParsePublish(packet, 4, &p).ok());  // topic longer than the packet
  wire = Bytes({0x32, 3, 0, 1, 'a'});
  REQUIRE(ReadPacket(wire, &packet).ok());
  CHECK_FALSE(ParsePublish(packet, 4, &p).ok());  // QoS 1 without its packet id
  wire = Bytes({0x36, 5, 0, 1, 'a', 0, 1});
  REQUIRE(ReadPacket(wire, &packet).ok());
  CHECK_FALSE(ParsePublish(packet, 4, &p).ok());  // QoS 3
}

TEST_CASE("CONNACK and SUBACK are read, and a refusal is named") {
  Packet packet;
  std::string wire;  // the bytes a packet views: alive while it is parsed
  wire = Bytes({0x20, 2, 0, 5});
  REQUIRE(ReadPacket(wire, &packet).ok());
  Connack connack;
  REQUIRE(ParseConnack(packet, 4, &connack).ok());
  CHECK(connack.code == 5);
  CHECK(ConnackReason(5) == "not authorized");
  CHECK(ConnackReason(4) == "bad user name or password");

  wire = Bytes({0x90, 4, 0, 1, 1, 0x80});
  REQUIRE(ReadPacket(wire, &packet).ok());
  Suback suback;
  REQUIRE(ParseSuback(packet, 4, &suback).ok());
  CHECK(suback.packet_id == 1);
  CHECK(suback.codes == std::vector<uint8_t>{1, 0x80});

  wire = Bytes({0x62, 2, 0x01, 0x02});
  REQUIRE(ReadPacket(wire, &packet).ok());
  auto id = ParseAckId(packet);
  REQUIRE(id.ok());
  CHECK(*id == 0x0102);
}

TEST_CASE("a topic to publish to is refused where brokers would hang up on it") {
  CHECK(CheckTopicName("plant/line-1/temp").ok());
  CHECK(CheckTopicName("usine/étage/°C/温度/🌡").ok());
  CHECK(CheckTopicName(std::string(65535, 'a')).ok());
  const std::vector<std::pair<std::string, std::string>> refused = {
      {"", "empty"},
      {std::string(65536, 'a'), "65,535"},
      {"a/+/b", "wildcard"},
      {"a/#", "wildcard"},
      {std::string("a\0b", 3), "U+0000"},
      {"tab\there", "U+0009"},
      {"new\nline", "U+000A"},
      {"del\x7f", "U+007F"},
      {"next\xc2\x85line", "U+0085"},
      {"non\xef\xbf\xbe", "U+FFFE"},
      {"non\xef\xb7\x90", "U+FDD0"},
      {"non\xf0\x9f\xbf\xbf", "U+1FFFF"},
      {"overlong\xc0\xaf", "UTF-8"},
      {"cut\xc3", "UTF-8"},
      {"surrogate\xed\xa0\x80", "UTF-8"},
      {"lone\x80", "UTF-8"},
      {"beyond\xf4\x90\x80\x80", "UTF-8"},
  };
  for (const auto& [topic, why] : refused) {
    CAPTURE(topic);
    Status s = CheckTopicName(topic);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK(std::string(s.message()).find(why) != std::string::npos);
  }
}
