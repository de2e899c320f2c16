#include <catch2/catch.hpp>

#include <deque>
#include <mutex>
#include <thread>

#include "tests/memory_dead_letters.h"
#include "platform/dead_letter.h"
#include "platform/store.h"
#include "sinks/delivery.h"

using namespace sluice;
using sluice::sinks::WriteResult;

using sluice::testing::MemoryDeadLetters;

namespace {

// A sink whose answers the test scripts, one per Write().
class ScriptedSink : public sinks::Sink {
 public:
  WriteResult Write(std::span<const Envelope> batch) override {
    std::lock_guard<std::mutex> lock(mu);
    ++writes;
    write_times.push_back(RealClock().Now());
    std::vector<std::string> ids;
    for (const Envelope& e : batch) ids.push_back(e.id);
    batches.push_back(std::move(ids));
    WriteResult r{Status::Ok(), {}, std::nullopt};
    if (!script.empty()) {
      r = script.front();
      script.pop_front();
    }
    if (r.status.ok()) {
      for (size_t i = 0; i < batch.size(); ++i) {
        bool rejected = false;
        for (auto& rej : r.rejected) rejected |= rej.index == i;
        if (!rejected) delivered.push_back(batch[i].id);
      }
    }
    return r;
  }
  sinks::BatchLimits batch_limits() const override { return {max_batch, max_bytes, Millis(2)}; }

  std::mutex mu;
  std::vector<SteadyTime> write_times;
  std::deque<WriteResult> script;
  std::vector<std::string> delivered;
  std::vector<std::vector<std::string>> batches;  // ids handed to each Write
  int writes = 0;
  size_t max_batch = 4;
  uint64_t max_bytes = 0;
};

std::vector<Envelope> Records(int n) {
  std::vector<Envelope> v;
  for (int i = 0; i < n; ++i) v.push_back({"r" + std::to_string(i), "", "{}"});
  return v;
}

// A sink queue of an in-memory store, the same code the agent runs on disk.
struct TestQueue {
  TestQueue() {
    store = std::move(*Store::Open(":memory:", StoreOptions{}));
    queue = store->queue(*store->AddQueue("s", QueueOptions{0, OverflowPolicy::kBlock}));
  }
  SinkQueue* operator->() { return queue; }
  QueueStats Stats() {
    auto all = store->Stats();
    REQUIRE(all.ok());
    REQUIRE(all->size() == 1);
    return all->front();
  }
  SinkQueue& operator*() { return *queue; }
  std::unique_ptr<Store> store;
  SinkQueue* queue;
};

sinks::DeliveryOptions Fast() { return {Millis(1), Millis(4), Millis(5)}; }

void RunUntilDrained(sinks::DeliveryLoop& loop, SinkQueue& queue) {
  std::thread t([&] { loop.Run(); });
  for (int i = 0; i < 5000 && queue.size() > 0; ++i) std::this_thread::sleep_for(Millis(1));
  loop.Stop(RealClock().Now() + Millis(2000));
  t.join();
}

}  // namespace

TEST_CASE("delivery retries transient failures and delivers everything in order") {
  ScriptedSink sink;
  sink.script = {{Status::Unavailable("down"), {}, std::nullopt},
                 {Status::ResourceExhausted("busy"), {}, std::nullopt}};
  MemoryDeadLetters dead;
  TestQueue queue;
  REQUIRE(queue->Append(Records(10)).ok());
  sinks::DeliveryLoop loop("s", sink, *queue, dead, RealClock(), Fast());
  RunUntilDrained(loop, *queue);
  std::vector<std::string> expected;
  for (int i = 0; i < 10; ++i) expected.push_back("r" + std::to_string(i));
  CHECK(sink.delivered == expected);
  CHECK(loop.counters().delivered == 10);
  CHECK(loop.counters().retried == 2);
  CHECK(dead.letters.empty());
  CHECK(queue->size() == 0);
}

TEST_CASE("a Retry-After of 0 or in the past does not make retries faster than the backoff") {
  ScriptedSink sink;
  for (int i = 0; i < 4; ++i) sink.script.push_back({Status::ResourceExhausted("429"), {}, Millis(0)});
  MemoryDeadLetters dead;
  TestQueue queue;
  REQUIRE(queue->Append(Records(2)).ok());
  // Backoff 40, 80, 160, 160 ms, each at least half of that after jitter.
  sinks::DeliveryLoop loop("s", sink, *queue, dead, RealClock(), {Millis(40), Millis(160), Millis(5)});
  RunUntilDrained(loop, *queue);
  REQUIRE(sink.write_times.size() == 5);
  const Millis floors[] = {Millis(20), Millis(40), Millis(80), Millis(80)};
  for (size_t i = 0; i < 4; ++i) {
    CAPTURE(i);
    CHECK(sink.write_times[i + 1] - sink.write_times[i] >= floors[i]);
  }
  CHECK(sink.delivered.size() == 2);
}

TEST_CASE("a Retry-After longer than the backoff is waited for") {
  ScriptedSink sink;
  sink.script.push_back({Status::Unavailable("503"), {}, Millis(300)});
  MemoryDeadLetters dead;
  TestQueue queue;
  REQUIRE(queue->Append(Records(1)).ok());
  sinks::DeliveryLoop loop("s", sink, *queue, dead, RealClock(), Fast());
  RunUntilDrained(loop, *queue);
  REQUIRE(sink.write_times.size() == 2);
  CHECK(sink.write_times[1] - sink.write_times[0] >= Millis(300));
}

TEST_CASE("a permanent failure dead-letters the batch instead of blocking the queue") {
  ScriptedSink sink;
  sink.script = {{Status::InvalidArgument("400 bad request"), {}, std::nullopt}};
  MemoryDeadLetters dead;
  TestQueue queue;
  REQUIRE(queue->Append(Records(6)).ok());
  sinks::DeliveryLoop loop("cloud", sink, *queue, dead, RealClock(), Fast());
  RunUntilDrained(loop, *queue);
  REQUIRE(dead.letters.size() == 4);  // the first batch of max_batch_records
  CHECK(dead.letters[0].origin == "sink");
  CHECK(dead.letters[0].name == "cloud");
  CHECK(dead.letters[0].reason.find("400 bad request") != std::string::npos);
  CHECK(sink.delivered == std::vector<std::string>{"r4", "r5"});
  CHECK(loop.counters().dead_lettered == 4);
  CHECK(loop.counters().delivered == 2);
  CHECK_FALSE(loop.health().refusing);  // the last batch went through
  // The queue's durable figures (`sluice buffer stats`, the metrics) agree.
  QueueStats stats = queue.Stats();
  CHECK(stats.delivered == 2);
  CHECK(stats.dead_lettered == 4);
}

TEST_CASE("records refused one by one are dead-lettered, the rest delivered") {
  ScriptedSink sink;
  sink.script = {{Status::Ok(), {{1, Status::InvalidArgument("too large")}}, std::nullopt}};
  MemoryDeadLetters dead;
  TestQueue queue;
  REQUIRE(queue->Append(Records(3)).ok());
  sinks::DeliveryLoop loop("s", sink, *queue, dead, RealClock(), Fast());
  RunUntilDrained(loop, *queue);
  CHECK(sink.delivered == std::vector<std::string>{"r0", "r2"});
  REQUIRE(dead.letters.size() == 1);
  CHECK(dead.letters[0].reason.find("too large") != std::string::npos);
  CHECK(loop.health().refusing);  // until a batch goes through whole
  CHECK_FALSE(loop.health().failing);
  QueueStats stats = queue.Stats();
  CHECK(stats.delivered == 2);
  CHECK(stats.dead_lettered == 1);
}

TEST_CASE("stop gives up after the drain deadline and leaves records queued") {
  ScriptedSink sink;
  for (int i = 0; i < 100000; ++i) sink.script.push_back({Status::Unavailable("down"), {}, std::nullopt});
  MemoryDeadLetters dead;
  TestQueue queue;
  REQUIRE(queue->Append(Records(3)).ok());
  sinks::DeliveryLoop loop("s", sink, *queue, dead, RealClock(), Fast());
  std::thread t([&] { loop.Run(); });
  while (loop.counters().retried < 3) std::this_thread::sleep_for(Millis(1));
  loop.Stop(RealClock().Now() + Millis(20));
  t.join();  // returns although the sink never recovers
  CHECK(queue->size() == 3);
  CHECK(sink.delivered.empty());
}

TEST_CASE("a failed batch is retried exactly as it was, even when more records arrived") {
  ScriptedSink sink;
  sink.script = {{Status::Unavailable("503"), {}, std::nullopt}};
  MemoryDeadLetters dead;
  TestQueue queue;
  REQUIRE(queue->Append(Records(2)).ok());
  sinks::DeliveryLoop loop("s", sink, *queue, dead, RealClock(), Fast());
  std::thread t([&] { loop.Run(); });
  while (loop.counters().retried < 1) std::this_thread::sleep_for(Millis(1));
  REQUIRE(queue->Append({{"late", "", "{}"}}).ok());
  for (int i = 0; i < 5000 && queue->size() > 0; ++i) std::this_thread::sleep_for(Millis(1));
  loop.Stop(RealClock().Now() + Millis(2000));
  t.join();
  REQUIRE(sink.batches.size() >= 3);
  CHECK(sink.batches[0] == std::vector<std::string>{"r0", "r1"});
  CHECK(sink.batches[1] == std::vector<std::string>{"r0", "r1"});
  CHECK(sink.delivered == std::vector<std::string>{"r0", "r1", "late"});
}

TEST_CASE("batches respect the sink's byte limit, and a record larger than it goes alone") {
  ScriptedSink sink;
  sink.max_batch = 100;
  sink.max_bytes = 25;  // ten-byte bodies plus a separator: two per batch
  MemoryDeadLetters dead;
  TestQueue queue;
  std::vector<Envelope> records;
  for (int i = 0; i < 5; ++i) records.push_back({"r" + std::to_string(i), "", std::string(10, 'x')});
  records.push_back({"big", "", std::string(100, 'x')});
  REQUIRE(queue->Append(records).ok());
  sinks::DeliveryLoop loop("s", sink, *queue, dead, RealClock(), Fast());
  RunUntilDrained(loop, *queue);
  std::vector<std::vector<std::string>> expected = {{"r0", "r1"}, {"r2", "r3"}, {"r4"}, {"big"}};
  CHECK(sink.batches == expected);
}

TEST_CASE("health tells the last success and the last error") {
  ScriptedSink sink;
  sink.script = {{Status::Unavailable("connection refused"), {}, std::nullopt}};
  MemoryDeadLetters dead;
  TestQueue queue;
  sinks::DeliveryLoop loop("s", sink, *queue, dead, RealClock(), Fast());
  CHECK(loop.health().last_success_ms == 0);
  CHECK_FALSE(loop.health().connected.has_value());
  REQUIRE(queue->Append(Records(1)).ok());
  RunUntilDrained(loop, *queue);
  sinks::SinkHealth h = loop.health();
  CHECK(h.last_success_ms > 0);
  CHECK(h.last_error.find("connection refused") != std::string::npos);
  CHECK(h.last_error_ms > 0);
  CHECK_FALSE(h.failing);
}
