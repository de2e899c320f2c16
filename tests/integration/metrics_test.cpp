// The metrics and health endpoint of the real binary: /metrics checked by a
// strict parser of the Prometheus text format (0.0.4) and against what the
// test sent; /healthz; /readyz following the broker; /status and `sluice
// status`; bad clients that do not stop it serving; a port that is taken.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "tests/integration/harness.h"

using namespace sluice::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

// ------------------------------------------------------------- a raw client

// A TCP connection to 127.0.0.1:port; closed by the destructor.
class RawClient {
 public:
  explicit RawClient(int port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port));
    connected_ = ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  }
  ~RawClient() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool connected() const { return connected_; }

  // Sends what it can within `timeout` (a server that stopped reading makes
  // the rest fail); true when everything went.
  bool Send(std::string_view data, milliseconds timeout = milliseconds(10000)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!data.empty()) {
      pollfd p{fd_, POLLOUT, 0};
      auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) return false;
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Everything the server sends until it closes or `timeout` passes;
  // nullopt on the timeout.
  std::optional<std::string> ReadToClose(milliseconds timeout) {
    std::string out;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      pollfd p{fd_, POLLIN, 0};
      auto left = std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0 || ::poll(&p, 1, static_cast<int>(left.count())) != 1) {
        return std::nullopt;
      }
      char buf[65536];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n == 0) return out;
      if (n < 0) {
        if (errno == EINTR || errno == EAGAIN) continue;
        return out;  // reset by the server: what came before is the answer
      }
      out.append(buf, static_cast<size_t>(n));
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
};

struct Answer {
  int status = 0;  // 0: no HTTP answer
  std::string head;
  std::string body;
};

Answer ParseAnswer(const std::string& raw) {
  Answer a;
  size_t end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.1 ", 0) != 0 || end == std::string::npos) return a;
  a.status = std::atoi(raw.c_str() + 9);
  a.head = raw.substr(0, end);
  a.body = raw.substr(end + 4);
  return a;
}

Answer Get(int port, const std::string& path, const std::string& method = "GET") {
  RawClient c(port);
  if (!c.connected()) return {};
  if (!c.Send(method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")) {
    return {};
  }
  auto raw = c.ReadToClose(milliseconds(20000));
  return raw ? ParseAnswer(*raw) : Answer{};
}

// ------------------------------------------- a strict exposition-format parser

// Text format 0.0.4, strictly: every line is "# HELP name text", "# TYPE
// name type" or "name{label="value",...} value"; each family's TYPE comes
// once, before its samples, which are contiguous; no series twice. Errors
// name the line.
struct Exposition {
  std::map<std::string, std::string> types;
  std::map<std::string, double> series;  // name{sorted labels} -> value
  std::vector<std::string> errors;

  std::optional<double> Value(const std::string& key) const {
    auto it = series.find(key);
    if (it == series.end()) return std::nullopt;
    return it->second;
  }
};

bool IsMetricName(const std::string& s) {
  static const std::regex re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(s, re);
}
bool IsLabelName(const std::string& s) {
  static const std::regex re("[a-zA-Z_][a-zA-Z0-9_]*");
  return std::regex_match(s, re) && s.rfind("__", 0) != 0;
}

std::optional<double> ParseValue(const std::string& s) {
  if (s == "NaN") return std::nan("");
  if (s == "+Inf") return HUGE_VAL;
  if (s == "-Inf") return -HUGE_VAL;
  if (s.empty()) return std::nullopt;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

Exposition ParseExposition(const std::string& text) {
  Exposition out;
  auto error = [&](size_t n, const std::string& line, const std::string& what) {
    out.errors.push_back("line " + std::to_string(n) + ": " + what + ": " + line);
  };
  if (text.empty() || text.back() != '\n') out.errors.push_back("does not end with a newline");
  std::set<std::string> helped;
  std::set<std::string> sampled;
  std::set<std::string> closed;  // families whose samples are over
  std::string current;           // the family being listed
  std::istringstream in(text);
  size_t n = 0;
  for (std::string line; std::getline(in, line);) {
    ++n;
    auto enter = [&](const std::string& family) {
      if (family == current) return true;
      if (closed.count(family)) return false;
      if (!current.empty()) closed.insert(current);
      current = family;
      return true;
    };
    if (line.rfind("# HELP ", 0) == 0 || line.rfind("# TYPE ", 0) == 0) {
      std::string rest = line.substr(7);
      size_t sp = rest.find(' ');
      std::string name = rest.substr(0, sp);
      std::string arg = sp == std::string::npos ? "" : rest.substr(sp + 1);
      if (!IsMetricName(name)) error(n, line, "bad metric name");
      if (!enter(name)) error(n, line, "family listed again after other families");
      if (line[2] == 'H') {
        if (!helped.insert(name).second) error(n, line, "second HELP");
        // HELP escapes only backslash and newline.
        for (size_t i = 0; i < arg.size(); ++i) {
          if (arg[i] == '\\' && (i + 1 == arg.size() || (arg[i + 1] != '\\' && arg[i + 1] != 'n'))) {
            error(n, line, "bad escape in HELP");
          }
          if (arg[i] == '\\') ++i;
        }
      } else {
        static const std::set<std::string> kTypes = {"counter", "gauge", "histogram", "summary",
                                                      "untyped"};
        if (!kTypes.count(arg)) error(n, line, "unknown type");
        if (out.types.count(name)) error(n, line, "second TYPE");
        if (sampled.count(name)) error(n, line, "TYPE after samples");
        out.types[name] = arg;
      }
      continue;
    }
    if (line.empty() || line[0] == '#') {
      error(n, line, "neither HELP, TYPE nor a sample");
      continue;
    }
    // name{label="value",...} value
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    std::string name = line.substr(0, i);
    if (!IsMetricName(name)) {
      error(n, line, "bad metric name");
      continue;
    }
    std::map<std::string, std::string> labels;
    bool bad = false;
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (!bad && i < line.size() && line[i] != '}') {
        size_t eq = line.find('=', i);
        if (eq == std::string::npos) {
          bad = true;
          break;
        }
        std::string label = line.substr(i, eq - i);
        if (!IsLabelName(label) || eq + 1 >= line.size() || line[eq + 1] != '"') {
          bad = true;
          break;
        }
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\') {
            if (j + 1 >= line.size()) {
              bad = true;
              break;
            }
            char e = line[++j];
            if (e == '\\') value += '\\';
            else if (e == '"') value += '"';
            else if (e == 'n') value += '\n';
            else bad = true;
          } else if (line[j] == '\n') {
            bad = true;
          } else {
            value += line[j];
          }
        }
        if (bad || j >= line.size()) {
          bad = true;
          break;
        }
        if (!labels.emplace(label, value).second) error(n, line, "label twice");
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
        else if (i >= line.size() || line[i] != '}') bad = true;
      }
      if (bad || i >= line.size() || line[i] != '}') {
        error(n, line, "bad label set");
        continue;
      }
      ++i;
    }
    if (i >= line.size() || line[i] != ' ') {
      error(n, line, "no value");
      continue;
    }
    std::optional<double> value = ParseValue(line.substr(i + 1));
    if (!value) {
      error(n, line, "bad value (or a timestamp, which this agent never sends)");
      continue;
    }
    if (!out.types.count(name)) error(n, line, "sample before its TYPE");
    sampled.insert(name);
    if (!enter(name)) error(n, line, "samples of a family are not contiguous");
    if (out.types[name] == "counter") {
      if (name.size() < 6 || name.substr(name.size() - 6) != "_total") {
        error(n, line, "counter without _total");
      }
      if (*value < 0) error(n, line, "negative counter");
    }
    std::string key = name;
    if (!labels.empty()) {
      key += "{";
      bool first = true;
      for (const auto& [k, v] : labels) {
        key += (first ? "" : ",") + k + "=\"" + v + "\"";
        first = false;
      }
      key += "}";
    }
    if (!out.series.emplace(key, *value).second) error(n, line, "duplicate series");
  }
  return out;
}

// ------------------------------------------------------------------ the rig

constexpr int kGood = 40;       // half of them hot (temp 30), half cold (temp 10)
constexpr int kMalformed = 5;

std::string AgentConfig(const TempDir& dir, const Mosquitto& broker, const std::string& http) {
  return "agent: { id: metrics-gw, data_dir: " + dir.File("data") + ", http: \"" + http +
         "\", shutdown_grace: 2s }\n"
         "sources:\n  plant: { url: " + broker.url() + ", topics: [ \"s/#\" ], qos: 1 }\n"
         "pipelines:\n"
         "  raw: { from: plant, to: [ archive ] }\n"
         "  hot: { from: plant, where: \"temp > 25\", to: [ hotfile ] }\n"
         "sinks:\n"
         "  archive: { type: file, path: " + dir.File("archive.jsonl") + " }\n"
         "  hotfile: { type: file, path: " + dir.File("hot.jsonl") + " }\n";
}

struct Rig {
  TempDir dir;
  Mosquitto broker;
  int port = FreeLoopbackPort();
  std::unique_ptr<ChildProcess> agent;

  Rig() {
    broker.Start();
    WriteFile(dir.File("sluice.yaml"), AgentConfig(dir, broker, "127.0.0.1:" + std::to_string(port)));
    ChildOptions o;
    o.stderr_path = dir.File("agent.log");
    agent = std::make_unique<ChildProcess>(
        std::vector<std::string>{SluiceBinary(), "run", "-c", dir.File("sluice.yaml")}, o);
    REQUIRE(WaitUntil([&] { return broker.SubscriptionCount("sluice-metrics-gw-plant", "s/#") > 0; },
                      milliseconds(30000)));
  }
  ~Rig() {
    if (agent) agent->Stop(SIGTERM, milliseconds(30000));
  }
  std::string Log() const { return ReadFile(dir.File("agent.log")); }

  // kGood readings and kMalformed bad payloads; returns once the archive
  // holds every good one.
  void PublishReadings() {
    TestPublisher pub(broker.url());
    std::vector<TestMessage> messages;
    for (int i = 0; i < kGood; ++i) {
      messages.push_back({"s/dev-" + std::to_string(i % 4),
                          "{\"n\":" + std::to_string(i) + ",\"temp\":" + (i % 2 ? "10" : "30") + "}"});
      if (i % 8 == 0 && static_cast<int>(messages.size()) < kGood + kMalformed) {
        messages.push_back({"s/dev-bad", "not json {" + std::to_string(i)});
      }
    }
    REQUIRE(static_cast<int>(messages.size()) == kGood + kMalformed);
    pub.PublishAll(messages);
    REQUIRE(WaitUntil([&] { return ReadLines(dir.File("archive.jsonl")).size() == kGood; },
                      milliseconds(60000)));
  }

  Exposition Scrape() {
    Answer a = Get(port, "/metrics");
    REQUIRE(a.status == 200);
    CHECK(a.head.find("Content-Type: text/plain; version=0.0.4") != std::string::npos);
    Exposition e = ParseExposition(a.body);
    INFO(a.body);
    for (const std::string& err : e.errors) FAIL_CHECK(err);
    return e;
  }
};

}  // namespace

TEST_CASE("the test's exposition parser refuses what Prometheus would", "[integration]") {
  const std::string good =
      "# HELP a_total Things.\n# TYPE a_total counter\na_total{x=\"1\",y=\"q\\\"\\\\\\n\"} 3\n"
      "a_total{x=\"2\"} 4\n# TYPE b gauge\nb 1.5\nb{z=\"\"} -2\n";
  Exposition ok = ParseExposition(good);
  CHECK(ok.errors.empty());
  CHECK(ok.Value("a_total{x=\"1\",y=\"q\"\\\n\"}") == 3);
  CHECK(ok.Value("b") == 1.5);
  for (const std::string& bad : {
           std::string("b 1\n"),                                        // no TYPE
           std::string("# TYPE b gauge\nb 1\nb 2\n"),                 // duplicate series
           std::string("# TYPE b gauge\n# TYPE b gauge\nb 1\n"),      // TYPE twice
           std::string("# TYPE b gauge\nb{x=\"1\"} 1\n# TYPE c gauge\nc 1\nb{x=\"2\"} 1\n"),
           std::string("# TYPE b gauge\nb{x=\"a\\q\"} 1\n"),         // bad escape
           std::string("# TYPE b gauge\nb{x=1} 1\n"),                  // unquoted
           std::string("# TYPE b gauge\nb{x=\"1\",x=\"2\"} 1\n"),      // label twice
           std::string("# TYPE b gauge\nb one\n"),                     // not a number
           std::string("# TYPE b gauge\nb 1 1700000000000\n"),         // timestamp
           std::string("# TYPE 1b gauge\n1b 1\n"),                     // bad name
           std::string("# TYPE c counter\nc 1\n"),                     // counter without _total
           std::string("# TYPE b gauge\n\nb 1\n"),                    // empty line
           std::string("# a comment\n"),                                // other comment
           std::string("# TYPE b gauge\nb 1"),                          // no final newline
       }) {
    INFO(bad);
    CHECK_FALSE(ParseExposition(bad).errors.empty());
  }
}

TEST_CASE("metrics: /metrics is strict Prometheus text and counts what was sent", "[integration]") {
  Rig rig;
  INFO("agent log:\n" << rig.Log());
  rig.PublishReadings();

  // Delivery counters settle a moment after the file is written (the
  // outbox delete follows the write), operator figures at the next tick,
  // the dead-letter count at the next store scan (at most 10 s).
  Exposition e;
  bool settled = WaitUntil(
      [&] {
        e = rig.Scrape();
        return e.Value("sluice_sink_delivered_records_total{sink=\"archive\"}") == kGood &&
               e.Value("sluice_sink_delivered_records_total{sink=\"hotfile\"}") == kGood / 2 &&
               e.Value("sluice_pipeline_filtered_total{pipeline=\"hot\"}") == kGood / 2 &&
               e.Value("sluice_store_dead_letters").value_or(0) >= kMalformed;
      },
      milliseconds(60000));
  std::ostringstream all;
  for (const auto& [k, v] : e.series) all << k << " " << v << "\n";
  INFO("series:\n" << all.str());
  CHECK(settled);
  CHECK(e.Value("sluice_source_messages_total{source=\"plant\"}") == kGood + kMalformed);
  CHECK(e.Value("sluice_source_decode_errors_total{source=\"plant\"}") == kMalformed);
  CHECK(e.Value("sluice_source_received_bytes_total{source=\"plant\"}").value_or(0) > 0);
  CHECK(e.Value("sluice_source_connected{source=\"plant\"}") == 1);
  CHECK(e.Value("sluice_pipeline_readings_total{pipeline=\"raw\"}") == kGood);
  CHECK(e.Value("sluice_pipeline_readings_total{pipeline=\"hot\"}") == kGood);
  CHECK(e.Value("sluice_pipeline_outputs_total{pipeline=\"hot\"}") == kGood / 2);
  CHECK(e.Value("sluice_sink_delivered_records_total{sink=\"archive\"}") ==
        static_cast<double>(ReadLines(rig.dir.File("archive.jsonl")).size()));
  CHECK(e.Value("sluice_sink_delivered_records_total{sink=\"hotfile\"}") ==
        static_cast<double>(ReadLines(rig.dir.File("hot.jsonl")).size()));
  CHECK(e.Value("sluice_sink_appended_records_total{sink=\"archive\"}") == kGood);
  CHECK(e.Value("sluice_sink_queued_records{sink=\"archive\"}") == 0);
  CHECK(e.Value("sluice_sink_queued_bytes{sink=\"archive\"}") == 0);
  CHECK(e.Value("sluice_sink_oldest_record_age_seconds{sink=\"archive\"}") == 0);
  CHECK(e.Value("sluice_sink_dropped_records_total{reason=\"drop_oldest\",sink=\"archive\"}") == 0);
  CHECK(e.Value("sluice_sink_dropped_records_total{reason=\"drop_newest\",sink=\"archive\"}") == 0);
  CHECK(e.Value("sluice_sink_retries_total{sink=\"archive\"}") == 0);
  CHECK(e.Value("sluice_sink_dead_lettered_records_total{sink=\"archive\"}") == 0);
  CHECK(e.Value("sluice_sink_failing{sink=\"archive\"}") == 0);
  CHECK(e.Value("sluice_sink_last_success_timestamp_seconds{sink=\"archive\"}").value_or(0) >
        1.6e9);
  CHECK(e.Value("sluice_store_writable") == 1);
  CHECK(e.Value("sluice_store_dead_letters") == kMalformed);
  CHECK(e.Value("sluice_store_dead_letters_dropped_total") == 0);
  CHECK(e.Value("sluice_agent_responsive") == 1);
  CHECK(e.Value("sluice_agent_info{id=\"metrics-gw\"}") == 1);
  CHECK(e.Value("sluice_process_resident_memory_bytes").value_or(0) > 1e6);
  CHECK(e.Value("sluice_process_cpu_seconds_total").value_or(0) > 0);
  CHECK(e.Value("sluice_process_start_time_seconds").value_or(0) > 1.6e9);
  CHECK(e.Value("sluice_process_uptime_seconds").has_value());
  bool build_info = false;
  for (const auto& [key, value] : e.series) {
    if (key.rfind("sluice_build_info{arch=\"", 0) == 0 && key.find(",version=\"") != std::string::npos &&
        key.find(",revision=\"") != std::string::npos && value == 1) {
      build_info = true;
    }
  }
  CHECK(build_info);
  CHECK(e.types["sluice_source_messages_total"] == "counter");
  CHECK(e.types["sluice_sink_queued_records"] == "gauge");
  for (const auto& [key, value] : e.series) CHECK(key.rfind("sluice_", 0) == 0);
}

TEST_CASE("metrics: /healthz, /readyz follows the broker, HEAD, 404 and 405", "[integration]") {
  Rig rig;
  INFO("agent log:\n" << rig.Log());
  Answer health = Get(rig.port, "/healthz");
  CHECK(health.status == 200);
  CHECK(health.body == "ok\n");
  CHECK(health.head.find("Connection: close") != std::string::npos);
  REQUIRE(WaitUntil([&] { return Get(rig.port, "/readyz").status == 200; }, milliseconds(30000)));

  rig.broker.Stop();
  Answer not_ready;
  CHECK(WaitUntil(
      [&] {
        not_ready = Get(rig.port, "/readyz");
        return not_ready.status == 503;
      },
      milliseconds(30000)));
  CHECK(not_ready.body.find("source 'plant' is not connected") != std::string::npos);
  CHECK(Get(rig.port, "/healthz").status == 200);  // alive, only not ready
  rig.broker.Start();
  CHECK(WaitUntil([&] { return Get(rig.port, "/readyz").status == 200; }, milliseconds(60000)));

  Answer head = Get(rig.port, "/metrics", "HEAD");
  CHECK(head.status == 200);
  CHECK(head.body.empty());
  CHECK(head.head.find("Content-Length: 0") == std::string::npos);
  CHECK(Get(rig.port, "/nothing-here").status == 404);
  Answer post = Get(rig.port, "/metrics", "POST");
  CHECK(post.status == 405);
  CHECK(post.head.find("Allow: GET, HEAD") != std::string::npos);
}

TEST_CASE("threads are named after what they run, for top -H and perf", "[integration]") {
  Rig rig;
  INFO("agent log:\n" << rig.Log());
  std::multiset<std::string> names;
  for (const auto& task : std::filesystem::directory_iterator("/proc/" + std::to_string(rig.agent->pid()) + "/task")) {
    std::string name = ReadFile(task.path().string() + "/comm");
    if (!name.empty() && name.back() == '\n') name.pop_back();
    names.insert(name);
  }
  CAPTURE(names);
  CHECK(names.count("source plant") == 1);
  CHECK(names.count("sink archive") == 1);
  CHECK(names.count("sink hotfile") == 1);
  CHECK(names.count("checkpointer") == 1);
  CHECK(names.count("ticker") == 1);
  CHECK(names.count("http endpoint") == 1);
}

TEST_CASE("metrics: garbage, a 100 KiB header and a silent client get an error or a close, and "
          "the agent keeps serving", "[integration]") {
  Rig rig;
  INFO("agent log:\n" << rig.Log());

  // A client that connects and says nothing: the others are served meanwhile.
  RawClient silent(rig.port);
  REQUIRE(silent.connected());
  CHECK(Get(rig.port, "/healthz").status == 200);

  {
    RawClient garbage(rig.port);
    REQUIRE(garbage.connected());
    std::string bytes = "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\xff\xfe\r\n\r\n";
    garbage.Send(bytes);
    auto raw = garbage.ReadToClose(milliseconds(20000));
    REQUIRE(raw.has_value());  // closed, not left hanging
    if (!raw->empty()) CHECK(ParseAnswer(*raw).status == 400);
  }
  {
    RawClient line(rig.port);
    line.Send("hello there\r\n\r\n");
    auto raw = line.ReadToClose(milliseconds(20000));
    REQUIRE(raw.has_value());
    if (!raw->empty()) CHECK(ParseAnswer(*raw).status == 400);
  }
  {
    RawClient big(rig.port);
    // The server may stop reading once it has answered: a failed send is fine.
    (void)big.Send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(100 * 1024, 'a') +
                   "\r\n\r\n");
    auto raw = big.ReadToClose(milliseconds(20000));
    REQUIRE(raw.has_value());
    if (!raw->empty()) CHECK(ParseAnswer(*raw).status == 431);
  }

  // The silent client is answered (408) or dropped within the read timeout.
  auto silent_end = silent.ReadToClose(milliseconds(30000));
  REQUIRE(silent_end.has_value());
  if (!silent_end->empty()) CHECK(ParseAnswer(*silent_end).status == 408);

  CHECK(Get(rig.port, "/healthz").status == 200);
  CHECK(rig.Scrape().errors.empty());
  CHECK(rig.agent->Running());
}

TEST_CASE("status: /status JSON and `sluice status` tables, exit 1 naming an unreachable address",
          "[integration]") {
  Rig rig;
  INFO("agent log:\n" << rig.Log());
  rig.PublishReadings();
  json doc;
  REQUIRE(WaitUntil(
      [&] {
        Answer a = Get(rig.port, "/status");
        if (a.status != 200) return false;
        doc = json::parse(a.body, nullptr, false);
        if (doc.is_discarded()) return false;
        for (const json& s : doc["sinks"]) {
          if (s["name"] == "archive" && s["delivered"] == kGood) return true;
        }
        return false;
      },
      milliseconds(60000)));
  INFO(doc.dump(2));
  CHECK(doc["agent"]["id"] == "metrics-gw");
  CHECK(doc["agent"]["version"].is_string());
  CHECK(doc["agent"]["uptime_seconds"].is_number());
  CHECK(doc["agent"]["ready"] == true);
  REQUIRE(doc["sources"].size() == 1);
  CHECK(doc["sources"][0]["name"] == "plant");
  CHECK(doc["sources"][0]["connected"] == true);
  CHECK(doc["sources"][0]["messages"] == kGood + kMalformed);
  CHECK(doc["sources"][0]["decode_errors"] == kMalformed);
  REQUIRE(doc["pipelines"].size() == 2);
  CHECK(doc["pipelines"][0]["name"] == "raw");
  CHECK(doc["pipelines"][0]["readings"] == kGood);
  REQUIRE(doc["sinks"].size() == 2);
  const json& archive = doc["sinks"][0];
  CHECK(archive["name"] == "archive");
  CHECK(archive["type"] == "file");
  CHECK(archive["queued_records"] == 0);
  CHECK(archive["health"] == "ok");
  CHECK(archive["last_error"].is_null());
  CHECK(doc["alerts_firing"]["total"] == 0);

  // By --url, by the config's agent.http.
  for (std::vector<std::string> how :
       {std::vector<std::string>{"--url", "http://127.0.0.1:" + std::to_string(rig.port)},
        std::vector<std::string>{"-c", rig.dir.File("sluice.yaml")}}) {
    ChildOptions o;
    o.stdout_path = rig.dir.File("status.out");
    o.stderr_path = rig.dir.File("status.err");
    ::unlink(o.stdout_path.c_str());
    std::vector<std::string> argv = {SluiceBinary(), "status"};
    argv.insert(argv.end(), how.begin(), how.end());
    ChildProcess status(argv, o);
    CHECK(status.WaitExit(milliseconds(30000)) == 0);
    std::string out = ReadFile(o.stdout_path);
    INFO(out << ReadFile(o.stderr_path));
    CHECK(out.find("agent metrics-gw") != std::string::npos);
    CHECK(out.find("ready") != std::string::npos);
    CHECK(std::regex_search(out, std::regex("\nplant +yes +" + std::to_string(kGood + kMalformed) +
                                            " .* " + std::to_string(kMalformed) + "\n")));
    CHECK(std::regex_search(out, std::regex("\nraw +" + std::to_string(kGood) + " +")));
    CHECK(std::regex_search(out, std::regex("\narchive +file +ok +0 .* " + std::to_string(kGood) +
                                            " +0 +0 +0 +-\n")));
    CHECK(out.find("hotfile") != std::string::npos);
    CHECK(out.find("alerts firing: 0") != std::string::npos);
  }

  const int nobody = FreeLoopbackPort();
  ChildOptions o;
  o.stdout_path = rig.dir.File("unreachable.out");
  o.stderr_path = rig.dir.File("unreachable.err");
  ChildProcess unreachable(
      {SluiceBinary(), "status", "--url", "http://127.0.0.1:" + std::to_string(nobody)}, o);
  CHECK(unreachable.WaitExit(milliseconds(30000)) == 1);
  CHECK(ReadFile(o.stderr_path).find("127.0.0.1:" + std::to_string(nobody)) != std::string::npos);
  CHECK(ReadFile(o.stdout_path).empty());
}

TEST_CASE("metrics: a taken agent.http port is logged and the agent runs on without it",
          "[integration]") {
  TempDir dir;
  Mosquitto broker;
  broker.Start();
  // Someone else's listener on the port.
  int taken = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(taken >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(taken, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(taken, 1) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(::getsockname(taken, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  const std::string address = "127.0.0.1:" + std::to_string(ntohs(addr.sin_port));

  WriteFile(dir.File("sluice.yaml"), AgentConfig(dir, broker, address));
  ChildOptions o;
  o.stderr_path = dir.File("agent.log");
  ChildProcess agent({SluiceBinary(), "run", "-c", dir.File("sluice.yaml")}, o);
  INFO("agent log:\n" << ReadFile(dir.File("agent.log")));
  CHECK(WaitUntil(
      [&] {
        std::string log = ReadFile(dir.File("agent.log"));
        return log.find("error") != std::string::npos && log.find(address) != std::string::npos &&
               log.find("running without the metrics and health endpoint") != std::string::npos;
      },
      milliseconds(30000)));
  REQUIRE(WaitUntil([&] { return broker.SubscriptionCount("sluice-metrics-gw-plant", "s/#") > 0; },
                    milliseconds(30000)));
  TestPublisher pub(broker.url());
  pub.Publish("s/dev-1", "{\"temp\":30}");
  CHECK(WaitUntil([&] { return ReadLines(dir.File("archive.jsonl")).size() == 1; },
                  milliseconds(30000)));
  CHECK(agent.Stop(SIGTERM, milliseconds(30000)) == 0);
  ::close(taken);
}

TEST_CASE("metrics: a SIGHUP that changes agent.http moves the endpoint", "[integration]") {
  Rig rig;
  INFO("agent log:\n" << rig.Log());
  REQUIRE(Get(rig.port, "/healthz").status == 200);
  const int next = FreeLoopbackPort();
  WriteFile(rig.dir.File("sluice.yaml"),
            AgentConfig(rig.dir, rig.broker, "127.0.0.1:" + std::to_string(next)));
  rig.agent->Signal(SIGHUP);
  CHECK(WaitUntil([&] { return Get(next, "/healthz").status == 200; }, milliseconds(30000)));
  CHECK_FALSE(RawClient(rig.port).connected());
  Answer status = Get(next, "/status");
  CHECK(status.status == 200);
  CHECK(status.body.find("\"metrics-gw\"") != std::string::npos);
}
