// The MQTT source over TLS against a real mosquitto: CA verification, a
// client certificate, and username/password given as secret references.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <csignal>
#include <fstream>
#include <set>
#include <thread>

#include "tests/integration/harness.h"

using namespace sluice::testing;
using std::chrono::milliseconds;

namespace {

void Run(const std::string& command) {
  int rc = std::system(command.c_str());
  INFO(command);
  REQUIRE(rc == 0);
}

bool PortAccepts(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// A CA, a server certificate for 127.0.0.1 and a client certificate, made
// with the openssl command line in `dir`.
void MakeCertificates(const std::string& dir) {
  std::string q = " >/dev/null 2>&1";
  Run("cd " + dir + " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=test-ca "
      "-keyout ca.key -out ca.crt" + q);
  Run("cd " + dir + " && openssl req -newkey rsa:2048 -nodes -subj /CN=127.0.0.1 "
      "-keyout server.key -out server.csr" + q);
  WriteFile(dir + "/san.ext", "subjectAltName=IP:127.0.0.1\n");
  Run("cd " + dir + " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key "
      "-CAcreateserial -days 2 -extfile san.ext -out server.crt" + q);
  Run("cd " + dir + " && openssl req -newkey rsa:2048 -nodes -subj /CN=sluice-test "
      "-keyout client.key -out client.csr" + q);
  Run("cd " + dir + " && openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key "
      "-CAcreateserial -days 2 -out client.crt" + q);
  // A second CA the server certificate does not chain to.
  Run("cd " + dir + " && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=other-ca "
      "-keyout other.key -out other.crt" + q);
}

struct TlsBroker {
  explicit TlsBroker(const TempDir& dir) : port(FreeLoopbackPort()) {
    Run("mosquitto_passwd -b -c " + dir.File("passwd") + " gateway s3cret-pass >/dev/null 2>&1");
    std::string conf = "listener " + std::to_string(port) + " 127.0.0.1\n" +
                       "cafile " + dir.File("ca.crt") + "\n" +
                       "certfile " + dir.File("server.crt") + "\n" +
                       "keyfile " + dir.File("server.key") + "\n" +
                       "require_certificate true\n" +
                       "allow_anonymous false\n" +
                       "password_file " + dir.File("passwd") + "\n" +
                       (geteuid() == 0 ? "user root\n" : "");
    WriteFile(dir.File("mosquitto.conf"), conf);
    process = std::make_unique<ChildProcess>(
        std::vector<std::string>{"/usr/sbin/mosquitto", "-c", dir.File("mosquitto.conf")},
        ChildOptions{{}, "", dir.File("mosquitto.log")});
    REQUIRE(WaitUntil([&] { return PortAccepts(port); }, milliseconds(10000)));
  }
  ~TlsBroker() {
    if (process) process->Stop(SIGTERM, milliseconds(5000));
  }
  int port;
  std::unique_ptr<ChildProcess> process;
};

// `count` numbered readings on sensors/tls, over TLS with the client
// certificate and credentials, by mosquitto_pub: a client that is not ours.
void PublishNumbered(const TempDir& dir, int port, int count) {
  std::string lines;
  for (int n = 0; n < count; ++n) lines += TestPublisher::NumberedPayload(n) + "\n";
  WriteFile(dir.File("messages.txt"), lines);
  Run("mosquitto_pub -h 127.0.0.1 -p " + std::to_string(port) + " --cafile " +
      dir.File("ca.crt") + " --cert " + dir.File("client.crt") + " --key " +
      dir.File("client.key") + " -u gateway -P s3cret-pass -q 1 -t sensors/tls -l < " +
      dir.File("messages.txt"));
}

std::string AgentConfig(const TempDir& dir, int port, const std::string& ca) {
  return "agent: { id: tls-gw, data_dir: " + dir.File("data") + ", http: off }\n"
         "sources:\n"
         "  plant:\n"
         "    type: mqtt\n"
         "    url: ssl://127.0.0.1:" + std::to_string(port) + "\n"
         "    tls: { ca: " + dir.File(ca) + ", cert: " + dir.File("client.crt") +
         ", key: " + dir.File("client.key") + " }\n"
         "    username: ${env:SLUICE_TEST_MQTT_USER}\n"
         "    password: ${file:" + dir.File("mqtt.pass") + "}\n"
         "    topics: [ \"sensors/#\" ]\n"
         "    qos: 1\n"
         "    session: clean\n"
         "    time: { field: ts, unit: ms }\n"
         "pipelines:\n"
         "  raw: { from: plant, to: [ out ] }\n"
         "sinks:\n"
         "  out: { type: file, path: " + dir.File("out.jsonl") + " }\n";
}

}  // namespace

TEST_CASE("readings arrive over TLS with a client certificate and secret credentials",
          "[integration][tls]") {
  TempDir dir;
  MakeCertificates(dir.path());
  TlsBroker broker(dir);
  WriteFile(dir.File("mqtt.pass"), "s3cret-pass\n");
  WriteFile(dir.File("agent.yaml"), AgentConfig(dir, broker.port, "ca.crt"));
  ChildProcess agent({SluiceBinary(), "run", "-c", dir.File("agent.yaml")},
                     ChildOptions{{{"SLUICE_TEST_MQTT_USER", "gateway"}}, "", dir.File("agent.log")});
  REQUIRE(WaitUntil([&] { return ReadFile(dir.File("agent.log")).find("connected to") != std::string::npos; },
                    milliseconds(30000)));

  PublishNumbered(dir, broker.port, 20);

  REQUIRE(WaitUntil([&] { return ReadLines(dir.File("out.jsonl")).size() >= 20; },
                    milliseconds(30000)));
  auto out = ReadLines(dir.File("out.jsonl"));
  CHECK(out.size() == 20);
  auto first = nlohmann::json::parse(out.front());
  CHECK(first["topic"] == "sensors/tls");
  CHECK(first["fields"]["n"] == 0);

  REQUIRE(agent.Stop(SIGTERM, milliseconds(15000)) == 0);
  std::string log = ReadFile(dir.File("agent.log"));
  CHECK(log.find("s3cret-pass") == std::string::npos);
}

TEST_CASE("a server certificate from an unknown CA is refused, said once, and retried",
          "[integration][tls]") {
  TempDir dir;
  MakeCertificates(dir.path());
  TlsBroker broker(dir);
  WriteFile(dir.File("mqtt.pass"), "s3cret-pass\n");
  WriteFile(dir.File("agent.yaml"), AgentConfig(dir, broker.port, "other.crt"));
  ChildProcess agent({SluiceBinary(), "run", "-c", dir.File("agent.yaml")},
                     ChildOptions{{{"SLUICE_TEST_MQTT_USER", "gateway"}}, "", dir.File("agent.log")});
  REQUIRE(WaitUntil([&] { return ReadFile(dir.File("agent.log")).find("cannot connect") != std::string::npos; },
                    milliseconds(30000)));
  // Several attempts happen with backoff (100 ms, 200 ms, ...); the log says it once.
  std::this_thread::sleep_for(milliseconds(2000));
  CHECK(agent.Running());
  std::string log = ReadFile(dir.File("agent.log"));
  size_t said = 0;
  for (size_t pos = log.find("cannot connect"); pos != std::string::npos;
       pos = log.find("cannot connect", pos + 1)) {
    ++said;
  }
  CHECK(said == 1);
  CHECK(log.find("s3cret-pass") == std::string::npos);
  CHECK(agent.Stop(SIGTERM, milliseconds(15000)) == 0);
}

TEST_CASE("the mqtt sink publishes over TLS with a client certificate and secret credentials",
          "[integration][tls]") {
  // The agent relays: readings in over TLS, republished by the MQTT sink to
  // the same broker over TLS, read back by a second source into a file.
  TempDir dir;
  MakeCertificates(dir.path());
  TlsBroker broker(dir);
  WriteFile(dir.File("mqtt.pass"), "s3cret-pass\n");
  const std::string url = "ssl://127.0.0.1:" + std::to_string(broker.port);
  const std::string tls = "{ ca: " + dir.File("ca.crt") + ", cert: " + dir.File("client.crt") +
                          ", key: " + dir.File("client.key") + " }";
  const std::string credentials =
      "username: \"${env:SLUICE_TEST_MQTT_USER}\", password: \"${file:" + dir.File("mqtt.pass") + "}\"";
  WriteFile(dir.File("agent.yaml"),
            "agent: { id: tls-gw, data_dir: " + dir.File("data") + ", http: off }\n"
            "sources:\n"
            "  plant: { url: " + url + ", tls: " + tls + ", " + credentials +
            ", topics: [ \"sensors/#\" ], qos: 1 }\n"
            "  back: { url: " + url + ", tls: " + tls + ", " + credentials +
            ", topics: [ \"relay/#\" ], qos: 1 }\n"
            "pipelines:\n"
            "  raw: { from: plant, to: [ up ] }\n"
            "  relayed: { from: back, to: [ out ] }\n"
            "sinks:\n"
            "  up: { type: mqtt, url: " + url + ", topic: relay/out, qos: 1, tls: " + tls + ", " +
                credentials + " }\n"
            "  out: { type: file, path: " + dir.File("out.jsonl") + " }\n");
  ChildProcess agent({SluiceBinary(), "run", "-c", dir.File("agent.yaml")},
                     ChildOptions{{{"SLUICE_TEST_MQTT_USER", "gateway"}}, "", dir.File("agent.log")});
  const bool subscribed = WaitUntil(
      [&] { return ReadFile(dir.File("agent.log")).find("subscribed") != std::string::npos; },
      milliseconds(30000));
  INFO(ReadFile(dir.File("agent.log")));
  REQUIRE(subscribed);

  PublishNumbered(dir, broker.port, 20);

  REQUIRE(WaitUntil([&] { return ReadLines(dir.File("out.jsonl")).size() >= 20; },
                    milliseconds(30000)));
  std::set<std::string> seen;
  for (const std::string& line : ReadLines(dir.File("out.jsonl"))) {
    auto record = nlohmann::json::parse(line);
    CHECK(record["topic"] == "relay/out");
    // The relayed record's body: the original reading, with its topic.
    CHECK(line.find("sensors/tls") != std::string::npos);
    seen.insert(line);
  }
  CHECK(seen.size() == 20);
  std::string log = ReadFile(dir.File("agent.log"));
  CHECK(log.find("sink 'up': connected to " + url) != std::string::npos);
  REQUIRE(agent.Stop(SIGTERM, milliseconds(15000)) == 0);
  CHECK(ReadFile(dir.File("agent.log")).find("s3cret-pass") == std::string::npos);
}
