// The MQTT sink against a real mosquitto: records republished on their
// rendered topics, byte for byte, and kept queued while the broker is away.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <thread>

#include "tests/memory_dead_letters.h"
#include "platform/dead_letter.h"
#include "platform/mqtt_publisher.h"
#include "platform/store.h"
#include "sinks/delivery.h"
#include "sinks/sink.h"
#include "tests/integration/harness.h"

using namespace sluice;
using namespace sluice::testing;
using namespace std::chrono_literals;

namespace {

std::string Body(int n) {
  return R"({"id":"agg:)" + std::to_string(n) + R"(","agent":"gw","pipeline":"site_10s","kind":"aggregate",)" +
         R"("key":{"site":"site-)" + std::to_string(n % 3) + R"("},"values":{"n":)" + std::to_string(n) + "}}";
}

// A sink with its queue in a real store and its delivery loop running.
struct Rig {
  Rig(const std::string& url, const std::string& topic, int qos = 1) {
    store = std::move(*Store::Open(dir.File("sluice.db"), StoreOptions{}));
    index = *store->AddQueue("up", QueueOptions{0, OverflowPolicy::kBlock});
    config::SinkConfig c;
    c.name = "up";
    c.type = "mqtt";
    config::MqttSinkConfig m;
    m.url = url;
    m.topic = topic;
    m.qos = qos;
    m.client_id = "sluice-test-sink";
    c.spec = m;
    sinks::SinkRegistry registry;
    sinks::RegisterBuiltins(registry);
    auto created = registry.Create(c);
    REQUIRE(created.ok());
    sink = std::move(*created);
    loop = std::make_unique<sinks::DeliveryLoop>("up", *sink, *store->queue(index), dead,
                                                 RealClock(),
                                                 sinks::DeliveryOptions{Millis(50), Millis(500), Millis(50)});
    thread = std::thread([this] { loop->Run(); });
  }
  ~Rig() {
    loop->Stop(RealClock().Now() + Millis(2000));
    thread.join();
    store->Close();
  }
  void Append(int from, int to) {
    Commit c;
    c.outputs.resize(store->queue_count());
    for (int n = from; n < to; ++n) c.outputs[index].push_back({"agg:" + std::to_string(n), "", Body(n)});
    REQUIRE(store->Write(c).ok());
  }
  size_t queued() { return store->queue(index)->size(); }

  TempDir dir;
  MemoryDeadLetters dead;
  std::unique_ptr<Store> store;
  int index = 0;
  std::unique_ptr<sinks::Sink> sink;
  std::unique_ptr<sinks::DeliveryLoop> loop;
  std::thread thread;
};

// Reads until `n` messages arrived or nothing came for 30 s.
std::vector<TestMessage> Receive(TestSubscriber& sub, size_t n) {
  std::vector<TestMessage> got;
  while (got.size() < n) {
    auto m = sub.Next(30000ms);
    if (!m) break;
    got.push_back(std::move(*m));
  }
  return got;
}

}  // namespace

TEST_CASE("mqtt sink republishes every record on its rendered topic, body unchanged, in order") {
  const int qos = GENERATE(0, 1, 2);
  CAPTURE(qos);
  Mosquitto broker;
  broker.Start();
  TestSubscriber sub(broker.url(), "results/#", 1);
  Rig rig(broker.url(), "results/{pipeline}/{site}", qos);
  // At QoS 0 the broker may drop what its subscriber has not taken yet
  // (max_queued_messages): fewer records, which a live subscriber keeps up with.
  const int kRecords = qos == 0 ? 500 : 3000;
  rig.Append(0, kRecords);

  std::vector<TestMessage> got = Receive(sub, kRecords);
  REQUIRE(got.size() == static_cast<size_t>(kRecords));
  // Per topic (= per key) the records arrive in the order they were queued.
  std::map<std::string, int> last_of_topic;
  for (const TestMessage& m : got) {
    const int n = std::stoi(m.payload.substr(m.payload.find(R"("n":)") + 4));
    CHECK(m.payload == Body(n));
    CHECK(m.topic == "results/site_10s/site-" + std::to_string(n % 3));
    auto [it, inserted] = last_of_topic.emplace(m.topic, n);
    if (!inserted) {
      CHECK(n > it->second);
      it->second = n;
    }
  }
  REQUIRE(WaitUntil([&] { return rig.queued() == 0; }, 30000ms));
  CHECK(rig.loop->counters().delivered == static_cast<uint64_t>(kRecords));
  CHECK(rig.loop->health().connected == std::optional<bool>(true));
  CHECK(rig.dead.size() == 0);
}

TEST_CASE("mqtt sink keeps records queued while the broker is down and delivers them after") {
  MosquittoOptions options;
  options.persistence = true;       // the subscriber's session survives the restart
  options.max_queued_messages = 100000;
  Mosquitto broker(options);
  broker.Start();
  {
    // Subscribe once with a persistent session, then go away: the broker
    // queues everything for it from now on.
    TestSubscriber sub(broker.url(), "results/#", 1, "outage-reader", true);
  }
  broker.Stop();

  Rig rig(broker.url(), "results/{site}");
  rig.Append(0, 500);
  REQUIRE(WaitUntil([&] { return rig.loop->counters().retried >= 2; }, 60000ms));
  CHECK(rig.queued() == 500);
  CHECK(rig.loop->counters().delivered == 0);
  CHECK(rig.loop->health().connected == std::optional<bool>(false));
  CHECK(rig.loop->health().last_error.find("cannot connect") != std::string::npos);

  broker.Start();
  REQUIRE(WaitUntil([&] { return rig.queued() == 0; }, 60000ms));
  TestSubscriber sub(broker.url(), "results/#", 1, "outage-reader", true);
  std::vector<TestMessage> got = Receive(sub, 500);
  REQUIRE(got.size() == 500);
  std::set<std::string> ids;
  for (const TestMessage& m : got) ids.insert(m.payload);
  CHECK(ids.size() == 500);
  CHECK(rig.loop->counters().delivered == 500);
}

TEST_CASE("mqtt sink dead-letters a record its topic template cannot be filled from") {
  Mosquitto broker;
  broker.Start();
  TestSubscriber sub(broker.url(), "results/#", 1);
  Rig rig(broker.url(), "results/{device}");  // aggregates by site have no device
  Commit c;
  c.outputs.resize(rig.store->queue_count());
  c.outputs[rig.index].push_back({"a", "", Body(1)});
  c.outputs[rig.index].push_back(
      {"b", "", R"({"id":"b","kind":"reading","fields":{"device":"dev-7"}})"});
  REQUIRE(rig.store->Write(c).ok());
  auto m = sub.Next(30000ms);
  REQUIRE(m);
  CHECK(m->topic == "results/dev-7");
  REQUIRE(WaitUntil([&] { return rig.dead.size() == 1; }, 30000ms));
  CHECK(rig.dead.letters[0].reason.find("{device}") != std::string::npos);
  CHECK(rig.dead.letters[0].payload == Body(1));
}

TEST_CASE("mqtt sink finds its idle connection gone after a broker restart and delivers on a new one") {
  MosquittoOptions options;
  options.persistence = true;  // the subscriber's session survives the restart
  options.max_queued_messages = 100000;
  Mosquitto broker(options);
  broker.Start();
  {
    TestSubscriber sub(broker.url(), "results/#", 1, "restart-reader", true);
  }
  Rig rig(broker.url(), "results/{site}", 2);
  rig.Append(0, 50);
  REQUIRE(WaitUntil([&] { return rig.loop->counters().delivered == 50; }, 30000ms));

  // The connection dies while the sink has nothing to send: its keep-alive
  // sees it (health), and the next batch makes a new one.
  broker.Stop();
  REQUIRE(WaitUntil([&] { return rig.loop->health().connected == std::optional<bool>(false); },
                    30000ms));
  broker.Start();
  rig.Append(50, 100);
  REQUIRE(WaitUntil([&] { return rig.queued() == 0; }, 60000ms));
  CHECK(rig.loop->counters().delivered == 100);
  CHECK(rig.dead.size() == 0);

  TestSubscriber sub(broker.url(), "results/#", 1, "restart-reader", true);
  std::vector<TestMessage> got = Receive(sub, 100);
  std::set<std::string> bodies;
  for (const TestMessage& m : got) bodies.insert(m.payload);
  for (int n = 0; n < 100; ++n) CHECK(bodies.count(Body(n)) == 1);
}

TEST_CASE("mqtt sink dead-letters a record whose topic a broker would hang up on") {
  Mosquitto broker;
  broker.Start();
  TestSubscriber sub(broker.url(), "results/#", 1);
  Rig rig(broker.url(), "results/{device}");
  Commit c;
  c.outputs.resize(rig.store->queue_count());
  c.outputs[rig.index].push_back(
      {"long", "", R"({"id":"long","kind":"reading","fields":{"device":")" + std::string(70000, 'x') + R"("}})"});
  c.outputs[rig.index].push_back({"tab", "", R"({"id":"tab","kind":"reading","fields":{"device":"dev\t7"}})"});
  c.outputs[rig.index].push_back({"b", "", R"({"id":"b","kind":"reading","fields":{"device":"dev-7"}})"});
  REQUIRE(rig.store->Write(c).ok());
  auto m = sub.Next(30000ms);
  REQUIRE(m);
  CHECK(m->topic == "results/dev-7");
  REQUIRE(WaitUntil([&] { return rig.dead.size() == 2; }, 30000ms));
  CHECK(rig.dead.letters[0].reason.find("65,535") != std::string::npos);
  CHECK(rig.dead.letters[1].reason.find("U+0009") != std::string::npos);
  CHECK(rig.loop->counters().delivered == 1);
  REQUIRE(WaitUntil([&] { return rig.queued() == 0; }, 30000ms));
}

TEST_CASE("the publisher's keep-alive holds an idle connection the broker would otherwise drop") {
  Mosquitto broker;
  broker.Start();
  MqttPublisher::Options options;
  options.url = broker.url();
  options.connect.client_id = "keep-alive-test";
  // The broker drops a client after 1.5 keep-alives without a packet
  // (mosquitto 2.0 checks now and then: 3-7 s after the last one here).
  options.connect.keep_alive_s = 2;
  auto kept = MqttPublisher::Connect(options);
  REQUIRE(kept.ok());
  options.connect.client_id = "left-alone-test";
  auto left = MqttPublisher::Connect(options);
  REQUIRE(left.ok());

  // Twelve seconds idle: one is kept alive every 100 ms, the other not.
  for (int i = 0; i < 120; ++i) {
    REQUIRE((*kept)->KeepAlive().ok());
    std::this_thread::sleep_for(100ms);
  }
  INFO(ReadFile(broker.log_path()));
  CHECK((*left)->KeepAlive().code() == StatusCode::kUnavailable);

  // The kept connection still publishes, and the broker answers.
  TestSubscriber sub(broker.url(), "kept/#", 1);
  REQUIRE((*kept)->Publish("kept/1", "{}", 1).ok());
  CHECK((*kept)->Await(0, RealClock().Now() + 10000ms).ok());
  auto m = sub.Next(30000ms);
  REQUIRE(m);
  CHECK(m->topic == "kept/1");
}
