// Crash safety with the real binary: the agent is SIGKILLed again and again
// while a publisher streams QoS 1 readings; afterwards every reading the
// broker acknowledged to the publisher is in the sink's output.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <random>
#include <set>
#include <thread>

#include "tests/integration/harness.h"

using namespace sluice::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

constexpr int64_t kRate = 2000;        // readings per second
constexpr int64_t kSeconds = 60;
constexpr int64_t kCount = kRate * kSeconds;
constexpr int64_t kStartMs = 1700000000000;
constexpr int kDevices = 10;

std::string Config(const TempDir& dir, const Mosquitto& broker) {
  return "agent: { id: crash-gw, data_dir: " + dir.File("data") + ", http: off, shutdown_grace: 2s }\n"
         "sources:\n"
         "  plant:\n"
         "    url: " + broker.url() + "\n"
         "    client_id: sluice-crash-test\n"
         "    topics: [ \"sensors/+/+\" ]\n"
         "    qos: 1\n"
         "    session: persistent\n"
         "    topic_fields: \"sensors/{site}/{device}\"\n"
         "    time: { field: ts, unit: ms }\n"
         "pipelines:\n"
         "  raw: { from: plant, to: [ out ] }\n"
         "sinks:\n"
         "  out: { type: file, path: " + dir.File("out.jsonl") + " }\n";
}

}  // namespace

TEST_CASE("passthrough: no acknowledged reading is lost across 20+ SIGKILLs",
          "[integration][crash]") {
  TempDir dir;
  MosquittoOptions broker_options;
  broker_options.max_queued_messages = 2 * kCount;  // the broker keeps what the agent has not taken
  Mosquitto broker(broker_options);
  broker.Start();
  WriteFile(dir.File("sluice.yaml"), Config(dir, broker));

  auto start_agent = [&] {
    ChildOptions logs;
    logs.stderr_path = dir.File("agent.log");
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{SluiceBinary(), "run", "-c", dir.File("sluice.yaml")}, logs);
  };
  // The first start creates the persistent session before anything is published.
  auto agent = start_agent();
  REQUIRE(WaitUntil([&] { return broker.SubscriptionCount("sluice-crash-test", "sensors/+/+") > 0; },
                    milliseconds(30000)));

  ChildOptions pub_logs;
  pub_logs.stdout_path = dir.File("simulate.out");
  pub_logs.stderr_path = dir.File("simulate.err");
  ChildProcess publisher({SluiceBinary(), "simulate", "--url", broker.url(), "--devices",
                          std::to_string(kDevices), "--rate", std::to_string(kRate), "--count",
                          std::to_string(kCount), "--qos", "1", "--seed", "7", "--start-ms",
                          std::to_string(kStartMs), "--client-id", "crash-publisher"},
                         pub_logs);

  std::mt19937 rng(20261126);
  int kills = 0;
  while (publisher.Running() || kills < 20) {
    std::this_thread::sleep_for(milliseconds(500 + rng() % 2500));
    agent->Signal(SIGKILL);
    REQUIRE(agent->WaitExit(milliseconds(10000)).has_value());
    ++kills;
    agent = start_agent();
  }
  auto published = publisher.WaitExit(milliseconds(60000));
  INFO("simulate: " << ReadFile(dir.File("simulate.out")) << ReadFile(dir.File("simulate.err")));
  REQUIRE(published == 0);  // 0: every reading was acknowledged by the broker

  // Every (device, ts) the simulator sent must arrive.
  std::set<std::pair<std::string, int64_t>> seen;
  size_t lines = 0;
  LineTail tail(dir.File("out.jsonl"));
  std::vector<std::string> buffer;
  bool complete = WaitUntil(
      [&] {
        buffer.clear();
        tail.ReadNew(&buffer);
        for (const std::string& line : buffer) {
          json r = json::parse(line);
          seen.insert({r["fields"]["device"].get<std::string>(), r["fields"]["ts"].get<int64_t>()});
          ++lines;
        }
        return seen.size() >= static_cast<size_t>(kCount);
      },
      milliseconds(180000));
  INFO("kills: " << kills << ", distinct readings: " << seen.size() << ", lines: " << lines);
  CHECK(broker.Log().find("being dropped") == std::string::npos);
  REQUIRE(complete);
  CHECK(seen.size() == static_cast<size_t>(kCount));
  CHECK(kills >= 20);
  WARN("crash test: " << kills << " SIGKILLs, " << kCount << " readings, " << lines - seen.size()
                      << " duplicates delivered (same ids)");
  CHECK(agent->Stop(SIGTERM, milliseconds(30000)) == 0);
}
