// End to end with the real binary and real servers: mosquitto → `sluice run`
// (a tumbling-window pipeline and an alert pipeline) → librdkafka's mock
// Kafka cluster and a loopback HTTP receiver. The aggregates and alert
// transitions that arrive upstream must equal, exactly, what a brute-force
// reference computes here from the readings the broker passed on.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cmath>
#include <csignal>
#include <map>
#include <iostream>
#include <set>
#include <sstream>
#include <tuple>

#include "tests/integration/harness.h"
#include "tests/integration/http_receiver.h"
#include "tests/integration/kafka_mock.h"

using namespace sluice::testing;
using nlohmann::json;
using std::chrono::milliseconds;

namespace {

constexpr int kDevices = 8;
constexpr int64_t kCount = 6000;
constexpr int64_t kRate = 1000;  // readings per second, in event time too
constexpr int64_t kStartMs = 1790000000000;
constexpr int64_t kWindowMs = 1000;
// A last reading this far ahead in event time closes every window of the run.
constexpr int64_t kFinalTs = kStartMs + 3600000;

struct Reading {
  std::string site, device;
  int64_t ts;
  double temp;
};

struct Aggregate {
  int64_t n = 0;
  double sum = 0, min = 0, max = 0;
};

// window start → aggregate, per device: what the pipeline must report.
using AggregateKey = std::tuple<std::string, int64_t>;  // device, window start

std::map<AggregateKey, Aggregate> ReferenceAggregates(const std::vector<Reading>& readings) {
  std::map<AggregateKey, Aggregate> out;
  for (const Reading& r : readings) {
    Aggregate& a = out[{r.device, r.ts - r.ts % kWindowMs}];
    if (a.n == 0) {
      a.min = a.max = r.temp;
    } else {
      a.min = std::min(a.min, r.temp);
      a.max = std::max(a.max, r.temp);
    }
    a.sum += r.temp;
    ++a.n;
  }
  return out;
}

struct Transition {
  std::string device, state;
  int64_t at, since;
  bool operator<(const Transition& o) const {
    return std::tie(device, at, state, since) < std::tie(o.device, o.at, o.state, o.since);
  }
  bool operator==(const Transition& o) const {
    return std::tie(device, at, state, since) == std::tie(o.device, o.at, o.state, o.since);
  }
};

// when: temp > 80, clear: temp < 75, for: 0s — per device, in event order.
std::set<Transition> ReferenceAlerts(const std::vector<Reading>& readings) {
  std::map<std::string, int64_t> firing_since;
  std::set<Transition> out;
  for (const Reading& r : readings) {
    auto it = firing_since.find(r.device);
    if (it == firing_since.end()) {
      if (r.temp > 80) {
        firing_since[r.device] = r.ts;
        out.insert({r.device, "firing", r.ts, r.ts});
      }
    } else if (r.temp < 75) {
      out.insert({r.device, "resolved", r.ts, it->second});
      firing_since.erase(it);
    }
  }
  return out;
}

std::string Config(const TempDir& dir, const Mosquitto& broker,
                   const std::vector<std::string>& kafka_brokers, const std::string& http_url) {
  std::string brokers;
  for (const std::string& b : kafka_brokers) brokers += (brokers.empty() ? "\"" : ", \"") + b + "\"";
  return "agent: { id: e2e-gw, data_dir: " + dir.File("data") + ", http: off, shutdown_grace: 5s }\n"
         "sources:\n"
         "  plant:\n"
         "    url: " + broker.url() + "\n"
         "    client_id: sluice-e2e\n"
         "    topics: [ \"sensors/+/+\" ]\n"
         "    qos: 1\n"
         "    topic_fields: \"sensors/{site}/{device}\"\n"
         "    time: { field: ts, unit: ms }\n"
         "pipelines:\n"
         "  temp_1s:\n"
         "    from: plant\n"
         "    window: { type: tumbling, size: 1s, idle: 0s }\n"
         "    group_by: [ site, device ]\n"
         "    aggregate: { n: count(), sum: sum(temp), min: min(temp), max: max(temp), "
         "avg: avg(temp) }\n"
         "    to: [ cloud ]\n"
         "  overheat:\n"
         "    from: plant\n"
         "    alert: { when: \"temp > 80\", clear: \"temp < 75\", severity: critical, key: [ device ] }\n"
         "    to: [ ops ]\n"
         "sinks:\n"
         "  cloud: { type: kafka, brokers: [ " + brokers + " ], topic: \"telemetry\", key: \"{device}\" }\n"
         "  ops: { type: http, url: \"" + http_url + "\", batch: { max_records: 100, max_delay: 50ms } }\n";
}

}  // namespace

TEST_CASE("end to end: mosquitto → sluice → Kafka and HTTP, exact aggregates and alerts",
          "[integration][e2e]") {
  TempDir dir;
  MosquittoOptions broker_options;
  broker_options.max_queued_messages = 2 * kCount;
  Mosquitto broker(broker_options);
  broker.Start();
  KafkaMock kafka;
  kafka.CreateTopic("telemetry", 3);
  HttpReceiver receiver;
  receiver.Start();

  WriteFile(dir.File("sluice.yaml"),
            Config(dir, broker, kafka.BrokerAddresses(), receiver.url("/alerts")));

  // Everything the broker passes on, for the reference.
  ChildOptions capture_logs;
  capture_logs.stdout_path = dir.File("captured.txt");
  capture_logs.stderr_path = dir.File("capture.err");
  ChildProcess capture({"/usr/bin/mosquitto_sub", "-h", "127.0.0.1", "-p",
                        std::to_string(broker.port()), "-i", "e2e-capture", "-q", "1", "-t",
                        "sensors/+/+", "-F", "%t %p", "-C", std::to_string(kCount)},
                       capture_logs);

  ChildOptions agent_logs;
  agent_logs.stderr_path = dir.File("agent.log");
  ChildProcess agent({SluiceBinary(), "run", "-c", dir.File("sluice.yaml")}, agent_logs);
  REQUIRE(WaitUntil(
      [&] {
        return broker.SubscriptionCount("sluice-e2e", "sensors/+/+") > 0 &&
               broker.SubscriptionCount("e2e-capture", "sensors/+/+") > 0;
      },
      milliseconds(30000)));

  ChildOptions pub_logs;
  pub_logs.stdout_path = dir.File("simulate.out");
  pub_logs.stderr_path = dir.File("simulate.err");
  ChildProcess publisher({SluiceBinary(), "simulate", "--url", broker.url(), "--devices",
                          std::to_string(kDevices), "--rate", std::to_string(kRate), "--count",
                          std::to_string(kCount), "--qos", "1", "--seed", "5", "--start-ms",
                          std::to_string(kStartMs), "--anomaly-rate", "0.01", "--client-id",
                          "e2e-publisher"},
                         pub_logs);
  INFO("simulate: " << ReadFile(dir.File("simulate.err")));
  REQUIRE(publisher.WaitExit(milliseconds(120000)) == 0);
  REQUIRE(capture.WaitExit(milliseconds(60000)) == 0);
  // Closes every window: one reading of another device, an hour later.
  TestPublisher final_pub(broker.url());
  final_pub.Publish("sensors/site-99/dev-final", "{\"ts\":" + std::to_string(kFinalTs) + ",\"temp\":20}", 1);

  std::vector<Reading> readings;
  {
    std::istringstream in(ReadFile(dir.File("captured.txt")));
    std::string line;
    while (std::getline(in, line)) {
      size_t space = line.find(' ');
      std::string topic = line.substr(0, space);
      json p = json::parse(line.substr(space + 1));
      size_t a = topic.find('/'), b = topic.rfind('/');
      readings.push_back({topic.substr(a + 1, b - a - 1), topic.substr(b + 1),
                          p["ts"].get<int64_t>(), p["temp"].get<double>()});
    }
  }
  REQUIRE(readings.size() == static_cast<size_t>(kCount));
  const auto expected_aggregates = ReferenceAggregates(readings);
  const auto expected_alerts = ReferenceAlerts(readings);
  REQUIRE(expected_alerts.size() >= 4);  // the seed makes overheat episodes
  std::cout << "e2e: " << readings.size() << " readings, " << expected_aggregates.size()
            << " aggregates, " << expected_alerts.size() << " alert transitions expected\n";

  // Kafka: one message per aggregate, key = device, header = record id.
  std::vector<KafkaMessage> messages =
      kafka.ReadTopic("telemetry", expected_aggregates.size(), milliseconds(120000));
  INFO("agent log: " << ReadFile(dir.File("agent.log")));
  std::map<AggregateKey, json> got_aggregates;
  for (const KafkaMessage& m : messages) {
    json r = json::parse(m.value);
    CHECK(r["kind"] == "aggregate");
    CHECK(r["agent"] == "e2e-gw");
    CHECK(m.key == r["key"]["device"].get<std::string>());
    CHECK(m.header("sluice-id") == r["id"].get<std::string>());
    got_aggregates[{r["key"]["device"].get<std::string>(), r["window"]["start"].get<int64_t>()}] = r;
  }
  REQUIRE(got_aggregates.size() == expected_aggregates.size());
  for (const auto& [key, want] : expected_aggregates) {
    INFO("device " << std::get<0>(key) << " window " << std::get<1>(key));
    REQUIRE(got_aggregates.count(key) == 1);
    const json& v = got_aggregates.at(key)["values"];
    CHECK(v["n"].get<int64_t>() == want.n);
    CHECK(v["min"].get<double>() == want.min);
    CHECK(v["max"].get<double>() == want.max);
    CHECK(v["sum"].get<double>() == Approx(want.sum).epsilon(1e-12));
    CHECK(v["avg"].get<double>() == Approx(want.sum / want.n).epsilon(1e-12));
    CHECK(got_aggregates.at(key)["window"]["end"].get<int64_t>() == std::get<1>(key) + kWindowMs);
  }

  // HTTP: every alert transition, in JSON arrays, deduplicated by record id.
  std::set<Transition> got_alerts;
  std::set<std::string> ids;
  REQUIRE(WaitUntil(
      [&] {
        got_alerts.clear();
        ids.clear();
        for (const ReceivedRequest& request : receiver.Requests()) {
          if (request.status != 200 || !request.body.is_array()) continue;
          for (const json& r : request.body) {
            if (!ids.insert(r["id"].get<std::string>()).second) continue;
            got_alerts.insert({r["key"]["device"].get<std::string>(), r["state"].get<std::string>(),
                               r["at"].get<int64_t>(), r["since"].get<int64_t>()});
          }
        }
        return got_alerts.size() >= expected_alerts.size();
      },
      milliseconds(60000)));
  CHECK(got_alerts == expected_alerts);

  agent.Signal(SIGTERM);
  CHECK(agent.WaitExit(milliseconds(30000)) == 0);
}
