// The HTTP sink's delivery rate: a backlog of ~200-byte records in the real
// outbox (SQLite on disk) drained by the real DeliveryLoop through HttpSink
// (platform/http_client, one kept-alive connection) to an in-process cpp-httplib server on
// loopback that only counts records (no file writes, no JSON parsing: it
// measures the sink, not a receiver). At the sink's default batch (500
// records, 1 MiB), with and without gzip. The server shares the machine's
// cores and, with gzip, gunzips each body (cpp-httplib does) — its cost is
// in the figure. Reports records/s (items_per_second, wall clock from the
// loop's start until the last record was confirmed).
//
//   build/tests/bench/http_sink_bench [--benchmark_filter=gzip]
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <httplib.h>

#include "platform/dead_letter.h"
#include "platform/store.h"
#include "sinks/delivery.h"
#include "sinks/http_sink.h"

namespace {

using namespace sluice;

constexpr int kRecords = 50000;

Envelope Record(int64_t n) {
  // ~200 bytes, like an aggregate record (the same as outbox_bench).
  std::string body =
      "{\"id\":\"temp_1m/site-07/dev-1234/" + std::to_string(n) +
      "\",\"pipeline\":\"temp_1m\",\"kind\":\"aggregate\",\"key\":{\"site\":\"site-07\","
      "\"device\":\"dev-1234\"},\"window\":{\"start\":1700000000000,\"end\":1700000060000},"
      "\"values\":{\"temp_avg\":21.5}}";
  return Envelope{"temp_1m/" + std::to_string(n), "dev-1234", std::move(body)};
}

// Counts the records of each request (each begins with {"id":) and answers 200.
class CountingServer {
 public:
  CountingServer() {
    // Without it the answer's header and body writes meet Nagle and the
    // client's delayed ACK: ~40 ms per request that are not the sink's.
    server_.set_tcp_nodelay(true);
    server_.Post("/ingest", [this](const httplib::Request& req, httplib::Response& res) {
      uint64_t n = 0;
      for (size_t at = req.body.find("{\"id\":"); at != std::string::npos;
           at = req.body.find("{\"id\":", at + 6)) {
        ++n;
      }
      records_.fetch_add(n);
      res.set_content("{}", "application/json");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    // Bound already: connections wait in the backlog until it accepts.
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  ~CountingServer() {
    server_.stop();
    thread_.join();
  }
  int port() const { return port_; }
  uint64_t records() const { return records_.load(); }

 private:
  httplib::Server server_;
  int port_ = 0;
  std::thread thread_;
  std::atomic<uint64_t> records_{0};
};

class NoDeadLetters : public DeadLetterStore {
 public:
  Status Put(const DeadLetter&) override { return Status::Internal("unexpected dead letter"); }
};

void BM_HttpSinkDrain(benchmark::State& state) {
  const bool gzip = state.range(0) != 0;
  static CountingServer server;  // one for the process
  const char* base = std::getenv("SLUICE_BENCH_DIR");
  for (auto _ : state) {
    std::string dir = std::string(base ? base : "/var/tmp") + "/sluice-http-bench-XXXXXX";
    if (::mkdtemp(dir.data()) == nullptr) {
      state.SkipWithError("mkdtemp failed");
      return;
    }
    {
      auto store = Store::Open(dir + "/sluice.db", StoreOptions{});
      if (!store.ok()) {
        state.SkipWithError(store.status().ToString().c_str());
        return;
      }
      const int queue = *(*store)->AddQueue("http", {0, OverflowPolicy::kBlock});
      Commit c;
      c.outputs.resize(1);
      for (int n = 0; n < kRecords; ++n) c.outputs[0].push_back(Record(n));
      if (!(*store)->Write(c).ok()) {
        state.SkipWithError("filling the outbox failed");
        return;
      }
      config::HttpSinkConfig http;  // the defaults: 500 records, 1 MiB, 1 s
      http.url = "http://127.0.0.1:" + std::to_string(server.port()) + "/ingest";
      http.gzip = gzip;
      auto sink = sinks::NewHttpSink("bench", http);
      if (!sink.ok()) {
        state.SkipWithError(sink.status().ToString().c_str());
        return;
      }
      NoDeadLetters dead;
      sinks::DeliveryLoop loop("bench", **sink, *(*store)->queue(queue), dead, RealClock());

      const uint64_t received_before = server.records();
      const auto start = std::chrono::steady_clock::now();
      std::thread runner([&] { loop.Run(); });
      while (loop.counters().delivered.load() < static_cast<uint64_t>(kRecords)) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      const auto end = std::chrono::steady_clock::now();
      state.SetIterationTime(std::chrono::duration<double>(end - start).count());
      loop.Stop(RealClock().Now());
      runner.join();
      (*store)->Close();
      if (server.records() - received_before < static_cast<uint64_t>(kRecords)) {
        state.SkipWithError("the server counted fewer records than were confirmed");
        return;
      }
    }
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }
  state.SetItemsProcessed(state.iterations() * kRecords);
}

BENCHMARK(BM_HttpSinkDrain)
    ->ArgName("gzip")
    ->Arg(0)
    ->Arg(1)
    ->UseManualTime()
    ->Iterations(3)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
