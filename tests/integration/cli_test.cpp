// The command line as an operator meets it: version, exit codes, --log-level
// and the three log shapes of a running agent.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <csignal>
#include <filesystem>
#include <regex>
#include <sstream>

#include "tests/integration/harness.h"

using namespace sluice::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

struct Result {
  int exit_code;
  std::string out, err;
};

Result RunSluice(const TempDir& dir, std::vector<std::string> args,
                 std::vector<std::pair<std::string, std::string>> env = {}) {
  static int n = 0;
  ++n;
  ChildOptions o;
  o.env = std::move(env);
  o.stdout_path = dir.File("out-" + std::to_string(n));
  o.stderr_path = dir.File("err-" + std::to_string(n));
  args.insert(args.begin(), SluiceBinary());
  ChildProcess p(args, o);
  std::optional<int> code = p.WaitExit(milliseconds(60000));
  REQUIRE(code.has_value());
  return {*code, ReadFile(o.stdout_path), ReadFile(o.stderr_path)};
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::string AgentConfig(const TempDir& dir, const Mosquitto& broker, const std::string& log) {
  return "agent: { id: cli-gw, data_dir: " + dir.File("data") + ", http: off, log: " + log +
         " }\n"
         "sources:\n  plant: { url: " + broker.url() + ", topics: [ \"s/#\" ], qos: 1 }\n"
         "pipelines:\n  raw: { from: plant, to: [ out ] }\n"
         "sinks:\n  out: { type: file, path: " + dir.File("out.jsonl") + " }\n";
}

// Starts the agent, waits for its subscription, stops it with SIGTERM and
// returns its stderr.
std::string RunAgentOnce(const TempDir& dir, Mosquitto& broker, const std::string& log,
                         std::vector<std::string> extra_args = {},
                         std::vector<std::pair<std::string, std::string>> env = {}) {
  WriteFile(dir.File("sluice.yaml"), AgentConfig(dir, broker, log));
  ChildOptions o;
  o.env = std::move(env);
  static int run = 0;
  o.stderr_path = dir.File("agent-" + std::to_string(++run) + ".log");
  std::vector<std::string> args = {SluiceBinary(), "run", "-c", dir.File("sluice.yaml")};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  // Subscribed means started: signals are handled from then on.
  const int subscribed_before = broker.SubscriptionCount("sluice-cli-gw-plant", "s/#");
  ChildProcess agent(args, o);
  REQUIRE(WaitUntil(
      [&] { return broker.SubscriptionCount("sluice-cli-gw-plant", "s/#") > subscribed_before; },
      milliseconds(30000)));
  agent.Signal(SIGTERM);
  REQUIRE(agent.WaitExit(milliseconds(30000)) == 0);
  return ReadFile(o.stderr_path);
}

}  // namespace

TEST_CASE("sluice version names the version, revision, build type and target") {
  TempDir dir;
  Result r = RunSluice(dir, {"version"});
  CHECK(r.exit_code == 0);
  std::vector<std::string> lines = Lines(r.out);
  REQUIRE(lines.size() >= 4);
  CHECK(lines[0].rfind("sluice ", 0) == 0);
  CHECK(lines[0].size() > 7);
  CHECK(r.out.find("revision: ") != std::string::npos);
  CHECK(r.out.find("build type: ") != std::string::npos);
  CHECK(r.out.find("target: ") != std::string::npos);
}

TEST_CASE("usage errors exit 2, input errors exit 1, --help exits 0") {
  TempDir dir;
  CHECK(RunSluice(dir, {}).exit_code == 2);
  CHECK(RunSluice(dir, {"frobnicate"}).exit_code == 2);
  CHECK(RunSluice(dir, {"run", "--no-such-flag"}).exit_code == 2);
  Result help = RunSluice(dir, {"run", "--help"});
  CHECK(help.exit_code == 0);
  CHECK(help.out.find("--log-level") != std::string::npos);
  Result missing = RunSluice(dir, {"validate", "-c", dir.File("nope.yaml")});
  CHECK(missing.exit_code == 1);
  CHECK(missing.err.find("nope.yaml") != std::string::npos);
}

TEST_CASE("validate reports what the sinks would refuse at start, and run refuses it too") {
  TempDir dir;
  const std::string head =
      "agent: { id: cli-gw, data_dir: " + dir.File("data") + ", http: off }\n"
      "sources:\n  plant: { url: tcp://127.0.0.1:1, topics: [ \"s/#\" ] }\n"
      "pipelines:\n  raw: { from: plant, to: [ up, ops ] }\n"
      "sinks:\n";
  // A Kafka sink with one extra property, an HTTP sink with one header.
  auto sinks = [](const std::string& property, const std::string& header) {
    return "  up: { type: kafka, brokers: [ \"127.0.0.1:1\" ], topic: t, properties: { " +
           property + " } }\n  ops: { type: http, url: \"http://127.0.0.1:1/in\", headers: { " +
           header + " } }\n";
  };
  WriteFile(dir.File("bad.yaml"), head + sinks("no.such.property: x", "Content-Length: \"5\""));
  Result r = RunSluice(dir, {"validate", "-c", dir.File("bad.yaml")});
  CHECK(r.exit_code == 1);
  INFO(r.err);
  CHECK(r.err.find("sink 'up'") != std::string::npos);
  CHECK(r.err.find("no.such.property") != std::string::npos);
  CHECK(r.err.find("sink 'ops'") != std::string::npos);
  CHECK(r.err.find("Content-Length") != std::string::npos);
  CHECK(r.err.find("2 errors") != std::string::npos);
  CHECK(r.out.find("OK") == std::string::npos);

  // Valid property and header: OK, and nothing was built (no data dir).
  WriteFile(dir.File("good.yaml"),
            head + sinks("queue.buffering.max.kbytes: \"2048\"", "X-Token: v"));
  Result ok = RunSluice(dir, {"validate", "-c", dir.File("good.yaml")});
  CHECK(ok.exit_code == 0);
  CHECK(ok.out.find("OK") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir.File("data")));

  // What validate refuses, run refuses too (at start, before any reading).
  Result run = RunSluice(dir, {"run", "-c", dir.File("bad.yaml")});
  CHECK(run.exit_code == 1);
  CHECK(run.err.find("no.such.property") != std::string::npos);
}

TEST_CASE("a bad --log-level is a usage error that names the accepted levels") {
  TempDir dir;
  Mosquitto broker;
  broker.Start();
  WriteFile(dir.File("sluice.yaml"), AgentConfig(dir, broker, "{ level: info }"));
  Result r = RunSluice(dir, {"run", "-c", dir.File("sluice.yaml"), "--log-level", "loud"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("debug, info, warn or error") != std::string::npos);
  CHECK(r.err.find("loud") != std::string::npos);
}

TEST_CASE("log shapes: text with a timestamp, JSON objects, journal priorities without time") {
  TempDir dir;
  Mosquitto broker;
  broker.Start();

  SECTION("text") {
    std::string log = RunAgentOnce(dir, broker, "{ level: info, format: text }");
    std::vector<std::string> lines = Lines(log);
    REQUIRE(lines.size() >= 2);
    for (const std::string& line : lines) {
      INFO(line);
      CHECK(line.size() > 25);
      CHECK(line[4] == '-');   // 2026-11-26T...
      CHECK(line[10] == 'T');
    }
    CHECK(log.find("info ") != std::string::npos);
  }
  SECTION("json") {
    std::string log = RunAgentOnce(dir, broker, "{ level: info, format: json }");
    std::vector<std::string> lines = Lines(log);
    REQUIRE(lines.size() >= 2);
    for (const std::string& line : lines) {
      INFO(line);
      json j = json::parse(line, nullptr, false);
      REQUIRE(j.is_object());
      CHECK(j["level"].is_string());
      CHECK(j["msg"].is_string());
      CHECK(j["time"].is_string());
    }
  }
  SECTION("journal, when systemd says stderr is the journal") {
    std::string log = RunAgentOnce(dir, broker, "{ level: info, format: text }", {},
                                   {{"JOURNAL_STREAM", "8:12345"}});
    std::vector<std::string> lines = Lines(log);
    REQUIRE(lines.size() >= 2);
    for (const std::string& line : lines) {
      INFO(line);
      REQUIRE(line.size() > 3);
      CHECK(line[0] == '<');
      CHECK(line[2] == '>');
      CHECK(std::string("3456").find(line[1]) != std::string::npos);  // err warning notice info
      // The journal stamps the time itself: no timestamp of our own.
      CHECK_FALSE(std::regex_search(line, std::regex(R"(^<\d>\d{4}-\d\d-\d\dT)")));
    }
  }
  SECTION("--log-level overrides the config: debug lines appear, and warn hides info") {
    std::string debug = RunAgentOnce(dir, broker, "{ level: warn }", {"--log-level", "debug"});
    CHECK(debug.find("debug") != std::string::npos);
    std::string quiet = RunAgentOnce(dir, broker, "{ level: debug }", {"--log-level", "warn"});
    CHECK(quiet.find(" info ") == std::string::npos);
    CHECK(quiet.find(" debug ") == std::string::npos);
  }
}

TEST_CASE("an agent maps OpenSSL and librdkafka only when it needs them") {
  // Both are loaded when first needed, for the idle footprint: what maps
  // them without need is a regression of that.
  Mosquitto broker;
  broker.Start();
  TempDir dir;
  auto maps_of = [&](const std::string& pipelines, const std::string& sinks) {
    WriteFile(dir.File("agent.yaml"),
              "agent: { id: lazy, data_dir: " + dir.File("data") + ", http: off }\n"
              "sources:\n"
              "  plant: { url: " + broker.url() + ", topics: [ \"sensors/#\" ] }\n"
              "pipelines:\n"
              "  raw: { from: plant, to: [ out ] }\n" + pipelines +
              "sinks:\n"
              "  out: { type: file, path: " + dir.File("out.jsonl") + " }\n" + sinks);
    std::filesystem::remove(dir.File("agent.log"));
    ChildProcess agent({SluiceBinary(), "run", "-c", dir.File("agent.yaml")},
                       ChildOptions{{}, "", dir.File("agent.log")});
    REQUIRE(WaitUntil([&] { return ReadFile(dir.File("agent.log")).find("subscribed") != std::string::npos; },
                      milliseconds(30000)));
    std::string maps = ReadFile("/proc/" + std::to_string(agent.pid()) + "/maps");
    CHECK(agent.Stop(SIGTERM, milliseconds(15000)) == 0);
    return maps;
  };

  const std::string plain = maps_of("", "");
  REQUIRE(plain.find("libsqlite3") != std::string::npos);  // the maps were read
  CHECK(plain.find("libssl") == std::string::npos);
  CHECK(plain.find("libcrypto") == std::string::npos);
  CHECK(plain.find("librdkafka") == std::string::npos);
  CHECK(plain.find("paho") == std::string::npos);

  // No broker needed: the producer is made at start, and connects later.
  const std::string with_kafka = maps_of(
      "  up: { from: plant, to: [ cloud ] }\n",
      "  cloud: { type: kafka, brokers: [ \"127.0.0.1:" + std::to_string(FreeLoopbackPort()) +
      "\" ], topic: telemetry }\n");
  CHECK(with_kafka.find("librdkafka") != std::string::npos);
}
