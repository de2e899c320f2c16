// The `sluice` binary against a real mosquitto: readings in, file sink out.
//
// Each test has its own broker on a free port and its own directory. Waits
// are polls with generous deadlines: a slow machine makes a test slower,
// never red. The agent is told when it is subscribed by the broker's log
// (Mosquitto::SubscriptionCount), not guessed with sleeps.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/integration/harness.h"

namespace sluice::testing {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

constexpr milliseconds kPatience = 120s;  // for anything the agent has to do
constexpr const char* kFilter = "sensors/+/+";

std::string TopicFor(int64_t n) {
  return "sensors/site-0" + std::to_string(n % 3 + 1) + "/dev-" + std::to_string(n % 7 + 1);
}

struct ConfigOptions {
  std::string client_id;
  std::string session = "clean";
  int qos = 1;
};

// The agent's output, read as it grows.
class SinkReader {
 public:
  explicit SinkReader(const std::string& path) : tail_(path) {}

  // Reads what was added; every complete line must be a JSON object.
  void Poll() {
    std::vector<std::string> lines;
    tail_.ReadNew(&lines);
    for (const std::string& line : lines) {
      json record = json::parse(line, nullptr, /*allow_exceptions=*/false);
      INFO("sink line: " << line);
      REQUIRE(record.is_object());
      const json& n = record["fields"]["n"];
      if (n.is_number_integer()) ++seen_[n.get<int64_t>()];
      records_.push_back(std::move(record));
    }
  }

  const std::vector<json>& records() const { return records_; }
  // How many records carried fields.n == n.
  int Count(int64_t n) const {
    auto it = seen_.find(n);
    return it == seen_.end() ? 0 : it->second;
  }
  bool HasAll(const std::vector<int64_t>& ns) const {
    for (int64_t n : ns) {
      if (Count(n) == 0) return false;
    }
    return true;
  }
  std::vector<int64_t> Missing(const std::vector<int64_t>& ns) const {
    std::vector<int64_t> missing;
    for (int64_t n : ns) {
      if (Count(n) == 0) missing.push_back(n);
    }
    return missing;
  }

 private:
  LineTail tail_;
  std::vector<json> records_;
  std::map<int64_t, int> seen_;
};

std::vector<int64_t> Range(int64_t first, int64_t count) {
  std::vector<int64_t> v;
  for (int64_t n = first; n < first + count; ++n) v.push_back(n);
  return v;
}

std::string Preview(const std::vector<int64_t>& ns) {
  std::string s = std::to_string(ns.size()) + " missing:";
  for (size_t i = 0; i < ns.size() && i < 20; ++i) s += " " + std::to_string(ns[i]);
  return s;
}

constexpr const char* kConfigTemplate = R"(agent:
  id: gw-test
  data_dir: @DATA_DIR@
  http: off
  log: { level: debug }
  shutdown_grace: 5s

sources:
  plant:
    type: mqtt
    url: @URL@
    client_id: @CLIENT_ID@
    topics: [ "@FILTER@" ]
    qos: @QOS@
    session: @SESSION@
    topic_fields: "sensors/{site}/{device}"
    format: json
    time: { field: ts, unit: ms }

pipelines:
  raw:
    from: plant
    to: [ archive ]

sinks:
  archive:
    type: file
    path: @SINK_PATH@
)";

void Fill(std::string* text, std::string_view placeholder, const std::string& value) {
  for (size_t at = text->find(placeholder); at != std::string::npos;
       at = text->find(placeholder, at + value.size())) {
    text->replace(at, placeholder.size(), value);
  }
}

// One broker, one agent, one directory: the passthrough pipeline `raw` from
// source `plant` to the file sink `archive`.
class Rig {
 public:
  explicit Rig(MosquittoOptions broker_options = {}) : broker_(broker_options) { broker_.Start(); }

  Mosquitto& broker() { return broker_; }
  const TempDir& dir() const { return dir_; }
  std::string sink_path() const { return dir_.File("out.jsonl"); }
  std::string data_dir() const { return dir_.File("data"); }
  std::string config_path() const { return dir_.File("sluice.yaml"); }
  std::string client_id() const { return options_.client_id; }
  std::string AgentLog() const { return ReadFile(dir_.File("agent.log")); }

  void WriteConfig(ConfigOptions options) {
    options_ = std::move(options);
    if (options_.client_id.empty()) {
      options_.client_id = "sluice-it-" + std::to_string(broker_.port());
    }
    std::string text = kConfigTemplate;
    Fill(&text, "@DATA_DIR@", dir_.File("data"));
    Fill(&text, "@URL@", broker_.url());
    Fill(&text, "@CLIENT_ID@", options_.client_id);
    Fill(&text, "@FILTER@", kFilter);
    Fill(&text, "@QOS@", std::to_string(options_.qos));
    Fill(&text, "@SESSION@", options_.session);
    Fill(&text, "@SINK_PATH@", sink_path());
    WriteFile(config_path(), text);
  }

  // Starts `sluice run` and waits until it has subscribed (once more than
  // before, so this also works after a restart).
  void StartAgent() {
    const int before = broker_.SubscriptionCount(options_.client_id, kFilter);
    ChildOptions logs;
    logs.stdout_path = dir_.File("agent.log");
    logs.stderr_path = dir_.File("agent.log");
    agent_ = std::make_unique<ChildProcess>(
        std::vector<std::string>{SluiceBinary(), "run", "-c", config_path()}, logs);
    WaitForSubscription(before);
  }

  void WaitForSubscription(int more_than) {
    bool subscribed = WaitUntil(
        [&] {
          return broker_.SubscriptionCount(options_.client_id, kFilter) > more_than ||
                 !agent_->Running();
        },
        kPatience);
    INFO("agent log:\n" << AgentLog() << "\nbroker log:\n" << broker_.Log());
    REQUIRE(agent_->Running());
    REQUIRE(subscribed);
  }

  // Runs `sluice buffer <args> --data-dir <data>` to its end.
  struct CliRun {
    std::optional<int> exit_code;  // nullopt: still running after 60 s (then killed)
    std::vector<std::string> out;  // stdout lines
    std::string err;
  };
  CliRun Buffer(std::vector<std::string> args) {
    const std::string out_path = dir_.File("buffer.out");
    const std::string err_path = dir_.File("buffer.err");
    WriteFile(out_path, "");  // the child appends
    WriteFile(err_path, "");
    ChildOptions io;
    io.stdout_path = out_path;
    io.stderr_path = err_path;
    args.insert(args.begin(), {SluiceBinary(), "buffer"});
    args.insert(args.end(), {"--data-dir", data_dir()});
    ChildProcess cli(args, io);
    CliRun run;
    run.exit_code = cli.WaitExit(60s);
    run.out = ReadLines(out_path);
    run.err = ReadFile(err_path);
    return run;
  }
  // The dead letters as `sluice buffer peek --dead-letters` prints them (the
  // store opened read-only: the agent may be running). Fails the test when
  // the command does.
  std::vector<std::string> PeekDeadLetters() {
    CliRun run = Buffer({"peek", "--dead-letters", "--limit", "100000"});
    INFO("sluice buffer peek --dead-letters: " << run.err);
    REQUIRE(run.exit_code == 0);
    return run.out;
  }

  // SIGTERM; the exit code (nullopt if it did not exit within `timeout`).
  void SignalAgent(int sig) { agent_->Signal(sig); }
  std::optional<int> StopAgent(int sig = SIGTERM, milliseconds timeout = 30s) {
    return agent_->Stop(sig, timeout);
  }

 private:
  // In this order so that the agent is killed first, then the broker, then
  // the directory is removed.
  TempDir dir_;
  Mosquitto broker_;
  ConfigOptions options_;
  std::unique_ptr<ChildProcess> agent_;
};

TEST_CASE("agent: 10,000 QoS 1 readings arrive exactly once, shaped as documented",
          "[integration][mqtt]") {
  constexpr int64_t kCount = 10000;
  // Mosquitto's default queue per client (1000 past the 20 in flight) drops
  // the rest of a burst silently; an agent that acks after commit needs more.
  MosquittoOptions broker_options;
  broker_options.max_queued_messages = 2 * kCount;
  Rig rig(broker_options);
  rig.WriteConfig({});
  rig.StartAgent();

  std::vector<TestMessage> messages;
  for (int64_t n = 0; n < kCount; ++n)
    messages.push_back({TopicFor(n), TestPublisher::NumberedPayload(n)});
  TestPublisher pub(rig.broker().url());
  pub.PublishAll(messages, 1);

  SinkReader sink(rig.sink_path());
  const auto all = Range(0, kCount);
  bool arrived = WaitUntil(
      [&] {
        sink.Poll();
        return sink.HasAll(all);
      },
      kPatience);
  INFO(Preview(sink.Missing(all)) << "\nagent log:\n" << rig.AgentLog());
  CHECK(rig.broker().Log().find("being dropped") == std::string::npos);
  REQUIRE(arrived);

  // Stopping flushes everything the agent took: nothing more may appear.
  REQUIRE(rig.StopAgent() == 0);
  sink.Poll();
  CHECK(sink.records().size() == static_cast<size_t>(kCount));

  std::set<std::string> ids;
  for (const json& r : sink.records()) {
    INFO(r.dump());
    const int64_t n = r["fields"]["n"].get<int64_t>();
    CHECK(sink.Count(n) == 1);
    CHECK(r["kind"] == "reading");
    CHECK(r["pipeline"] == "raw");
    CHECK(r["agent"] == "gw-test");
    CHECK(r["topic"] == TopicFor(n));
    CHECK(r["time"] == TestPublisher::NumberedTime(n));
    REQUIRE(r["id"].is_string());
    CHECK_FALSE(r["id"].get<std::string>().empty());
    ids.insert(r["id"].get<std::string>());
    const json& f = r["fields"];
    CHECK(f["ts"] == TestPublisher::NumberedTime(n));
    CHECK(f["temp"].is_number());
    CHECK(f["site"] == "site-0" + std::to_string(n % 3 + 1));
    CHECK(f["device"] == "dev-" + std::to_string(n % 7 + 1));
  }
  CHECK(ids.size() == static_cast<size_t>(kCount));
}

TEST_CASE("agent: reconnects and resubscribes when the broker restarts without its sessions",
          "[integration][mqtt]") {
  Rig rig;  // no persistence: the restarted broker knows no session
  rig.WriteConfig({.client_id = "", .session = "persistent", .qos = 1});
  rig.StartAgent();
  SinkReader sink(rig.sink_path());

  // A stream at ~200 readings/s from another thread. While the broker is
  // away the publisher fails and waits; it reconnects once the agent is
  // subscribed again, because only then can a broker that lost every session
  // deliver what it is given.
  std::atomic<bool> stop{false};
  std::atomic<bool> agent_back{false};
  std::atomic<int64_t> sent_before{0};
  std::mutex mu;
  std::vector<int64_t> acked_after;  // acknowledged by the restarted broker; guarded by mu
  std::string stream_error;          // guarded by mu
  TestPublisher pub(rig.broker().url());
  std::thread stream([&] {
    int64_t n = 0;
    while (!stop) {
      if (!pub.Connected()) {
        if (!agent_back) {
          std::this_thread::sleep_for(20ms);
          continue;
        }
        try {
          pub.Reconnect(kPatience);
        } catch (const std::exception& e) {
          std::lock_guard<std::mutex> lock(mu);
          stream_error = e.what();
          return;
        }
      }
      const bool after = agent_back;
      try {
        pub.Publish(TopicFor(n), TestPublisher::NumberedPayload(n), 1);
        if (after) {
          std::lock_guard<std::mutex> lock(mu);
          acked_after.push_back(n);
        } else {
          sent_before = n + 1;
        }
      } catch (const std::exception&) {
        // The broker went away under this one: it may or may not arrive.
      }
      ++n;
      std::this_thread::sleep_for(5ms);
    }
  });
  // A failed REQUIRE below must not leave a joinable thread (std::terminate).
  struct StopAndJoin {
    std::atomic<bool>& stop;
    std::thread& thread;
    ~StopAndJoin() {
      stop = true;
      if (thread.joinable()) thread.join();
    }
  } stop_and_join{stop, stream};
  auto stream_done = [&] {
    std::lock_guard<std::mutex> lock(mu);
    return acked_after.size() >= 1000 || !stream_error.empty();
  };

  // Mid-stream: once readings are flowing through the agent.
  bool flowing = WaitUntil(
      [&] {
        sink.Poll();
        return sink.records().size() >= 300;
      },
      kPatience);
  INFO("agent log:\n" << rig.AgentLog());
  REQUIRE(flowing);
  const int subscriptions = rig.broker().SubscriptionCount(rig.client_id(), kFilter);
  rig.broker().Stop();
  std::this_thread::sleep_for(5s);  // the outage itself, not a wait for a condition
  rig.broker().Start();
  rig.WaitForSubscription(subscriptions);
  agent_back = true;

  bool streamed = WaitUntil(stream_done, kPatience);
  stop = true;
  stream.join();  // from here on the stream's results are ours alone
  REQUIRE(stream_error.empty());
  REQUIRE(streamed);
  CHECK(sent_before > 0);

  bool arrived = WaitUntil(
      [&] {
        sink.Poll();
        return sink.HasAll(acked_after);
      },
      kPatience);
  INFO(Preview(sink.Missing(acked_after)) << "\nagent log:\n" << rig.AgentLog());
  CHECK(arrived);
  CHECK(rig.StopAgent() == 0);
}

TEST_CASE("agent: a persistent session gets what was published while the agent was down",
          "[integration][mqtt]") {
  MosquittoOptions broker_options;
  broker_options.persistence = true;
  Rig rig(broker_options);
  rig.WriteConfig({.client_id = "sluice-it-persistent", .session = "persistent", .qos = 1});
  rig.StartAgent();
  REQUIRE(rig.StopAgent() == 0);

  {
    TestPublisher pub(rig.broker().url());
    pub.PublishNumbered("sensors/site-01/dev-1", 0, 500, 1);
  }

  rig.StartAgent();
  SinkReader sink(rig.sink_path());
  const auto all = Range(0, 500);
  bool arrived = WaitUntil(
      [&] {
        sink.Poll();
        return sink.HasAll(all);
      },
      kPatience);
  INFO(Preview(sink.Missing(all)) << "\nagent log:\n" << rig.AgentLog());
  CHECK(arrived);
  CHECK(rig.StopAgent() == 0);
}

TEST_CASE("agent: the broker's retained copy is not taken again at each subscribe",
          "[integration][mqtt]") {
  Rig rig;
  rig.WriteConfig({.client_id = "", .session = "clean", .qos = 1});
  const std::string topic = "sensors/site-01/dev-1";
  {  // published before the agent ever subscribed: old news by then
    TestPublisher pub(rig.broker().url());
    pub.Publish(topic, TestPublisher::NumberedPayload(0), 1, /*retain=*/true);
  }
  SinkReader sink(rig.sink_path());
  auto publish_and_wait = [&](int64_t first, int64_t count) {
    TestPublisher pub(rig.broker().url());
    // Devices that publish their state retained: live, the flag is cleared.
    for (int64_t n = first; n < first + count; ++n) {
      pub.Publish(topic, TestPublisher::NumberedPayload(n), 1, /*retain=*/true);
    }
    const auto want = Range(first, count);
    REQUIRE(WaitUntil(
        [&] {
          sink.Poll();
          return sink.HasAll(want);
        },
        kPatience));
  };
  rig.StartAgent();
  publish_and_wait(1, 5);
  // Each start (clean session) subscribes anew and the broker replays the
  // retained reading 5; reading 6 comes after that replay.
  REQUIRE(rig.StopAgent() == 0);
  rig.StartAgent();
  publish_and_wait(6, 1);
  REQUIRE(rig.StopAgent() == 0);
  sink.Poll();
  INFO("agent log:\n" << rig.AgentLog());
  CHECK(sink.Count(0) == 0);
  for (int64_t n = 1; n <= 6; ++n) {
    CAPTURE(n);
    CHECK(sink.Count(n) == 1);
  }
  CHECK(sink.records().size() == 6);
}

TEST_CASE("agent: a source without a time field takes repeated identical payloads as new readings",
          "[integration][mqtt]") {
  Rig rig;
  rig.WriteConfig({});
  // Event time = arrival: the same bytes twice are two readings (a stable
  // sensor), not a redelivery.
  std::string config = ReadFile(rig.config_path());
  const std::string time_line = "    time: { field: ts, unit: ms }\n";
  REQUIRE(config.find(time_line) != std::string::npos);
  config.erase(config.find(time_line), time_line.size());
  // A stateful pipeline on the source: its readings are journaled, and
  // checked for repeats.
  const std::string pipelines = "pipelines:\n";
  config.insert(config.find(pipelines) + pipelines.size(),
                "  hot:\n    from: plant\n    alert: { when: \"temp > 100\" }\n    to: [ archive ]\n");
  WriteFile(rig.config_path(), config);
  rig.StartAgent();
  TestPublisher pub(rig.broker().url());
  std::vector<TestMessage> same(300, TestMessage{"sensors/site-01/dev-1", "{\"temp\":21.5}"});
  pub.PublishAll(same, 1);
  SinkReader sink(rig.sink_path());
  CHECK(WaitUntil(
      [&] {
        sink.Poll();
        return sink.records().size() >= 300;
      },
      kPatience));
  REQUIRE(rig.StopAgent() == 0);
  sink.Poll();
  INFO("agent log:\n" << rig.AgentLog());
  CHECK(sink.records().size() == 300);
}

TEST_CASE("agent: malformed payloads go to the dead-letter table, good ones flow on",
          "[integration][mqtt]") {
  Rig rig;
  rig.WriteConfig({});
  rig.StartAgent();

  const std::vector<std::string> bad_kinds = {
      "not json at all", "[1,2,3]",
      R"({"n":-1,"temp":21.5})",   // no time field
      R"({"n":-2,"ts":17000000)",  // truncated
  };
  std::vector<TestMessage> messages;
  std::vector<int64_t> good;
  std::multiset<std::string> bad;
  int64_t n = 0;
  for (int round = 0; round < 5; ++round) {
    for (const std::string& b : bad_kinds) {
      messages.push_back({TopicFor(n), TestPublisher::NumberedPayload(n)});
      good.push_back(n++);
      std::string payload =
          b + (b.front() == '{' || b.front() == '[' ? "" : " #" + std::to_string(round));
      messages.push_back({"sensors/site-09/dev-bad", payload});
      bad.insert(payload);
    }
  }
  messages.push_back({TopicFor(n), TestPublisher::NumberedPayload(n)});
  good.push_back(n++);
  TestPublisher pub(rig.broker().url());
  pub.PublishAll(messages, 1);

  SinkReader sink(rig.sink_path());
  std::vector<std::string> letters;
  bool done = WaitUntil(
      [&] {
        sink.Poll();
        // Asks the CLI only once the good ones are through: a process each time.
        if (sink.HasAll(good)) letters = rig.PeekDeadLetters();
        return sink.HasAll(good) && letters.size() >= bad.size();
      },
      kPatience);
  INFO(Preview(sink.Missing(good)) << "; dead letters: " << letters.size() << "\nagent log:\n"
                                   << rig.AgentLog());
  REQUIRE(done);
  REQUIRE(rig.StopAgent() == 0);
  sink.Poll();
  letters = rig.PeekDeadLetters();

  CHECK(sink.records().size() == good.size());  // nothing bad slipped into the sink
  std::multiset<std::string> dead_payloads;
  for (const std::string& line : letters) {
    json letter = json::parse(line, nullptr, false);
    INFO(line);
    REQUIRE(letter.is_object());
    CHECK(letter["origin"] == "source");
    CHECK(letter["source"] == "plant");
    CHECK(letter["topic"] == "sensors/site-09/dev-bad");
    REQUIRE(letter["reason"].is_string());
    CHECK_FALSE(letter["reason"].get<std::string>().empty());
    REQUIRE(letter["payload"].is_string());
    dead_payloads.insert(letter["payload"].get<std::string>());
  }
  CHECK(dead_payloads == bad);
}

TEST_CASE("buffer: peek --dead-letters shows bad payloads with their reasons while the agent runs, "
          "purge --dead-letters empties them once it stopped",
          "[integration][mqtt][cli]") {
  Rig rig;
  rig.WriteConfig({});
  rig.StartAgent();
  const std::string binary("\xff\xfe\x00garbage", 10);
  TestPublisher pub(rig.broker().url());
  pub.Publish("sensors/site-09/dev-bad", "this is not JSON", 1);
  pub.Publish("sensors/site-09/dev-bin", binary, 1);

  std::vector<std::string> letters;
  bool seen = WaitUntil(
      [&] {
        letters = rig.PeekDeadLetters();  // read-only, next to the running agent
        return letters.size() >= 2;
      },
      kPatience);
  INFO("agent log:\n" << rig.AgentLog());
  REQUIRE(seen);
  REQUIRE(letters.size() == 2);
  json text = json::parse(letters[0], nullptr, false);
  INFO(letters[0]);
  REQUIRE(text.is_object());
  CHECK(text["origin"] == "source");
  CHECK(text["source"] == "plant");
  CHECK(text["topic"] == "sensors/site-09/dev-bad");
  CHECK(text["payload"] == "this is not JSON");
  CHECK_FALSE(text.contains("payload_encoding"));
  REQUIRE(text["reason"].is_string());
  CHECK(text["reason"].get<std::string>().find("JSON") != std::string::npos);
  REQUIRE(text["time"].is_number_integer());
  CHECK(text["time"].get<int64_t>() > 0);
  json bin = json::parse(letters[1], nullptr, false);
  INFO(letters[1]);
  REQUIRE(bin.is_object());
  CHECK(bin["topic"] == "sensors/site-09/dev-bin");
  CHECK(bin["payload"] == "//4AZ2FyYmFnZQ==");  // base64 of the 10 bytes
  CHECK(bin["payload_encoding"] == "base64");

  auto limited = rig.Buffer({"peek", "--dead-letters", "--limit", "1"});
  CHECK(limited.exit_code == 0);
  CHECK(limited.out == std::vector<std::string>{letters[0]});  // oldest first
  auto stats = rig.Buffer({"stats"});
  CHECK(stats.exit_code == 0);
  std::string stats_text;
  for (const std::string& line : stats.out) stats_text += line + "\n";
  INFO(stats_text << stats.err);
  CHECK(stats_text.find("dead letters: 2 kept") != std::string::npos);
  CHECK(stats_text.find("2 in all, 0 dropped by the cap, 0 purged") != std::string::npos);

  // Purging needs the agent stopped: the store's writer lock refuses it.
  auto refused = rig.Buffer({"purge", "--dead-letters"});
  CHECK(refused.exit_code == 1);
  CHECK(refused.err.find("in use") != std::string::npos);
  CHECK(rig.PeekDeadLetters().size() == 2);
  auto usage = rig.Buffer({"purge", "--dead-letters", "--sink", "archive"});
  CHECK(usage.exit_code == 2);

  REQUIRE(rig.StopAgent() == 0);
  auto purged = rig.Buffer({"purge", "--dead-letters"});
  INFO(purged.err);
  CHECK(purged.exit_code == 0);
  CHECK(purged.out == std::vector<std::string>{"purged 2 dead letter(s)"});
  CHECK(rig.PeekDeadLetters().empty());
  stats = rig.Buffer({"stats"});
  stats_text.clear();
  for (const std::string& line : stats.out) stats_text += line + "\n";
  CHECK(stats_text.find("dead letters: 0 kept (0 bytes); 2 in all, 0 dropped by the cap, 2 purged") !=
        std::string::npos);
}

TEST_CASE("validate: a typo in a key is reported with its position and a suggestion",
          "[integration][cli]") {
  TempDir dir;
  const std::string path = dir.File("typo.yaml");
  WriteFile(path, R"(agent:
  id: gw-test
  http: off
sources:
  plant:
    type: mqtt
    url: tcp://127.0.0.1:1883
    topcs: [ "sensors/+/+" ]
pipelines:
  raw:
    from: plant
    to: [ console ]
sinks:
  console:
    type: stdout
)");
  ChildOptions out;
  out.stdout_path = dir.File("out.txt");
  out.stderr_path = dir.File("err.txt");
  ChildProcess validate({SluiceBinary(), "validate", "-c", path}, out);
  REQUIRE(validate.WaitExit(kPatience) == 1);
  const std::string err = ReadFile(dir.File("err.txt"));
  INFO("stderr:\n" << err);
  CHECK(err.find(path) != std::string::npos);
  CHECK(err.find(":8:5:") != std::string::npos);  // the line and column of `topcs`
  CHECK(err.find("did you mean 'topics'") != std::string::npos);

  SECTION("the corrected file is OK") {
    std::string fixed = ReadFile(path);
    fixed.replace(fixed.find("topcs"), 5, "topics");
    WriteFile(path, fixed);
    ChildProcess again({SluiceBinary(), "validate", "-c", path}, out);
    REQUIRE(again.WaitExit(kPatience) == 0);
    CHECK(ReadFile(dir.File("out.txt")).find("OK") != std::string::npos);
  }
  SECTION("a usage error exits 2") {
    ChildProcess usage({SluiceBinary(), "validate", "--no-such-flag"}, out);
    CHECK(usage.WaitExit(kPatience) == 2);
  }
}

TEST_CASE("agent: a client id another client takes backs off instead of reconnecting several "
          "times a second", "[integration][mqtt]") {
  Rig rig;
  rig.WriteConfig({.client_id = "", .session = "clean", .qos = 1});
  rig.StartAgent();
  // A second agent with the same client id: the broker drops whichever
  // connected first, each time the other connects.
  std::string second = ReadFile(rig.config_path());
  Fill(&second, rig.data_dir(), rig.dir().File("data-2"));
  Fill(&second, rig.sink_path(), rig.dir().File("out-2.jsonl"));
  WriteFile(rig.dir().File("second.yaml"), second);
  ChildOptions logs;
  logs.stderr_path = rig.dir().File("second.log");
  ChildProcess other({SluiceBinary(), "run", "-c", rig.dir().File("second.yaml")}, logs);
  std::this_thread::sleep_for(8s);
  const std::string log = rig.AgentLog();
  INFO("agent log:\n" << log << "\nsecond agent's log:\n" << ReadFile(rig.dir().File("second.log")));
  size_t connects = 0;
  for (size_t at = log.find("connected to"); at != std::string::npos; at = log.find("connected to", at + 1)) {
    ++connects;
  }
  // Without backoff the two took turns ~13 times a second (~100 in 8 s);
  // with it the waits double from 100 ms: a handful.
  CHECK(connects >= 2);
  CHECK(connects <= 20);
  CHECK(log.find("is another client connected with client id '" + rig.client_id() + "'?") !=
        std::string::npos);
  other.Stop(SIGTERM, 30s);
}

TEST_CASE("agent: SIGTERM and SIGINT stop it with exit code 0 within seconds",
          "[integration][mqtt]") {
  const int sig = GENERATE(SIGTERM, SIGINT);
  Rig rig;
  rig.WriteConfig({});
  rig.StartAgent();
  {
    TestPublisher pub(rig.broker().url());
    pub.PublishNumbered("sensors/site-01/dev-1", 0, 100, 1);
  }
  const auto start = std::chrono::steady_clock::now();
  // An impatient operator signals twice: still a clean stop.
  const bool twice = GENERATE(false, true);
  if (twice) {
    rig.SignalAgent(sig);
    std::this_thread::sleep_for(50ms);  // it is stopping when the second comes
  }
  std::optional<int> code = rig.StopAgent(sig, 30s);
  const auto took = std::chrono::steady_clock::now() - start;
  INFO("agent log:\n" << rig.AgentLog());
  REQUIRE(code.has_value());
  CHECK(*code == 0);
  // Nothing is left to flush here: well within shutdown_grace (5 s).
  CHECK(took < 10s);

  SinkReader sink(rig.sink_path());
  sink.Poll();
  CHECK(sink.HasAll(Range(0, 100)));
}

TEST_CASE("simulate: seeded readings go through the agent", "[integration][simulate]") {
  Rig rig;
  rig.WriteConfig({});
  rig.StartAgent();

  ChildOptions out;
  out.stdout_path = rig.dir().File("sim.out");
  out.stderr_path = rig.dir().File("sim.err");
  ChildProcess sim(
      {SluiceBinary(), "simulate", "--url", rig.broker().url(), "--devices", "5", "--rate", "0",
       "--count", "300", "--seed", "7", "--start-ms", "1700000000000", "--anomaly-rate", "0.05"},
      out);
  REQUIRE(sim.WaitExit(kPatience) == 0);
  const std::string summary = ReadFile(rig.dir().File("sim.out"));
  INFO("simulate stdout: " << summary << "stderr: " << ReadFile(rig.dir().File("sim.err")));
  CHECK(summary.find("published 300 readings in ") == 0);
  CHECK(summary.find("acknowledged 300") != std::string::npos);

  SinkReader sink(rig.sink_path());
  bool arrived = WaitUntil(
      [&] {
        sink.Poll();
        return sink.records().size() >= 300;
      },
      kPatience);
  INFO("agent log:\n" << rig.AgentLog());
  REQUIRE(arrived);
  std::set<std::string> devices;
  for (const json& r : sink.records()) {
    INFO(r.dump());
    const json& f = r["fields"];
    CHECK(r["time"] == f["ts"]);
    CHECK(f["ts"].get<int64_t>() >= 1700000000000);
    CHECK(f["temp"].is_number());
    CHECK(f["hum"].is_number());
    CHECK(f["vib"].is_number());
    CHECK(f["site"] == "site-01");
    devices.insert(f["device"].get<std::string>());
  }
  CHECK(devices ==
        std::set<std::string>{"dev-0001", "dev-0002", "dev-0003", "dev-0004", "dev-0005"});
  CHECK(rig.StopAgent() == 0);
}

TEST_CASE("agent: subscriptions at QoS 0 and QoS 2 deliver every reading", "[integration][mqtt]") {
  for (int qos : {0, 2}) {
    INFO("qos " << qos);
    constexpr int64_t kCount = 500;
    Rig rig;
    ConfigOptions options;
    options.qos = qos;
    rig.WriteConfig(options);
    rig.StartAgent();
    std::vector<TestMessage> messages;
    for (int64_t n = 0; n < kCount; ++n)
      messages.push_back({TopicFor(n), TestPublisher::NumberedPayload(n)});
    TestPublisher pub(rig.broker().url());
    pub.PublishAll(messages, qos);
    SinkReader sink(rig.sink_path());
    const auto all = Range(0, kCount);
    bool arrived = WaitUntil(
        [&] {
          sink.Poll();
          return sink.HasAll(all);
        },
        kPatience);
    INFO(Preview(sink.Missing(all)) << "\nagent log:\n" << rig.AgentLog());
    REQUIRE(arrived);
    REQUIRE(rig.StopAgent() == 0);
    sink.Poll();
    CHECK(sink.records().size() == static_cast<size_t>(kCount));
  }
}

}  // namespace
}  // namespace sluice::testing
