// The systemd protocol, with the test playing the service manager: its own
// NOTIFY_SOCKET and WATCHDOG_USEC for the real binary. READY=1 arrives, the
// watchdog is fed while the pipelines make progress and no longer once they
// are stalled on purpose (a test hook that blocks the pipeline thread).
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <csignal>
#include <cstring>

#include "tests/integration/harness.h"

using namespace sluice::testing;
using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

namespace {

// A unix datagram socket the agent notifies, as systemd's would be.
class FakeServiceManager {
 public:
  explicit FakeServiceManager(const std::string& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    REQUIRE(path.size() < sizeof addr.sun_path);
    std::strcpy(addr.sun_path, path.c_str());
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  }
  ~FakeServiceManager() { ::close(fd_); }

  // The next datagram, or nullopt after `timeout`.
  std::optional<std::string> Next(milliseconds timeout) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return std::nullopt;
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
    if (n < 0) return std::nullopt;
    return std::string(buf, static_cast<size_t>(n));
  }

 private:
  std::string path_;
  int fd_ = -1;
};

}  // namespace

TEST_CASE("systemd notify: READY, STATUS, watchdog pings while the pipelines progress, none once stalled") {
  TempDir dir;
  Mosquitto broker;
  broker.Start();
  FakeServiceManager manager(dir.File("notify.sock"));
  WriteFile(dir.File("sluice.yaml"),
            "agent: { id: notify-gw, data_dir: " + dir.File("data") + ", http: off }\n"
            "sources:\n  plant: { url: " + broker.url() + ", topics: [ \"s/#\" ], qos: 1 }\n"
            "pipelines:\n  raw: { from: plant, to: [ out ] }\n"
            "sinks:\n  out: { type: file, path: " + dir.File("out.jsonl") + " }\n");
  ChildOptions o;
  o.stderr_path = dir.File("agent.log");
  o.env = {{"NOTIFY_SOCKET", dir.File("notify.sock")},
           {"WATCHDOG_USEC", "400000"},  // a ping every 200 ms
           {"SLUICE_TEST_STALL_TOPIC", "s/stall"}};
  ChildProcess agent({SluiceBinary(), "run", "-c", dir.File("sluice.yaml")}, o);
  INFO("agent log:\n" << ReadFile(dir.File("agent.log")));

  std::optional<std::string> first = manager.Next(milliseconds(30000));
  REQUIRE(first.has_value());
  CHECK(first->find("READY=1") != std::string::npos);
  CHECK(first->find("STATUS=") != std::string::npos);

  // Pings keep coming: count those of ten seconds (about 50 expected).
  int pings = 0;
  bool status_seen = false;
  for (auto until = Clock::now() + milliseconds(10000); Clock::now() < until;) {
    auto m = manager.Next(milliseconds(1000));
    if (!m) continue;
    pings += m->find("WATCHDOG=1") != std::string::npos;
    status_seen |= m->find("readings in") != std::string::npos;
  }
  CHECK(pings >= 10);
  CHECK(status_seen);

  // Stall the pipelines: pings stop (after the 10 s progress limit).
  TestPublisher pub(broker.url());
  pub.Publish("s/stall", "{\"x\":1}", 0);
  bool silent = false;
  for (auto until = Clock::now() + milliseconds(60000); Clock::now() < until && !silent;) {
    // Three seconds without a ping (15 intervals) means the watchdog is starved.
    silent = true;
    for (auto quiet_until = Clock::now() + milliseconds(3000); Clock::now() < quiet_until;) {
      auto m = manager.Next(milliseconds(200));
      if (m && m->find("WATCHDOG=1") != std::string::npos) {
        silent = false;
        break;
      }
    }
  }
  CHECK(silent);
  CHECK(ReadFile(dir.File("agent.log")).find("no longer feeding the watchdog") != std::string::npos);
  agent.Signal(SIGKILL);
  agent.WaitExit(milliseconds(10000));
}

TEST_CASE("systemd notify: STOPPING=1 on SIGTERM, then a clean exit") {
  TempDir dir;
  Mosquitto broker;
  broker.Start();
  FakeServiceManager manager(dir.File("notify.sock"));
  WriteFile(dir.File("sluice.yaml"),
            "agent: { id: notify-gw2, data_dir: " + dir.File("data") + ", http: off }\n"
            "sources:\n  plant: { url: " + broker.url() + ", topics: [ \"s/#\" ], qos: 1 }\n"
            "pipelines:\n  raw: { from: plant, to: [ out ] }\n"
            "sinks:\n  out: { type: file, path: " + dir.File("out.jsonl") + " }\n");
  ChildOptions o;
  o.stderr_path = dir.File("agent.log");
  o.env = {{"NOTIFY_SOCKET", dir.File("notify.sock")}};
  ChildProcess agent({SluiceBinary(), "run", "-c", dir.File("sluice.yaml")}, o);
  auto ready = manager.Next(milliseconds(30000));
  REQUIRE(ready.has_value());
  REQUIRE(ready->find("READY=1") != std::string::npos);
  agent.Signal(SIGTERM);
  bool stopping = false;
  while (auto m = manager.Next(milliseconds(30000))) {
    CHECK(m->find("WATCHDOG=1") == std::string::npos);  // no watchdog without WATCHDOG_USEC
    if (m->find("STOPPING=1") != std::string::npos) {
      stopping = true;
      break;
    }
  }
  CHECK(stopping);
  CHECK(agent.WaitExit(milliseconds(30000)) == 0);
}
