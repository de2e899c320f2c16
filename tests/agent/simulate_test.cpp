#include "agent/simulate.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdint>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

namespace sluice::agent {
namespace {

constexpr int64_t kStart = 1700000000000;  // 2023-11-14T22:13:20Z

std::vector<SimulatedReading> Generate(SensorSimulator& sim, int n, double rate = 10) {
  std::vector<SimulatedReading> out;
  out.reserve(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i)
    out.push_back(sim.Next(SyntheticEventTime(kStart, i, rate, sim.devices())));
  return out;
}

std::vector<std::string> Payloads(const std::vector<SimulatedReading>& readings) {
  std::vector<std::string> out;
  for (const auto& r : readings) out.push_back(r.payload);
  return out;
}

uint64_t Fnv1a(const std::vector<std::string>& texts) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (const auto& t : texts) {
    for (unsigned char c : t) h = (h ^ c) * 0x100000001b3ULL;
    h = (h ^ '\n') * 0x100000001b3ULL;
  }
  return h;
}

TEST_CASE("simulator: the same seed gives the same readings, another seed others", "[simulate]") {
  SensorSimulator a(10, 1, 42, 0.01);
  SensorSimulator b(10, 1, 42, 0.01);
  SensorSimulator c(10, 1, 43, 0.01);
  auto pa = Payloads(Generate(a, 5000));
  auto pb = Payloads(Generate(b, 5000));
  auto pc = Payloads(Generate(c, 5000));
  CHECK(pa == pb);
  int differing = 0;
  for (size_t i = 0; i < pa.size(); ++i) differing += pa[i] != pc[i];
  CHECK(differing > 4500);
}

TEST_CASE("simulator: payloads are pinned byte for byte across platforms", "[simulate]") {
  // If this fails on one platform only, something platform-dependent (a std
  // distribution, libm, FMA contraction) crept into the generator.
  SensorSimulator sim(10, 2, 1, 0.002);
  auto readings = Generate(sim, 10000);
  CHECK(readings[0].payload == R"({"ts":1700000000000,"temp":25.5,"hum":43.4,"vib":2.436})");
  CHECK(readings[1].payload == R"({"ts":1700000000100,"temp":19.3,"hum":58.3,"vib":2.063})");
  CHECK(Fnv1a(Payloads(readings)) == 0x0c9767fd25c64d26ULL);
}

TEST_CASE("simulator: payload is a JSON object with ts, temp, hum and vib", "[simulate]") {
  SensorSimulator sim(7, 2, 3, 0.05);
  const std::regex shape(R"(\{"ts":\d+,"temp":-?\d+\.\d,"hum":\d+\.\d,"vib":\d+\.\d{3}\})");
  auto readings = Generate(sim, 2000);
  for (size_t i = 0; i < readings.size(); ++i) {
    const auto& r = readings[i];
    INFO(r.payload);
    REQUIRE(std::regex_match(r.payload, shape));
    auto j = nlohmann::json::parse(r.payload);
    REQUIRE(j.is_object());
    CHECK(j.size() == 4);
    CHECK(j.at("ts").is_number_integer());
    CHECK(j.at("ts").get<int64_t>() == r.time_ms);
    CHECK(j.at("temp").is_number());
    CHECK(j.at("hum").is_number());
    CHECK(j.at("vib").is_number());
  }
}

TEST_CASE("simulator: values stay plausible and anomalies follow anomaly_rate", "[simulate]") {
  SECTION("no anomalies at rate 0") {
    SensorSimulator sim(20, 2, 11, 0.0);
    for (const auto& r : Generate(sim, 20000)) {
      auto j = nlohmann::json::parse(r.payload);
      INFO(r.payload);
      CHECK_FALSE(r.anomaly);
      CHECK(j["temp"].get<double>() >= 12.0);
      CHECK(j["temp"].get<double>() <= 37.0);
      CHECK(j["hum"].get<double>() >= 0.0);
      CHECK(j["hum"].get<double>() <= 100.0);
      CHECK(j["vib"].get<double>() >= 0.0);
      CHECK(j["vib"].get<double>() <= 5.0);
    }
  }
  SECTION("episodes above 80 °C at a high rate") {
    SensorSimulator sim(5, 1, 12, 0.05);
    auto readings = Generate(sim, 5000);
    int anomalous = 0;
    std::map<int, int> run;  // device -> length of its current episode
    std::vector<int> lengths;
    for (const auto& r : readings) {
      double temp = nlohmann::json::parse(r.payload)["temp"].get<double>();
      INFO(r.payload);
      if (r.anomaly) {
        ++anomalous;
        CHECK(temp > 80.0);
        ++run[r.device];
      } else {
        CHECK(temp < 40.0);
        if (run[r.device] > 0) lengths.push_back(run[r.device]);
        run[r.device] = 0;
      }
    }
    CHECK(anomalous > 100);
    REQUIRE(lengths.size() > 10);
    for (int len : lengths) {
      // Back-to-back episodes merge, so only the lower bound is strict.
      CHECK(len >= 5);
    }
  }
}

TEST_CASE("simulator: devices round-robin, named and spread over sites", "[simulate]") {
  SensorSimulator sim(25, DefaultSiteCount(25), 1, 0.0);
  CHECK(sim.sites() == 3);
  auto readings = Generate(sim, 60);
  for (size_t k = 0; k < readings.size(); ++k) {
    const auto& r = readings[k];
    CHECK(r.device == static_cast<int>(k % 25));
    CHECK(r.site == r.device % 3);
  }
  CHECK(readings[0].device_name == "dev-0001");
  CHECK(readings[0].site_name == "site-01");
  CHECK(readings[4].device_name == "dev-0005");
  CHECK(readings[4].site_name == "site-02");
  CHECK(readings[24].device_name == "dev-0025");
  CHECK(readings[24].site_name == "site-01");
  CHECK(DefaultSiteCount(1) == 1);
  CHECK(DefaultSiteCount(10) == 1);
  CHECK(DefaultSiteCount(11) == 2);
}

TEST_CASE("simulator: topic templates render {site} and {device}", "[simulate]") {
  SimulatedReading r;
  r.site_name = "site-02";
  r.device_name = "dev-0005";
  CHECK(RenderTopic("sensors/{site}/{device}", r) == "sensors/site-02/dev-0005");
  CHECK(RenderTopic("{device}/{device}", r) == "dev-0005/dev-0005");
  CHECK(RenderTopic("plant/all", r) == "plant/all");
  CHECK(RenderTopic("x/{site", r) == "x/{site");
}

TEST_CASE("simulator: synthetic event time steps by 1000/rate", "[simulate]") {
  CHECK(SyntheticEventTime(kStart, 0, 10, 5) == kStart);
  CHECK(SyntheticEventTime(kStart, 7, 10, 5) == kStart + 700);
  CHECK(SyntheticEventTime(kStart, 3, 3, 5) == kStart + 1000);
  CHECK(SyntheticEventTime(kStart, 4, 3, 5) == kStart + 1333);
  // rate 0: each device reports once per second of event time.
  CHECK(SyntheticEventTime(kStart, 4, 0, 4) == kStart + 1000);
}

TEST_CASE("simulate command: flags land in the options, bad values are refused", "[simulate]") {
  CLI::App app{"sluice"};
  SimulateOptions options;
  CLI::App* cmd = AddSimulateCommand(app, options);

  SECTION("defaults") {
    app.parse("simulate", false);
    CHECK(cmd->parsed());
    CHECK(options.url == "tcp://127.0.0.1:1883");
    CHECK(options.devices == 10);
    CHECK(options.qos == 1);
    CHECK_FALSE(options.start_ms.has_value());
  }
  SECTION("every flag") {
    app.parse(
        "simulate --url tcp://127.0.0.1:1999 --devices 3 --rate 0 --count 50 --seed 9 --qos 2 "
        "--topic a/{device} --sites 2 --anomaly-rate 0.5 --start-ms 1000 --client-id sim-1",
        false);
    CHECK(options.url == "tcp://127.0.0.1:1999");
    CHECK(options.devices == 3);
    CHECK(options.rate == 0);
    CHECK(options.count == 50);
    CHECK(options.seed == 9);
    CHECK(options.qos == 2);
    CHECK(options.topic == "a/{device}");
    CHECK(options.sites == 2);
    CHECK(options.anomaly_rate == 0.5);
    REQUIRE(options.start_ms.has_value());
    CHECK(*options.start_ms == 1000);
    CHECK(options.client_id == "sim-1");
  }
  SECTION("an IPv6 broker, mqtt://") {
    CHECK_NOTHROW(app.parse("simulate --url tcp://[::1]:1883", false));
    CHECK(options.url == "tcp://[::1]:1883");
    CHECK_NOTHROW(app.parse("simulate --url mqtt://broker.local:1884", false));
  }
  SECTION("out of range or malformed") {
    CHECK_THROWS_AS(app.parse("simulate --qos 3", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --devices 0", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --rate -1", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --anomaly-rate 1.5", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --topic sensors/+/x", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --topic sensors/{dev}", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --url localhost:1883", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --url tcp://127.0.0.1", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --url tcp://127.0.0.1:", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --url tcp://127.0.0.1:18x3", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --url tcp://127.0.0.1:70000", false), CLI::ValidationError);
    CHECK_THROWS_AS(app.parse("simulate --url tcp://:1883", false), CLI::ValidationError);
  }
}

TEST_CASE("simulate: an unreachable broker is a one-line error and exit 1", "[simulate]") {
  // A loopback port nobody listens on: bound, then closed.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  socklen_t len = sizeof addr;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);

  SimulateOptions options;
  options.url = "tcp://127.0.0.1:" + std::to_string(ntohs(addr.sin_port));
  options.count = 10;
  CHECK(RunSimulate(options) == 1);

  options.qos = 7;  // callers other than the CLI are checked too
  CHECK(RunSimulate(options) == 1);
}

}  // namespace
}  // namespace sluice::agent
