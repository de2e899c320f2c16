// The Kafka sink's throughput: ~200-byte aggregate records committed to the
// durable outbox (SQLite on a real disk), drained by the DeliveryLoop through
// KafkaSink (idempotent producer, acks=all, batches of the sink's
// max_records) into librdkafka's mock cluster (3 brokers, loopback TCP, in
// this process). One iteration commits 20,000 records in commits of 1,000
// and waits until the loop has them all confirmed by delivery reports.
// Reports records/s (items_per_second, wall clock) and the batch size used.
//
//   build/tests/bench/kafka_sink_bench
//   SLUICE_BENCH_DIR=/data/tmp build/tests/bench/kafka_sink_bench   # another disk
//
// The mock brokers share the machine's cores with the agent's side: a real
// cluster on other hosts takes that work away, network latency adds to it.
// in_flight: the producer's max.in.flight (librdkafka's default 5, or 1 as a
// property). Against the mock, a second pipelined request on a connection
// stalls ~40-50 ms per batch (measured: 1000 records take ~6 ms at 1, ~48 ms
// at 2 or 5); real brokers are not known to do this, so both are shown.
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "platform/dead_letter.h"
#include "platform/log.h"
#include "platform/store.h"
#include "sinks/delivery.h"
#include "sinks/kafka_sink.h"
#include "tests/integration/kafka_mock.h"

namespace {

using sluice::Commit;
using sluice::Envelope;
using sluice::Millis;
using sluice::Store;
using sluice::StoreOptions;

class BenchDir {
 public:
  BenchDir() {
    const char* base = std::getenv("SLUICE_BENCH_DIR");
    std::string tmpl = std::string(base ? base : "/var/tmp") + "/sluice-kafka-bench-XXXXXX";
    if (::mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~BenchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class NoDeadLetters : public sluice::DeadLetterStore {
 public:
  sluice::Status Put(const sluice::DeadLetter&) override {
    return sluice::Status::Internal("unexpected dead letter in the benchmark");
  }
};

Envelope Record(int64_t n) {
  const std::string site = "site-0" + std::to_string(n % 8);
  std::string body = "{\"id\":\"temp_1m/" + site + "/dev-1234/" + std::to_string(n) +
                     "\",\"agent\":\"gw-042\",\"pipeline\":\"temp_1m\",\"kind\":\"aggregate\","
                     "\"key\":{\"site\":\"" +
                     site +
                     "\",\"device\":\"dev-1234\"},\"window\":{\"start\":1700000000000,"
                     "\"end\":1700000060000},\"values\":{\"temp_avg\":21.5}}";
  return Envelope{"temp_1m/" + std::to_string(n), site, std::move(body)};
}

// range(0): compression (0 none, 1 lz4); range(1): max.in.flight.
void BM_OutboxToKafka(benchmark::State& state) {
  sluice::ConfigureLogging(sluice::LogLevel::kWarn, sluice::LogFormat::kText);
  constexpr int kPerIteration = 20000;
  constexpr int kPerCommit = 1000;
  BenchDir dir;
  if (dir.path().empty()) {
    state.SkipWithError("cannot create a temporary directory");
    return;
  }
  sluice::testing::KafkaMock kafka(3);
  kafka.CreateTopic("telemetry", 6);
  auto store = Store::Open(dir.path() + "/sluice.db", StoreOptions{});
  if (!store.ok()) {
    state.SkipWithError(store.status().ToString().c_str());
    return;
  }
  auto queue = (*store)->AddQueue("cloud", {0, sluice::OverflowPolicy::kBlock});
  if (!queue.ok()) {
    state.SkipWithError(queue.status().ToString().c_str());
    return;
  }
  sluice::config::KafkaSinkConfig config;
  config.brokers = kafka.BrokerAddresses();
  config.topic = "telemetry";
  config.compression = state.range(0) == 0 ? "none" : "lz4";
  config.properties["max.in.flight"] = sluice::config::Secret(std::to_string(state.range(1)));
  auto sink = sluice::sinks::NewKafkaSink("cloud", config);
  if (!sink.ok()) {
    state.SkipWithError(sink.status().ToString().c_str());
    return;
  }
  NoDeadLetters dead;
  sluice::sinks::DeliveryLoop loop("cloud", **sink, *(*store)->queue(*queue), dead,
                                   sluice::RealClock(),
                                   sluice::sinks::DeliveryOptions{Millis(1), Millis(20), Millis(5)});
  std::thread runner([&] { loop.Run(); });

  int64_t next = 0;
  uint64_t body_bytes = 0;
  Commit c;
  c.outputs.resize(1);
  for (auto _ : state) {
    const int64_t target = next + kPerIteration;
    while (next < target) {
      c.outputs[0].clear();
      for (int i = 0; i < kPerCommit; ++i) {
        c.outputs[0].push_back(Record(next++));
        body_bytes += c.outputs[0].back().body.size();
      }
      if (sluice::Status s = (*store)->Write(c); !s.ok()) {
        state.SkipWithError(s.ToString().c_str());
        break;
      }
    }
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::minutes(5);
    while (loop.counters().delivered.load() < static_cast<uint64_t>(target)) {
      if (std::chrono::steady_clock::now() > give_up) {
        state.SkipWithError("records not delivered within 5 minutes");
        break;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }
  loop.Stop(sluice::RealClock().Now() + Millis(5000));
  runner.join();
  state.SetItemsProcessed(next);
  state.counters["batch"] = static_cast<double>((*sink)->batch_limits().max_records);
  state.counters["record_bytes"] = next > 0 ? static_cast<double>(body_bytes) / next : 0;
  state.counters["retried"] = static_cast<double>(loop.counters().retried.load());
  sink->reset();
  (*store)->Close();
}
BENCHMARK(BM_OutboxToKafka)
    ->ArgNames({"lz4", "in_flight"})
    ->Args({0, 5})
    ->Args({0, 1})
    ->Args({1, 1})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
