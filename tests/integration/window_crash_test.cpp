// Crash safety of window state with the real binary: the agent runs a
// tumbling window while a publisher streams QoS 1 readings, and is SIGKILLed
// again and again. Its aggregates must be exactly those of `sluice test` run
// offline on the readings the broker saw (captured by mosquitto_sub during
// the run): same ids, same bodies. Duplicates are allowed only as byte-
// identical copies (checkpoint + journal replay re-emits with the same ids).
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <sqlite3.h>

#include <csignal>
#include <map>
#include <random>
#include <thread>

#include "tests/integration/harness.h"

using namespace sluice::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

constexpr int64_t kRate = 2000;  // readings per second
constexpr int64_t kSeconds = 60;
constexpr int64_t kCount = kRate * kSeconds;
constexpr int64_t kStartMs = 1700000000000;
constexpr int64_t kLatenessMs = 10000;
// A last reading this far in event time closes every window of the stream.
constexpr int64_t kFinalTs = kStartMs + kSeconds * 1000 + 120000;
constexpr int64_t kFinalWatermark = kFinalTs - kLatenessMs;

std::string Config(const TempDir& dir, const Mosquitto& broker, bool with_p95 = false) {
  // Lateness 10 s (not more): windows close during the run too, so replays
  // re-emit aggregates already queued. `idle: 0s`: processing time never
  // closes a window, only event time, as in `sluice test`.
  return "agent: { id: window-crash-gw, data_dir: " + dir.File("data") +
         ", http: off, shutdown_grace: 2s }\n"
         "sources:\n"
         "  plant:\n"
         "    url: " + broker.url() + "\n"
         "    client_id: sluice-window-crash-test\n"
         "    topics: [ \"sensors/+/+\" ]\n"
         "    qos: 1\n"
         "    session: persistent\n"
         "    topic_fields: \"sensors/{site}/{device}\"\n"
         "    time: { field: ts, unit: ms }\n"
         "pipelines:\n"
         "  temp_5s:\n"
         "    from: plant\n"
         "    window: { type: tumbling, size: 5s, lateness: 10s, idle: 0s }\n"
         "    group_by: [ device ]\n"
         "    aggregate:\n"
         "      n: count()\n"
         "      sum: sum(temp)\n"
         "      min: min(temp)\n"
         "      max: max(temp)\n"
         "      avg: avg(temp)\n" +
         std::string(with_p95 ? "      p95: p95(temp)\n" : "") +
         "    to: [ out ]\n"
         "sinks:\n"
         "  out: { type: file, path: " + dir.File("out.jsonl") + " }\n";
}

// Aggregates closed by the final reading, by id; fails on an id seen with
// two different bodies.
std::map<std::string, std::string> ClosedAggregates(const std::vector<std::string>& lines,
                                                    size_t* duplicates) {
  std::map<std::string, std::string> by_id;
  for (const std::string& line : lines) {
    json r = json::parse(line);
    if (r["window"]["end"].get<int64_t>() > kFinalWatermark) continue;
    std::string id = r["id"].get<std::string>();
    auto [it, inserted] = by_id.emplace(id, line);
    if (!inserted) {
      INFO("id " << id);
      REQUIRE(it->second == line);  // a duplicate is a byte-identical copy
      if (duplicates) ++*duplicates;
    }
  }
  return by_id;
}

// How many parts the largest snapshot of the current checkpoint has (0 when
// the store cannot be read now).
int64_t CheckpointParts(const std::string& path) {
  sqlite3* db = nullptr;
  int64_t parts = 0;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, "SELECT ifnull(max(part), -1) + 1 FROM checkpoint_parts", -1, &st,
                           nullptr) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW) {
      parts = sqlite3_column_int64(st, 0);
    }
    sqlite3_finalize(st);
  }
  sqlite3_close(db);
  return parts;
}

// The whole run: `devices` keys (each a window per 5 s), p95 or not.
void ExactAcrossKills(int devices, bool with_p95) {
  TempDir dir;
  MosquittoOptions broker_options;
  broker_options.max_queued_messages = 2 * kCount;  // the broker keeps what the agent has not taken
  Mosquitto broker(broker_options);
  broker.Start();
  WriteFile(dir.File("sluice.yaml"), Config(dir, broker, with_p95));

  // Everything published, as the broker passes it on, for the offline run.
  ChildOptions capture_logs;
  capture_logs.stdout_path = dir.File("captured.txt");
  capture_logs.stderr_path = dir.File("capture.err");
  ChildProcess capture({"/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p",
                        std::to_string(broker.port()), "-i", "window-crash-capture", "-q", "1",
                        "-t", "sensors/+/+", "-F", "%t %p", "-C", std::to_string(kCount + 1)},
                       capture_logs);

  auto start_agent = [&] {
    ChildOptions logs;
    logs.stderr_path = dir.File("agent.log");
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{SluiceBinary(), "run", "-c", dir.File("sluice.yaml")}, logs);
  };
  // The first start creates the persistent session before anything is published.
  auto agent = start_agent();
  REQUIRE(WaitUntil(
      [&] {
        return broker.SubscriptionCount("sluice-window-crash-test", "sensors/+/+") > 0 &&
               broker.SubscriptionCount("window-crash-capture", "sensors/+/+") > 0;
      },
      milliseconds(30000)));

  ChildOptions pub_logs;
  pub_logs.stdout_path = dir.File("simulate.out");
  pub_logs.stderr_path = dir.File("simulate.err");
  ChildProcess publisher({SluiceBinary(), "simulate", "--url", broker.url(), "--devices",
                          std::to_string(devices), "--rate", std::to_string(kRate), "--count",
                          std::to_string(kCount), "--qos", "1", "--seed", "11", "--start-ms",
                          std::to_string(kStartMs), "--client-id", "window-crash-publisher"},
                         pub_logs);

  std::mt19937 rng(20261127);
  int kills = 0;
  int64_t parts = 0;  // the most parts a checkpoint had, seen between kills
  while (publisher.Running() || kills < 20) {
    // Now and then right after a start, while the journal is being replayed.
    int64_t wait_ms = rng() % 5 == 0 ? 50 + rng() % 300 : 500 + rng() % 2500;
    std::this_thread::sleep_for(milliseconds(wait_ms));
    agent->Signal(SIGKILL);
    REQUIRE(agent->WaitExit(milliseconds(10000)).has_value());
    ++kills;
    parts = std::max(parts, CheckpointParts(dir.File("data/sluice.db")));
    agent = start_agent();
  }
  auto published = publisher.WaitExit(milliseconds(60000));
  INFO("simulate: " << ReadFile(dir.File("simulate.out")) << ReadFile(dir.File("simulate.err")));
  REQUIRE(published == 0);  // 0: every reading was acknowledged by the broker

  // One more reading, far later in event time: its watermark closes every
  // window of the stream (its own stays open).
  {
    TestPublisher last(broker.url(), "window-crash-final");
    last.Publish("sensors/site-zz/zz-final",
                 "{\"ts\":" + std::to_string(kFinalTs) + ",\"temp\":0.0}");
  }
  auto captured_exit = capture.WaitExit(milliseconds(60000));
  INFO("capture: " << ReadFile(dir.File("capture.err")));
  REQUIRE(captured_exit == 0);

  // The offline run on exactly what the broker saw.
  std::string input;
  size_t readings = 0;
  for (const std::string& line : ReadLines(dir.File("captured.txt"))) {
    size_t space = line.find(' ');
    REQUIRE(space != std::string::npos);
    input += json{{"topic", line.substr(0, space)}, {"payload", line.substr(space + 1)}}.dump();
    input += '\n';
    ++readings;
  }
  REQUIRE(readings == static_cast<size_t>(kCount + 1));
  WriteFile(dir.File("input.jsonl"), input);
  ChildProcess offline({SluiceBinary(), "test", "-c", dir.File("sluice.yaml"), "--input",
                        dir.File("input.jsonl")},
                       ChildOptions{{}, dir.File("offline.jsonl"), dir.File("offline.err")});
  auto offline_exit = offline.WaitExit(milliseconds(120000));
  INFO("sluice test: " << ReadFile(dir.File("offline.err")));
  REQUIRE(offline_exit == 0);
  std::map<std::string, std::string> expected =
      ClosedAggregates(ReadLines(dir.File("offline.jsonl")), nullptr);
  // 12 windows of 5 s per device, give or take one at the edges.
  REQUIRE(expected.size() >= static_cast<size_t>(devices * kSeconds / 5));

  // The agent catches up, then stops (a last checkpoint).
  bool complete = WaitUntil(
      [&] {
        std::map<std::string, std::string> got;
        for (const std::string& line : ReadLines(dir.File("out.jsonl"))) {
          json r = json::parse(line);
          if (r["window"]["end"].get<int64_t>() <= kFinalWatermark) got.emplace(r["id"], line);
        }
        for (const auto& [id, body] : expected) {
          if (got.count(id) == 0) return false;
        }
        return true;
      },
      milliseconds(180000));
  CHECK(agent->Stop(SIGTERM, milliseconds(30000)) == 0);

  size_t duplicates = 0;
  std::vector<std::string> lines = ReadLines(dir.File("out.jsonl"));
  std::map<std::string, std::string> got = ClosedAggregates(lines, &duplicates);
  std::string log = ReadFile(dir.File("agent.log"));
  size_t redeliveries = 0;
  for (size_t at = log.find("dropped a redelivered"); at != std::string::npos;
       at = log.find("dropped a redelivered", at + 1)) {
    ++redeliveries;
  }
  INFO("kills: " << kills << ", aggregates: " << got.size() << " of " << expected.size()
                 << ", lines: " << lines.size());
  CHECK(broker.Log().find("being dropped") == std::string::npos);
  CHECK(log.find("CANNOT RESTORE") == std::string::npos);
  REQUIRE(complete);
  CHECK(kills >= 20);
  for (const auto& [id, body] : expected) {
    auto it = got.find(id);
    INFO("id " << id);
    REQUIRE(it != got.end());
    CHECK(it->second == body);
  }
  for (const auto& [id, body] : got) {
    INFO("unexpected id " << id << ": " << body);
    CHECK(expected.count(id) == 1);
  }
  // The run exercised what it is about: checkpoints in several parts.
  if (devices >= 2000) CHECK(parts > 1);
  WARN("window crash test: " << devices << " devices, " << kills << " SIGKILLs, " << kCount
                             << " readings, " << expected.size() << " aggregates, " << duplicates
                             << " duplicates (byte-identical), redelivery log lines: "
                             << redeliveries << ", checkpoint parts: " << parts);
}

}  // namespace

TEST_CASE("window: aggregates are exact across 20+ SIGKILLs (checkpoint + journal replay)",
          "[integration][crash]") {
  ExactAcrossKills(10, false);
}

// 2,000 keys with a p95 each: the checkpoint is several parts (SIGKILLs
// land between its transactions), and the 2,000 windows closing at each
// boundary take several commits (SIGKILLs land while some are held back).
TEST_CASE("window: aggregates of 2000 keys with p95 are exact across 20+ SIGKILLs",
          "[integration][crash]") {
  ExactAcrossKills(2000, true);
}

// The redelivery of a reading committed just before a crash is rare to hit
// with random SIGKILLs (the commit-to-ack gap is microseconds), so this one
// sends byte-identical copies on purpose, after a SIGTERM (the set comes
// from the shutdown checkpoint) and after a SIGKILL (from the journal
// replay): each is taken once, never counted twice.
TEST_CASE("window: a redelivered reading is not counted twice across restarts",
          "[integration][crash]") {
  TempDir dir;
  Mosquitto broker;
  broker.Start();
  WriteFile(dir.File("sluice.yaml"), Config(dir, broker));
  auto start_agent = [&] {
    ChildOptions logs;
    logs.stderr_path = dir.File("agent.log");
    return std::make_unique<ChildProcess>(
        std::vector<std::string>{SluiceBinary(), "run", "-c", dir.File("sluice.yaml")}, logs);
  };
  int subscriptions = 0;
  auto wait_subscribed = [&] {
    REQUIRE(WaitUntil(
        [&] {
          return broker.SubscriptionCount("sluice-window-crash-test", "sensors/+/+") >
                 subscriptions;
        },
        milliseconds(30000)));
    ++subscriptions;
  };
  auto agent = start_agent();
  wait_subscribed();

  auto reading = [](int i) {
    return "{\"ts\":" + std::to_string(kStartMs + i * 100) +
           ",\"temp\":" + std::to_string(20 + i) + "}";
  };
  const std::string topic = "sensors/s1/d1";
  TestPublisher pub(broker.url(), "window-redelivery-publisher");
  for (int i = 0; i < 5; ++i) pub.Publish(topic, reading(i));
  std::this_thread::sleep_for(milliseconds(500));

  REQUIRE(agent->Stop(SIGTERM, milliseconds(30000)) == 0);
  agent = start_agent();
  wait_subscribed();
  pub.Publish(topic, reading(4));  // as if redelivered
  std::this_thread::sleep_for(milliseconds(500));

  agent->Signal(SIGKILL);
  REQUIRE(agent->WaitExit(milliseconds(10000)).has_value());
  agent = start_agent();
  wait_subscribed();
  pub.Publish(topic, reading(2));  // as if redelivered
  pub.Publish("sensors/s1/zz-final", "{\"ts\":" + std::to_string(kFinalTs) + ",\"temp\":0}");

  std::vector<std::string> lines;
  LineTail tail(dir.File("out.jsonl"));
  REQUIRE(WaitUntil([&] { return tail.ReadNew(&lines) > 0 || !lines.empty(); },
                    milliseconds(30000)));
  CHECK(agent->Stop(SIGTERM, milliseconds(30000)) == 0);
  tail.ReadNew(&lines);
  INFO(ReadFile(dir.File("agent.log")));
  REQUIRE(lines.size() == 1);
  json r = json::parse(lines[0]);
  CHECK(r["key"]["device"] == "d1");
  CHECK(r["window"]["start"] == kStartMs);
  CHECK(r["values"]["n"] == 5);
  CHECK(r["values"]["sum"].get<double>() == 110.0);
}
