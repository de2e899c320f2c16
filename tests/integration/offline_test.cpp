// `sluice test`: the real binary runs a config's pipelines on recorded
// readings; the expected records are worked out by hand in the comments.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <set>

#include "tests/integration/harness.h"

using namespace sluice::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

// The agent and its one source; each config adds its pipelines and sinks.
const std::string kHeader = R"(agent: { id: gw-test, data_dir: DATA, http: off }
sources:
  plant:
    type: mqtt
    url: tcp://127.0.0.1:1883
    topics: [ "sensors/+/+" ]
    topic_fields: "sensors/{site}/{device}"
    time: { field: ts, unit: ms }
pipelines:
)";

const std::string kConfig = kHeader + R"(  temp_10s:
    from: plant
    where: "temp > -50 && temp < 150"
    window: { type: tumbling, size: 10s, lateness: 2s }
    group_by: [ device ]
    aggregate:
      n: count()
      avg: avg(temp)
      max: max(temp)
    to: [ out ]
  hot_window:
    from: temp_10s
    alert: { when: "max > 80", severity: critical, key: [ device ] }
    to: [ out ]
  overheat:
    from: plant
    alert: { when: "temp > 80", clear: "temp < 75", for: 5s, key: [ device ], labels: { team: cold } }
    to: [ out ]
sinks:
  out: { type: stdout }
)";

const char* kInput = R"({"topic":"sensors/s1/d1","payload":{"ts":1000,"temp":20}}
{"topic":"sensors/s1/d1","payload":{"ts":4000,"temp":85}}
{"topic":"sensors/s1/d1","payload":{"ts":9000,"temp":90}}
{"topic":"sensors/s1/d2","payload":{"ts":9500,"temp":21}}
{"topic":"sensors/s1/d1","payload":{"ts":12500,"temp":78}}
{"topic":"sensors/s1/d1","payload":{"ts":13000,"temp":74}}
{"topic":"sensors/s1/d1","payload":{"ts":5000,"temp":999}}
{"topic":"sensors/s1/d1","payload":{"ts":3000,"temp":30}}
{"topic":"sensors/s1/d1","payload":"not json"}
)";

struct Run {
  int exit_code;
  std::vector<json> records;
  std::string stdout_text;
  std::string stderr_text;
};

Run RunTest(const TempDir& dir, const std::string& config, const std::string& input) {
  std::string c = config;
  c.replace(c.find("DATA"), 4, dir.File("data"));
  WriteFile(dir.File("c.yaml"), c);
  WriteFile(dir.File("in.jsonl"), input);
  ChildProcess p({SluiceBinary(), "test", "-c", dir.File("c.yaml"), "--input", dir.File("in.jsonl")},
                 ChildOptions{{}, dir.File("out.txt"), dir.File("err.txt")});
  auto code = p.WaitExit(milliseconds(60000));
  REQUIRE(code.has_value());
  Run r{*code, {}, ReadFile(dir.File("out.txt")), ReadFile(dir.File("err.txt"))};
  for (const std::string& line : ReadLines(dir.File("out.txt"))) r.records.push_back(json::parse(line));
  return r;
}

}  // namespace

TEST_CASE("sluice test: windows, alerts on readings and on aggregates, late and bad readings",
          "[integration][offline]") {
  TempDir dir;
  Run run = RunTest(dir, kConfig, kInput);
  INFO(run.stderr_text);
  REQUIRE(run.exit_code == 0);
  REQUIRE(run.records.size() == 7);
  auto strip = [](json j) {
    j.erase("id");
    return j;
  };
  // Line 3: d1 has been above 80 since 4000; at 9000 `for: 5s` is reached.
  CHECK(strip(run.records[0]) == json{{"agent", "gw-test"}, {"pipeline", "overheat"}, {"kind", "alert"},
                                      {"key", {{"device", "d1"}}}, {"state", "firing"},
                                      {"severity", "warning"},
                                      {"value", {{"site", "s1"}, {"device", "d1"}, {"temp", 90}}},
                                      {"at", 9000}, {"since", 9000}, {"labels", {{"team", "cold"}}}});
  // Line 5 (ts 12500) takes the watermark to 10500: [0, 10 s) closes, d1 then d2.
  CHECK(strip(run.records[1]) == json{{"agent", "gw-test"}, {"pipeline", "temp_10s"}, {"kind", "aggregate"},
                                      {"key", {{"device", "d1"}}},
                                      {"window", {{"start", 0}, {"end", 10000}}},
                                      {"values", {{"n", 3}, {"avg", 65.0}, {"max", 90.0}}}});
  // The d1 aggregate has max 90 > 80: the alert on aggregates fires at the window start.
  CHECK(strip(run.records[2]) == json{{"agent", "gw-test"}, {"pipeline", "hot_window"}, {"kind", "alert"},
                                      {"key", {{"device", "d1"}}}, {"state", "firing"},
                                      {"severity", "critical"},
                                      {"value", {{"device", "d1"}, {"n", 3}, {"avg", 65.0}, {"max", 90.0}}},
                                      {"at", 0}, {"since", 0}});
  CHECK(strip(run.records[3]) == json{{"agent", "gw-test"}, {"pipeline", "temp_10s"}, {"kind", "aggregate"},
                                      {"key", {{"device", "d2"}}},
                                      {"window", {{"start", 0}, {"end", 10000}}},
                                      {"values", {{"n", 1}, {"avg", 21.0}, {"max", 21.0}}}});
  // Line 6: 74 < 75 clears the reading alert (78 on line 5 did not: hysteresis).
  CHECK(run.records[4]["pipeline"] == "overheat");
  CHECK(run.records[4]["state"] == "resolved");
  CHECK(run.records[4]["at"] == 13000);
  CHECK(run.records[4]["since"] == 9000);
  // End of input closes [10 s, 20 s) for d1 (78 and 74; 999 was filtered out
  // by `where`), whose max 78 resolves the alert on aggregates.
  CHECK(strip(run.records[5]) == json{{"agent", "gw-test"}, {"pipeline", "temp_10s"}, {"kind", "aggregate"},
                                      {"key", {{"device", "d1"}}},
                                      {"window", {{"start", 10000}, {"end", 20000}}},
                                      {"values", {{"n", 2}, {"avg", 76.0}, {"max", 78.0}}}});
  CHECK(run.records[6]["pipeline"] == "hot_window");
  CHECK(run.records[6]["state"] == "resolved");
  CHECK(run.records[6]["at"] == 10000);
  CHECK(run.records[6]["since"] == 0);
  // Every id is distinct and starts with its pipeline.
  std::set<std::string> ids;
  for (const json& r : run.records) {
    ids.insert(r["id"].get<std::string>());
    CHECK(r["id"].get<std::string>().rfind(r["pipeline"].get<std::string>() + ":", 0) == 0);
  }
  CHECK(ids.size() == 7);
  // Line 8 (ts 3000) is too late for [0, 10 s); line 9 is not JSON.
  CHECK(run.stderr_text.find("\"reason\":\"late") != std::string::npos);
  CHECK(run.stderr_text.find("payload is not valid JSON") != std::string::npos);
}

TEST_CASE("sluice test is deterministic", "[integration][offline]") {
  TempDir a, b;
  Run first = RunTest(a, kConfig, kInput);
  Run second = RunTest(b, kConfig, kInput);
  CHECK(first.exit_code == 0);
  CHECK(first.stdout_text == second.stdout_text);
  CHECK_FALSE(first.stdout_text.empty());
}

// The agent commits at most 256 records at once and closes the rest of the
// windows later; `sluice test` must not: 300 windows closed by one reading
// all come out before that reading's own output from a later pipeline.
TEST_CASE("sluice test: 300 windows closed by one reading come out at once, in order",
          "[integration][offline]") {
  const std::string config = kHeader + R"(  per_device:
    from: plant
    window: { type: tumbling, size: 10s, lateness: 0s }
    group_by: [ device ]
    aggregate: { n: count() }
    to: [ out ]
  raw:
    from: plant
    where: "device == 'last'"
    to: [ out ]
sinks:
  out: { type: stdout }
)";
  std::string input;
  for (int d = 0; d < 300; ++d) {
    input += "{\"topic\":\"sensors/s/d" + std::to_string(d) + "\",\"payload\":{\"ts\":1000}}\n";
  }
  input += "{\"topic\":\"sensors/s/last\",\"payload\":{\"ts\":100000}}\n";
  TempDir dir;
  Run run = RunTest(dir, config, input);
  INFO(run.stderr_text);
  REQUIRE(run.exit_code == 0);
  // 300 aggregates, the 'last' reading, then its own window at the end.
  REQUIRE(run.records.size() == 302);
  for (int i = 0; i < 300; ++i) {
    INFO("record " << i << ": " << run.records[i].dump());
    REQUIRE(run.records[i]["pipeline"] == "per_device");
  }
  CHECK(run.records[300]["pipeline"] == "raw");
  CHECK(run.records[301]["pipeline"] == "per_device");
}

TEST_CASE("sluice test: dotted names reach into nested payload objects", "[integration][offline]") {
  const std::string config = kHeader + R"(  per_site:
    from: plant
    window: { type: tumbling, size: 10s, lateness: 0s }
    group_by: [ meta.site ]
    aggregate: { n: count(), top: max(sensor.temp) }
    to: [ out ]
  hot:
    from: plant
    alert: { when: "sensor.temp > 80", key: [ device ] }
    to: [ out ]
  raw:
    from: plant
    where: "sensor.temp > 80"
    to: [ out ]
sinks:
  out: { type: stdout }
)";
  const std::string input =
      R"({"topic":"sensors/s/d1","payload":{"ts":1000,"meta":{"site":"A"},"sensor":{"temp":70}}})" "\n"
      R"({"topic":"sensors/s/d1","payload":{"ts":2000,"meta":{"site":"A"},"sensor":{"temp":85}}})" "\n"
      R"({"topic":"sensors/s/d2","payload":{"ts":3000,"meta":{"site":"B"},"sensor":{"temp":60}}})" "\n";
  TempDir dir;
  Run run = RunTest(dir, config, input);
  INFO(run.stderr_text << run.stdout_text);
  REQUIRE(run.exit_code == 0);
  std::vector<json> alerts, raw, windows;
  for (const json& r : run.records) {
    if (r["pipeline"] == "hot") alerts.push_back(r);
    if (r["pipeline"] == "raw") raw.push_back(r);
    if (r["pipeline"] == "per_site") windows.push_back(r);
  }
  REQUIRE(alerts.size() == 1);
  CHECK(alerts[0]["at"] == 2000);
  CHECK(alerts[0]["value"]["sensor.temp"] == 85);
  REQUIRE(raw.size() == 1);  // the reading as it came: its object, no dotted copy
  CHECK(raw[0]["fields"]["sensor"] == json{{"temp", 85}});
  CHECK_FALSE(raw[0]["fields"].contains("sensor.temp"));
  REQUIRE(windows.size() == 2);
  CHECK(windows[0]["key"] == json{{"meta.site", "A"}});
  CHECK(windows[0]["values"] == json{{"n", 2}, {"top", 85}});
  CHECK(windows[1]["key"] == json{{"meta.site", "B"}});
  CHECK(windows[1]["values"] == json{{"n", 1}, {"top", 60}});
}

TEST_CASE("sluice test: a malformed input line fails with its line number", "[integration][offline]") {
  TempDir dir;
  SECTION("not JSON") {
    Run run = RunTest(dir, kConfig, "{\"topic\":\"sensors/a/b\",\"payload\":{\"ts\":1,\"temp\":1}}\n{oops\n");
    CHECK(run.exit_code == 1);
    CHECK(run.stderr_text.find("in.jsonl:2: expected a JSON object per line") != std::string::npos);
  }
  SECTION("no topic") {
    Run run = RunTest(dir, kConfig, "{\"payload\":{}}\n");
    CHECK(run.exit_code == 1);
    CHECK(run.stderr_text.find("in.jsonl:1: expected a \"topic\" string") != std::string::npos);
  }
  SECTION("topic of no source") {
    Run run = RunTest(dir, kConfig, "{\"topic\":\"other\",\"payload\":{}}\n");
    CHECK(run.exit_code == 1);
    CHECK(run.stderr_text.find("in.jsonl:1: topic 'other' matches no source's topics") != std::string::npos);
  }
}

TEST_CASE("validate reports an expression syntax error at its position", "[integration][offline]") {
  TempDir dir;
  std::string config = kConfig;
  config.replace(config.find("temp > -50 && temp < 150"), 24, "temp > -50 && && temp");
  WriteFile(dir.File("c.yaml"), [&] {
    std::string c = config;
    c.replace(c.find("DATA"), 4, dir.File("data"));
    return c;
  }());
  ChildProcess p({SluiceBinary(), "validate", "-c", dir.File("c.yaml")},
                 ChildOptions{{}, dir.File("out.txt"), dir.File("err.txt")});
  REQUIRE(p.WaitExit(milliseconds(30000)) == 1);
  std::string err = ReadFile(dir.File("err.txt"));
  INFO(err);
  // `where: "temp > -50 && && temp"` is on line 12; the text starts at column 13,
  // the second && at offset 14.
  CHECK(err.find("c.yaml:12:27: pipelines.temp_10s.where:") != std::string::npos);
}
