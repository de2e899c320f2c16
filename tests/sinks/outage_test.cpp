// Uplink outage: the sink is down for a while, its queue in the real SQLite
// store grows up to the cap, the overflow policy applies, and when the sink
// comes back the queue drains completely, in order.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <mutex>
#include <thread>

#include "platform/dead_letter.h"
#include "platform/store.h"
#include "sinks/delivery.h"

using namespace sluice;

namespace {

// A sink with a fault switch: while down, every write fails as transient.
class SwitchableSink : public sinks::Sink {
 public:
  sinks::WriteResult Write(std::span<const Envelope> batch) override {
    if (down.load()) return {Status::Unavailable("uplink down"), {}, std::nullopt};
    std::lock_guard<std::mutex> lock(mu);
    for (const Envelope& e : batch) delivered.push_back(std::stoi(e.id));
    return {Status::Ok(), {}, std::nullopt};
  }
  std::vector<int> Delivered() {
    std::lock_guard<std::mutex> lock(mu);
    return delivered;
  }
  std::atomic<bool> down{true};
  std::mutex mu;
  std::vector<int> delivered;
};

class NoDeadLetters : public DeadLetterStore {
 public:
  Status Put(const DeadLetter&) override { return Status::Internal("unexpected dead letter"); }
};

constexpr int kRecords = 300;
constexpr int kCapRecords = 100;
constexpr size_t kBodySize = 100;

Envelope Record(int n) {
  std::string body(kBodySize, 'x');
  return {std::to_string(n), "key", body};
}

bool WaitFor(const std::function<bool()>& pred) {
  for (int i = 0; i < 30000; ++i) {  // generous: tests never fail for slowness
    if (pred()) return true;
    std::this_thread::sleep_for(Millis(1));
  }
  return pred();
}

struct Rig {
  explicit Rig(OverflowPolicy policy) {
    char tmpl[] = "/tmp/sluice-outage-XXXXXX";
    dir = mkdtemp(tmpl);
    store = std::move(*Store::Open(dir + "/sluice.db", StoreOptions{}));
    index = *store->AddQueue("up", QueueOptions{kCapRecords * kBodySize, policy});
    loop = std::make_unique<sinks::DeliveryLoop>("up", sink, *store->queue(index), dead, RealClock(),
                                                 sinks::DeliveryOptions{Millis(1), Millis(20), Millis(5)});
    thread = std::thread([this] { loop->Run(); });
  }
  ~Rig() {
    loop->Stop(RealClock().Now() + Millis(5000));
    thread.join();
    store->Close();
    std::filesystem::remove_all(dir);
  }
  Status Write(int n) {
    Commit c;
    c.outputs.resize(store->queue_count());
    c.outputs[index].push_back(Record(n));
    return store->Write(c);
  }
  QueueStats Stats() { return (*store->Stats())[0]; }

  std::string dir;
  SwitchableSink sink;
  NoDeadLetters dead;
  std::unique_ptr<Store> store;
  int index = 0;
  std::unique_ptr<sinks::DeliveryLoop> loop;
  std::thread thread;
};

std::vector<int> Range(int from, int to) {
  std::vector<int> v;
  for (int i = from; i < to; ++i) v.push_back(i);
  return v;
}

}  // namespace

TEST_CASE("outage with drop_oldest: the newest records wait, the oldest are dropped and counted") {
  Rig rig(OverflowPolicy::kDropOldest);
  for (int n = 0; n < kRecords; ++n) REQUIRE(rig.Write(n).ok());
  QueueStats s = rig.Stats();
  CHECK(s.records == kCapRecords);
  CHECK(s.bytes <= kCapRecords * kBodySize);
  CHECK(s.dropped_oldest == kRecords - kCapRecords);
  CHECK(rig.sink.Delivered().empty());
  // The delivery loop has met the outage before the uplink comes back.
  REQUIRE(WaitFor([&] { return rig.loop->counters().retried > 0; }));
  rig.sink.down = false;
  REQUIRE(WaitFor([&] { return rig.sink.Delivered().size() == kCapRecords; }));
  // What arrives is exactly the newest kCapRecords, in order: the drop counter
  // equals exactly what is missing upstream.
  CHECK(rig.sink.Delivered() == Range(kRecords - kCapRecords, kRecords));
  // The queue removes a batch just after the sink confirmed it.
  CHECK(WaitFor([&] { return rig.Stats().records == 0; }));
  CHECK(rig.Stats().delivered == kCapRecords);
}

TEST_CASE("outage with drop_newest: the oldest records wait, new ones are refused and counted") {
  Rig rig(OverflowPolicy::kDropNewest);
  for (int n = 0; n < kRecords; ++n) REQUIRE(rig.Write(n).ok());
  QueueStats s = rig.Stats();
  CHECK(s.records == kCapRecords);
  CHECK(s.dropped_newest == kRecords - kCapRecords);
  REQUIRE(WaitFor([&] { return rig.loop->counters().retried > 0; }));
  rig.sink.down = false;
  REQUIRE(WaitFor([&] { return rig.sink.Delivered().size() == kCapRecords; }));
  CHECK(rig.sink.Delivered() == Range(0, kCapRecords));
  CHECK(WaitFor([&] { return rig.Stats().records == 0; }));
}

TEST_CASE("outage with block: the writer waits at the cap and nothing is dropped") {
  Rig rig(OverflowPolicy::kBlock);
  std::atomic<int> written{0};
  std::thread producer([&] {
    for (int n = 0; n < kRecords; ++n) {
      REQUIRE(rig.Write(n).ok());
      written = n + 1;
    }
  });
  // The producer stops at the cap (one batch of slack) while the uplink is down.
  REQUIRE(WaitFor([&] { return written.load() >= kCapRecords; }));
  std::this_thread::sleep_for(Millis(200));
  CHECK(written.load() <= kCapRecords + 1);
  CHECK(rig.sink.Delivered().empty());
  rig.sink.down = false;
  producer.join();
  REQUIRE(WaitFor([&] { return rig.sink.Delivered().size() == kRecords; }));
  CHECK(rig.sink.Delivered() == Range(0, kRecords));
  QueueStats s = rig.Stats();
  CHECK(s.dropped_oldest == 0);
  CHECK(s.dropped_newest == 0);
  CHECK(s.delivered == kRecords);
}

TEST_CASE("a large backlog survives a restart and drains in order") {
  char tmpl[] = "/tmp/sluice-backlog-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  {
    auto store = std::move(*Store::Open(dir + "/sluice.db", StoreOptions{}));
    int index = *store->AddQueue("up", QueueOptions{0, OverflowPolicy::kBlock});
    Commit c;
    c.outputs.resize(store->queue_count());
    for (int n = 0; n < 20000; ++n) c.outputs[index].push_back(Record(n));
    REQUIRE(store->Write(c).ok());
  }
  auto store = std::move(*Store::Open(dir + "/sluice.db", StoreOptions{}));
  int index = *store->AddQueue("up", QueueOptions{0, OverflowPolicy::kBlock});
  SwitchableSink sink;
  sink.down = false;
  NoDeadLetters dead;
  sinks::DeliveryLoop loop("up", sink, *store->queue(index), dead, RealClock(),
                           sinks::DeliveryOptions{Millis(1), Millis(20), Millis(5)});
  std::thread t([&] { loop.Run(); });
  REQUIRE(WaitFor([&] { return sink.Delivered().size() == 20000; }));
  loop.Stop(RealClock().Now());
  t.join();
  CHECK(sink.Delivered() == Range(0, 20000));
  store->Close();
  std::filesystem::remove_all(dir);
}
