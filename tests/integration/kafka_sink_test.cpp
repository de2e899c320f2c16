// The Kafka sink end to end inside one process: records committed to a real
// outbox (SQLite on disk) → DeliveryLoop → KafkaSink → librdkafka's mock
// cluster on loopback TCP → read back by a real consumer.
//
// Expected values are built by the test from the record number, never taken
// from the code under test. Every wait is a generous bounded loop: a slow
// machine makes a test slower, not red.
#include <catch2/catch.hpp>

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/memory_dead_letters.h"
#include "config/config.h"
#include "platform/dead_letter.h"
#include "platform/store.h"
#include "sinks/delivery.h"
#include "sinks/sink.h"
#include "tests/integration/harness.h"
#include "tests/integration/kafka_mock.h"

using namespace std::chrono_literals;
using sluice::testing::KafkaMessage;
using sluice::testing::KafkaMock;
using sluice::testing::TempDir;
using sluice::testing::WaitUntil;

namespace sluice {
using sluice::testing::MemoryDeadLetters;

namespace {

constexpr int kSites = 5;

std::string Site(int n) { return "s-" + std::to_string(n % kSites); }
std::string RecordId(int n) { return "p/" + Site(n) + "/" + std::to_string(n); }

// An aggregate record as operators/ writes it (~200 bytes).
std::string AggregateBody(int n) {
  const int64_t start = 1700000000000 + int64_t{60000} * n;
  return "{\"id\":\"" + RecordId(n) + "\",\"agent\":\"gw\",\"pipeline\":\"p\",\"kind\":\"aggregate\"," +
         "\"key\":{\"site\":\"" + Site(n) + "\"},\"window\":{\"start\":" + std::to_string(start) +
         ",\"end\":" + std::to_string(start + 60000) + "},\"values\":{\"temp_avg\":21.5,\"n\":" +
         std::to_string(n) + "}}";
}

Envelope Aggregate(int n) { return Envelope{RecordId(n), Site(n), AggregateBody(n)}; }

// The record number back from a sluice-id ("p/s-3/42" → 42).
int NumberOf(const std::string& id) { return std::stoi(id.substr(id.rfind('/') + 1)); }

config::KafkaSinkConfig BaseConfig(const KafkaMock& kafka, const std::string& topic) {
  config::KafkaSinkConfig c;
  c.brokers = kafka.BrokerAddresses();
  c.topic = topic;
  return c;
}

// Outbox + loop + sink, torn down in the right order.
class Rig {
 public:
  explicit Rig(const config::KafkaSinkConfig& kafka_config) {
    store_ = std::move(*Store::Open(dir_.File("sluice.db"), StoreOptions{}));
    queue_index_ = *store_->AddQueue("cloud", QueueOptions{0, OverflowPolicy::kBlock});
    sinks::SinkRegistry registry;
    sinks::RegisterBuiltins(registry);
    config::SinkConfig sink_config;
    sink_config.name = "cloud";
    sink_config.type = "kafka";
    sink_config.spec = kafka_config;
    StatusOr<std::unique_ptr<sinks::Sink>> sink = registry.Create(sink_config);
    INFO(sink.status().ToString());
    REQUIRE(sink.ok());
    sink_ = std::move(*sink);
    loop_ = std::make_unique<sinks::DeliveryLoop>(
        "cloud", *sink_, *store_->queue(queue_index_), dead_letters_, RealClock(),
        sinks::DeliveryOptions{Millis(50), Millis(1000), Millis(20)});
    thread_ = std::thread([this] { loop_->Run(); });
  }

  ~Rig() {
    StopLoop(RealClock().Now() + Millis(5000));
    sink_.reset();
    store_->Close();
  }

  void StopLoop(SteadyTime drain_deadline) {
    if (!thread_.joinable()) return;
    loop_->Stop(drain_deadline);
    thread_.join();
  }

  // Commits records first..first+count-1 in commits of 500, as a pipeline would.
  void Append(int first, int count) {
    for (int n = first; n < first + count;) {
      Commit c;
      c.outputs.resize(store_->queue_count());
      for (int i = 0; i < 500 && n < first + count; ++i, ++n) {
        c.outputs[queue_index_].push_back(Aggregate(n));
      }
      REQUIRE(store_->Write(c).ok());
    }
  }
  void AppendEnvelope(const Envelope& e) {
    Commit c;
    c.outputs.resize(store_->queue_count());
    c.outputs[queue_index_].push_back(e);
    REQUIRE(store_->Write(c).ok());
  }

  size_t queued() { return store_->queue(queue_index_)->size(); }
  uint64_t delivered() const { return loop_->counters().delivered.load(); }
  uint64_t retried() const { return loop_->counters().retried.load(); }
  uint64_t dead_lettered() const { return loop_->counters().dead_lettered.load(); }
  sinks::DeliveryLoop& loop() { return *loop_; }
  sinks::Sink& sink() { return *sink_; }
  MemoryDeadLetters& dead_letters() { return dead_letters_; }

 private:
  TempDir dir_;
  std::unique_ptr<Store> store_;
  int queue_index_ = 0;
  MemoryDeadLetters dead_letters_;
  std::unique_ptr<sinks::Sink> sink_;
  std::unique_ptr<sinks::DeliveryLoop> loop_;
  std::thread thread_;
};

// Distinct sluice-ids among `messages`, each checked against the record it
// names: byte-identical body, and the key the test expects.
std::set<int> CheckMessages(const std::vector<KafkaMessage>& messages,
                            const std::function<std::optional<std::string>(int)>& expected_key) {
  std::set<int> seen;
  for (const KafkaMessage& m : messages) {
    const std::optional<std::string> id = m.header("sluice-id");
    REQUIRE(id.has_value());
    const int n = NumberOf(*id);
    CHECK(*id == RecordId(n));
    CHECK(m.value == AggregateBody(n));
    CHECK(m.key == expected_key(n));
    seen.insert(n);
  }
  return seen;
}

std::set<int> Range(int from, int to) {
  std::set<int> s;
  for (int n = from; n < to; ++n) s.insert(n);
  return s;
}

}  // namespace

TEST_CASE("10,000 aggregates go outbox → kafka and come back byte for byte",
          "[kafka][integration]") {
  KafkaMock kafka(3);
  kafka.CreateTopic("telemetry", 4);
  config::KafkaSinkConfig c = BaseConfig(kafka, "telemetry");
  c.key = "{site}";
  c.compression = "lz4";
  Rig rig(c);
  constexpr int kRecords = 10000;
  rig.Append(0, kRecords);

  REQUIRE(WaitUntil([&] { return rig.delivered() == kRecords; }, 180s));
  CHECK(WaitUntil([&] { return rig.queued() == 0; }, 30s));  // removed just after the count
  CHECK(rig.dead_lettered() == 0);
  CHECK(rig.sink().connected() == std::optional<bool>(true));

  const std::vector<KafkaMessage> got = kafka.ReadTopic("telemetry", kRecords, 180s);
  const std::set<int> ids =
      CheckMessages(got, [](int n) { return std::optional<std::string>(Site(n)); });
  CHECK(ids == Range(0, kRecords));
  // A clean run sends each record once.
  CHECK(got.size() == kRecords);
  // Same key, same partition (the point of keying by site).
  std::map<std::string, std::set<int32_t>> partitions_by_key;
  for (const KafkaMessage& m : got) partitions_by_key[*m.key].insert(m.partition);
  CHECK(partitions_by_key.size() == kSites);
  for (const auto& [key, partitions] : partitions_by_key) {
    INFO(key);
    CHECK(partitions.size() == 1);
  }
}

TEST_CASE("records wait in the outbox while every broker is down, then all arrive in order",
          "[kafka][integration]") {
  KafkaMock kafka(3);
  kafka.CreateTopic("telemetry", 3);
  config::KafkaSinkConfig c = BaseConfig(kafka, "telemetry");  // key: the envelope's
  c.timeout = Millis(2000);  // attempts fail (and are retried) quickly while down
  Rig rig(c);
  rig.Append(0, 100);
  REQUIRE(WaitUntil([&] { return rig.delivered() == 100; }, 120s));

  kafka.SetAllBrokersDown();
  rig.Append(100, 900);
  // The loop meets the outage more than once; nothing counts as delivered.
  REQUIRE(WaitUntil([&] { return rig.retried() >= 2; }, 120s));
  CHECK(rig.queued() > 0);
  CHECK(rig.delivered() == 100);
  CHECK(rig.dead_lettered() == 0);
  CHECK(WaitUntil([&] { return rig.sink().connected() == std::optional<bool>(false); }, 60s));

  kafka.SetAllBrokersUp();
  REQUIRE(WaitUntil([&] { return rig.delivered() == 1000; }, 180s));
  CHECK(WaitUntil([&] { return rig.queued() == 0; }, 30s));  // removed just after the count
  CHECK(rig.dead_lettered() == 0);
  CHECK(rig.sink().connected() == std::optional<bool>(true));

  const std::vector<KafkaMessage> got = kafka.ReadTopic("telemetry", 1000, 180s);
  const std::set<int> ids =
      CheckMessages(got, [](int n) { return std::optional<std::string>(Site(n)); });
  CHECK(ids == Range(0, 1000));  // none lost
  // Per key, the first copy of each record comes in record order (a retried
  // batch may add later duplicates, which carry the same sluice-id).
  std::map<std::string, std::vector<int>> first_seen_by_key;
  std::set<int> seen;
  for (const KafkaMessage& m : got) {
    const int n = NumberOf(*m.header("sluice-id"));
    if (seen.insert(n).second) first_seen_by_key[*m.key].push_back(n);
  }
  REQUIRE(first_seen_by_key.size() == kSites);
  for (const auto& [key, numbers] : first_seen_by_key) {
    INFO(key);
    CHECK(std::is_sorted(numbers.begin(), numbers.end()));
    CHECK(numbers.size() == 1000 / kSites);
  }
  WARN("duplicates after the outage: " << got.size() - ids.size());
  // Records a report confirmed are not sent again when the batch is retried:
  // at most one attempt's worth of records is in flight when the brokers
  // come back, so duplicates stay far below the 900 queued meanwhile.
  CHECK(got.size() - ids.size() < 900);
}

TEST_CASE("a retriable produce error is retried until everything is delivered",
          "[kafka][integration]") {
  KafkaMock kafka(1);
  kafka.CreateTopic("telemetry", 2);
  kafka.PushProduceErrors({"NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS", "NOT_ENOUGH_REPLICAS",
                           "REQUEST_TIMED_OUT"});
  Rig rig(BaseConfig(kafka, "telemetry"));
  rig.Append(0, 300);
  REQUIRE(WaitUntil([&] { return rig.delivered() == 300; }, 180s));
  CHECK(rig.dead_lettered() == 0);
  CHECK(WaitUntil([&] { return rig.queued() == 0; }, 30s));  // removed just after the count
  const std::vector<KafkaMessage> got = kafka.ReadTopic("telemetry", 300, 180s);
  CHECK(CheckMessages(got, [](int n) { return std::optional<std::string>(Site(n)); }) ==
        Range(0, 300));
}

// Pushes one permanent `error` on the next Produce request, then writes 100
// records and 50 more: every record ends up either upstream (with the right
// body) or dead-lettered naming the error, never both, and the queue drains.
// Returns the numbers of the dead-lettered records.
std::set<int> RunWithPermanentProduceError(const std::string& error) {
  KafkaMock kafka(1);
  kafka.CreateTopic("telemetry", 2);
  Rig rig(BaseConfig(kafka, "telemetry"));
  // Connected and idle first, so that the error hits a Produce request of
  // the records below (not one made before the test starts them).
  rig.Append(0, 10);
  REQUIRE(WaitUntil([&] { return rig.delivered() == 10; }, 120s));

  kafka.PushProduceErrors({error});
  rig.Append(10, 100);
  REQUIRE(WaitUntil([&] { return rig.delivered() + rig.dead_lettered() == 110; }, 180s));
  REQUIRE(rig.dead_lettered() > 0);  // the failed request held at least one record
  // The queue is not blocked: later records are handled too.
  rig.Append(110, 50);
  REQUIRE(WaitUntil([&] { return rig.delivered() + rig.dead_lettered() == 160; }, 180s));
  CHECK(WaitUntil([&] { return rig.queued() == 0; }, 30s));  // removed just after the count

  const std::vector<DeadLetter> letters = rig.dead_letters().Letters();
  std::set<int> dead;
  for (const DeadLetter& d : letters) {
    CHECK(d.origin == "sink");
    CHECK(d.name == "cloud");
    CHECK_THAT(d.reason, Catch::Contains(error));
    const int n = nlohmann::json::parse(d.payload).at("values").at("n").get<int>();
    CHECK(d.payload == AggregateBody(n));
    dead.insert(n);
  }
  CHECK(dead.size() == letters.size());
  CHECK(rig.dead_lettered() == dead.size());

  const size_t expected_delivered = 160 - dead.size();
  const std::vector<KafkaMessage> got = kafka.ReadTopic("telemetry", expected_delivered, 180s);
  const std::set<int> delivered =
      CheckMessages(got, [](int n) { return std::optional<std::string>(Site(n)); });
  CHECK(delivered.size() == expected_delivered);
  std::set<int> all = delivered;
  all.insert(dead.begin(), dead.end());
  CHECK(all == Range(0, 160));
  for (int n : dead) {
    INFO(n);
    CHECK(delivered.count(n) == 0);
  }
  return dead;
}

TEST_CASE("a permanent produce error dead-letters that request's records, the rest go through",
          "[kafka][integration]") {
  const std::set<int> dead = RunWithPermanentProduceError("MSG_SIZE_TOO_LARGE");
  // Only records of the failed request: none of those written afterwards.
  REQUIRE_FALSE(dead.empty());
  CHECK(*dead.rbegin() < 110);
  CHECK(*dead.begin() >= 10);
}

TEST_CASE("topic authorization failure dead-letters records to that topic, the queue drains",
          "[kafka][integration]") {
  // librdkafka puts the topic in an error state after the broker's refusal
  // and fails every record to it until its next metadata refresh, so more
  // than the failed request's records may be dead-lettered: all with the
  // reason, none lost, none both delivered and dead-lettered.
  const std::set<int> dead = RunWithPermanentProduceError("TOPIC_AUTHORIZATION_FAILED");
  WARN("records dead-lettered after one TOPIC_AUTHORIZATION_FAILED: " << dead.size());
}

TEST_CASE("a record larger than message.max.bytes is dead-lettered, the rest delivered",
          "[kafka][integration]") {
  KafkaMock kafka(1);
  kafka.CreateTopic("telemetry", 1);
  config::KafkaSinkConfig c = BaseConfig(kafka, "telemetry");
  c.properties["message.max.bytes"] = config::Secret("20000");
  Rig rig(c);
  rig.Append(0, 20);
  Envelope big = Aggregate(20);
  big.body.insert(big.body.size() - 1, ",\"pad\":\"" + std::string(50000, 'x') + "\"");
  rig.AppendEnvelope(big);
  rig.Append(21, 20);
  REQUIRE(WaitUntil([&] { return rig.delivered() + rig.dead_lettered() == 41; }, 120s));
  CHECK(rig.dead_lettered() == 1);
  const std::vector<DeadLetter> letters = rig.dead_letters().Letters();
  REQUIRE(letters.size() == 1);
  CHECK_THAT(letters[0].reason, Catch::Contains("MSG_SIZE_TOO_LARGE"));
  CHECK(letters[0].payload == big.body);

  const std::vector<KafkaMessage> got = kafka.ReadTopic("telemetry", 40, 120s);
  std::set<int> expected = Range(0, 41);
  expected.erase(20);
  CHECK(CheckMessages(got, [](int n) { return std::optional<std::string>(Site(n)); }) ==
        expected);
  // One partition: the order of the records is the order they were queued.
  std::vector<int> order;
  for (const KafkaMessage& m : got) order.push_back(NumberOf(*m.header("sluice-id")));
  CHECK(std::is_sorted(order.begin(), order.end()));
}

TEST_CASE("a record whose topic template cannot be rendered is dead-lettered",
          "[kafka][integration]") {
  KafkaMock kafka(1);
  kafka.CreateTopic("p", 1);
  config::KafkaSinkConfig c = BaseConfig(kafka, "{pipeline}");
  c.key = "{site}";
  Rig rig(c);
  rig.Append(0, 5);
  Envelope no_pipeline{"np/1", "k", R"({"id":"np/1","agent":"gw","kind":"aggregate","key":{"site":"s-9"}})"};
  Envelope bad_topic{"bt/1", "k",
                     R"({"id":"bt/1","agent":"gw","pipeline":"plant 7","kind":"aggregate","key":{"site":"s-9"}})"};
  Envelope no_key{"nk/1", "k", R"({"id":"nk/1","agent":"gw","pipeline":"p","kind":"aggregate"})"};
  rig.AppendEnvelope(no_pipeline);
  rig.AppendEnvelope(bad_topic);
  rig.AppendEnvelope(no_key);
  rig.Append(5, 5);
  REQUIRE(WaitUntil([&] { return rig.delivered() + rig.dead_lettered() == 13; }, 120s));
  CHECK(rig.dead_lettered() == 3);
  std::map<std::string, std::string> reason_by_payload;
  for (const DeadLetter& d : rig.dead_letters().Letters()) reason_by_payload[d.payload] = d.reason;
  REQUIRE(reason_by_payload.size() == 3);
  CHECK_THAT(reason_by_payload[no_pipeline.body], Catch::Contains("INVALID_ARGUMENT") &&
                                                      Catch::Contains("pipeline"));
  CHECK_THAT(reason_by_payload[bad_topic.body], Catch::Contains("'plant 7'") &&
                                                    Catch::Contains("not a valid Kafka topic"));
  CHECK_THAT(reason_by_payload[no_key.body], Catch::Contains("site"));

  const std::vector<KafkaMessage> got = kafka.ReadTopic("p", 10, 120s);
  CHECK(CheckMessages(got, [](int n) { return std::optional<std::string>(Site(n)); }) ==
        Range(0, 10));
}

TEST_CASE("Abort makes a write stuck on a dead cluster return, and the batch stays queued",
          "[kafka][integration]") {
  KafkaMock kafka(1);
  kafka.CreateTopic("telemetry", 1);
  config::KafkaSinkConfig c = BaseConfig(kafka, "telemetry");
  c.timeout = Millis(600000);  // a write would wait 10 minutes for its reports
  Rig rig(c);
  rig.Append(0, 10);
  REQUIRE(WaitUntil([&] { return rig.delivered() == 10; }, 120s));

  kafka.SetAllBrokersDown();
  rig.Append(10, 200);
  // The loop has picked the batch up and is waiting for reports.
  REQUIRE(WaitUntil([&] { return rig.sink().connected() == std::optional<bool>(false); }, 60s));
  rig.loop().Abort();
  std::atomic<bool> stopped{false};
  std::thread stopper([&] {
    rig.StopLoop(RealClock().Now());
    stopped = true;
  });
  // Far less than the 10 minutes the write would otherwise wait.
  const bool returned = WaitUntil([&] { return stopped.load(); }, 60s);
  if (!returned) kafka.SetAllBrokersUp();  // unstick it rather than hang the suite
  stopper.join();
  CHECK(returned);
  CHECK(rig.queued() == 200);
  CHECK(rig.delivered() == 10);
  CHECK(rig.dead_lettered() == 0);
  // The sink's destructor (in ~Rig) must not wait for the dead cluster either.
}

TEST_CASE("an unknown librdkafka property is refused at creation, naming the sink not the value",
          "[kafka][integration]") {
  KafkaMock kafka(1);
  sinks::SinkRegistry registry;
  sinks::RegisterBuiltins(registry);
  config::SinkConfig sink_config;
  sink_config.name = "cloud";
  sink_config.type = "kafka";
  config::KafkaSinkConfig c = BaseConfig(kafka, "telemetry");
  c.properties["no.such.property"] = config::Secret("s3cr3t-value");
  sink_config.spec = c;
  StatusOr<std::unique_ptr<sinks::Sink>> sink = registry.Create(sink_config);
  REQUIRE_FALSE(sink.ok());
  const std::string message = sink.status().ToString();
  INFO(message);
  CHECK(sink.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(message, Catch::Contains("sink 'cloud'") && Catch::Contains("no.such.property"));
  CHECK(message.find("s3cr3t-value") == std::string::npos);

  c.properties.clear();
  c.properties["linger.ms"] = config::Secret("not-a-number-secret");
  sink_config.spec = c;
  sink = registry.Create(sink_config);
  REQUIRE_FALSE(sink.ok());
  INFO(sink.status().ToString());
  CHECK_THAT(sink.status().ToString(), Catch::Contains("linger.ms"));
  CHECK(sink.status().ToString().find("not-a-number-secret") == std::string::npos);
}

}  // namespace sluice
