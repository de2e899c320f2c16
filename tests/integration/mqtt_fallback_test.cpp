// The agent against a broker that speaks MQTT 3.1.1 only. mosquitto speaks
// MQTT 5 and cannot be told not to, so the broker here is a script on a
// loopback socket: it answers an MQTT 5 CONNECT as a 3.1.1 broker must
// (CONNACK return code 1, "unacceptable protocol version", then close),
// accepts the 3.1.1 CONNECT that must follow, and delivers one QoS 1 reading
// whose PUBACK it expects back.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <string>
#include <thread>

#include <catch2/catch.hpp>

#include "tests/integration/harness.h"

using namespace sluice::testing;
using std::chrono::milliseconds;

namespace {

// A blocking loopback listener whose accepts and reads give up after 30 s,
// used from the script's thread: no Catch assertions there but in its
// constructor.
class ScriptedBroker {
 public:
  ScriptedBroker() : port_(FreeLoopbackPort()) {
    listener_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(listener_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port_));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(bind(listener_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(listener_, 4) == 0);
    timeval timeout{30, 0};  // accept() gives up too
    setsockopt(listener_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  }
  ~ScriptedBroker() { close(listener_); }
  int port() const { return port_; }

  int Accept() {
    int fd = accept(listener_, nullptr, nullptr);
    timeval timeout{30, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    return fd;
  }
  // One whole packet (fixed header included); empty on EOF or timeout.
  static std::string ReadPacket(int fd) {
    std::string packet(1, '\0');
    if (recv(fd, packet.data(), 1, MSG_WAITALL) != 1) return "";
    size_t length = 0;
    for (int shift = 0;; shift += 7) {
      char byte;
      if (recv(fd, &byte, 1, MSG_WAITALL) != 1) return "";
      packet.push_back(byte);
      length |= static_cast<size_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) break;
    }
    std::string body(length, '\0');
    if (length > 0 && recv(fd, body.data(), length, MSG_WAITALL) != static_cast<ssize_t>(length)) {
      return "";
    }
    return packet + body;
  }
  static void Send(int fd, const std::string& bytes) {
    (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);  // a short send shows in what comes back
  }

 private:
  int port_;
  int listener_;
};

std::string Bytes(std::initializer_list<int> bytes) {
  std::string out;
  for (int b : bytes) out.push_back(static_cast<char>(b));
  return out;
}

// The protocol level byte of a CONNECT: after 0x10, a one-byte length and "\0\4MQTT".
int ProtocolLevel(const std::string& connect) {
  return connect.size() > 8 ? static_cast<uint8_t>(connect[8]) : -1;
}

}  // namespace

TEST_CASE("agent: a broker that refuses MQTT 5 is spoken to in MQTT 3.1.1",
          "[integration][mqtt]") {
  TempDir dir;
  ScriptedBroker broker;
  WriteFile(dir.File("agent.yaml"),
            "agent: { id: old-broker, data_dir: " + dir.File("data") + ", http: off }\n"
            "sources:\n"
            "  plant: { url: \"tcp://127.0.0.1:" + std::to_string(broker.port()) + "\", "
            "topics: [ \"sensors/#\" ], qos: 1, session: clean }\n"
            "pipelines:\n"
            "  raw: { from: plant, to: [ out ] }\n"
            "sinks:\n"
            "  out: { type: file, path: " + dir.File("out.jsonl") + " }\n");

  std::string first_connect, second_connect, subscribe, puback;
  std::thread script([&] {
    int fd = broker.Accept();
    first_connect = ScriptedBroker::ReadPacket(fd);
    ScriptedBroker::Send(fd, Bytes({0x20, 2, 0, 1}));  // unacceptable protocol version
    close(fd);
    fd = broker.Accept();
    second_connect = ScriptedBroker::ReadPacket(fd);
    ScriptedBroker::Send(fd, Bytes({0x20, 2, 0, 0}));
    subscribe = ScriptedBroker::ReadPacket(fd);
    ScriptedBroker::Send(fd, Bytes({0x90, 3, 0, 1, 1}));  // SUBACK: packet id 1, QoS 1 granted
    const std::string payload = "{\"n\":42}";
    std::string publish = Bytes({0x32, static_cast<int>(2 + 11 + 2 + payload.size()), 0, 11});
    publish += "sensors/a/b";
    publish += Bytes({0, 7});  // packet id 7
    publish += payload;
    ScriptedBroker::Send(fd, publish);
    puback = ScriptedBroker::ReadPacket(fd);
    close(fd);
  });

  ChildProcess agent({SluiceBinary(), "run", "-c", dir.File("agent.yaml")},
                     ChildOptions{{}, "", dir.File("agent.log")});
  script.join();
  CHECK(ProtocolLevel(first_connect) == 5);
  CHECK(ProtocolLevel(second_connect) == 4);
  // 3.1.1's SUBSCRIBE has no property block: packet id, then the filter at once.
  CHECK(subscribe == Bytes({0x82, 14, 0, 1, 0, 9}) + "sensors/#" + Bytes({1}));
  CHECK(puback == Bytes({0x40, 2, 0, 7}));
  REQUIRE(WaitUntil([&] { return ReadLines(dir.File("out.jsonl")).size() == 1; },
                    milliseconds(30000)));
  CHECK(ReadLines(dir.File("out.jsonl"))[0].find("\"n\":42") != std::string::npos);
  agent.Stop(SIGTERM, milliseconds(15000));
  const std::string log = ReadFile(dir.File("agent.log"));
  INFO(log);
  CHECK(log.find("speaks MQTT 3.1.1 only") != std::string::npos);
  CHECK(log.find("(MQTT 3.1.1), subscribed") != std::string::npos);
  CHECK(log.find("cannot connect") == std::string::npos);  // the fallback is not a failure
}
