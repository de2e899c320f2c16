// The durable outbox (platform/store.h on SQLite, WAL) on a real disk:
// ~200-byte records appended in commits of 1 and 100, read back with Peek and
// deleted with Remove, at Durability kNormal and kFull. Reports records/s
// (items_per_second, wall clock).
//
//   build/tests/bench/outbox_bench [--benchmark_filter=Append]
//   SLUICE_BENCH_DIR=/data/tmp build/tests/bench/outbox_bench   # another disk
#include <benchmark/benchmark.h>
#include <stdlib.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "platform/store.h"

namespace {

using sluice::Commit;
using sluice::Durability;
using sluice::Envelope;
using sluice::Store;
using sluice::StoreOptions;

// A temporary directory on disk (not a tmpfs: /var/tmp unless told).
class BenchDir {
 public:
  BenchDir() {
    const char* base = std::getenv("SLUICE_BENCH_DIR");
    std::string tmpl = std::string(base ? base : "/var/tmp") + "/sluice-outbox-bench-XXXXXX";
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

Envelope Record(int64_t n) {
  // ~200 bytes, like an aggregate record.
  std::string body =
      "{\"id\":\"temp_1m/site-07/dev-1234/" + std::to_string(n) +
      "\",\"pipeline\":\"temp_1m\",\"kind\":\"aggregate\",\"key\":{\"site\":\"site-07\","
      "\"device\":\"dev-1234\"},\"window\":{\"start\":1700000000000,\"end\":1700000060000},"
      "\"values\":{\"temp_avg\":21.5}}";
  return Envelope{"temp_1m/" + std::to_string(n), "dev-1234", std::move(body)};
}

struct Fixture {
  BenchDir dir;
  std::unique_ptr<Store> store;
  int queue = 0;

  bool Open(benchmark::State& state, bool full) {
    if (dir.path().empty()) {
      state.SkipWithError("cannot create a temporary directory");
      return false;
    }
    StoreOptions options;
    options.durability = full ? Durability::kFull : Durability::kNormal;
    auto opened = Store::Open(dir.path() + "/sluice.db", options);
    if (!opened.ok()) {
      state.SkipWithError(opened.status().ToString().c_str());
      return false;
    }
    store = std::move(opened).value();
    auto q = store->AddQueue("cloud", {0, sluice::OverflowPolicy::kDropOldest});
    if (!q.ok()) {
      state.SkipWithError(q.status().ToString().c_str());
      return false;
    }
    queue = *q;
    return true;
  }
};

// Appends commits of `batch` records (one transaction each).
void BM_Append(benchmark::State& state) {
  const int batch = static_cast<int>(state.range(0));
  Fixture f;
  if (!f.Open(state, state.range(1) != 0)) return;
  int64_t n = 0;
  Commit c;
  c.outputs.resize(1);
  for (auto _ : state) {
    c.outputs[0].clear();
    for (int i = 0; i < batch; ++i) c.outputs[0].push_back(Record(n++));
    sluice::Status s = f.store->Write(c);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(n);
}
BENCHMARK(BM_Append)
    ->ArgNames({"batch", "full"})
    ->Args({1, 0})
    ->Args({100, 0})
    ->Args({1, 1})
    ->Args({100, 1})
    ->UseRealTime();

// What one QoS 1 reading costs when committed alone: a journal row and one
// output record in one transaction.
void BM_SingleReadingCommit(benchmark::State& state) {
  Fixture f;
  if (!f.Open(state, state.range(0) != 0)) return;
  int64_t n = 0;
  Commit c;
  c.outputs.resize(1);
  const std::string payload = "{\"ts\":1700000000000,\"temp\":21.5,\"hum\":40.1}";
  for (auto _ : state) {
    c.journal.clear();
    c.journal.push_back({"plant", "sensors/site-07/dev-1234", payload, 1700000000000 + n});
    c.outputs[0].assign(1, Record(n++));
    sluice::Status s = f.store->Write(c);
    if (!s.ok()) {
      state.SkipWithError(s.ToString().c_str());
      break;
    }
  }
  state.SetItemsProcessed(n);
}
BENCHMARK(BM_SingleReadingCommit)->ArgNames({"full"})->Arg(0)->Arg(1)->UseRealTime();

// Drains a backlog the way the delivery loop does: Peek(batch), Remove.
void BM_PeekRemove(benchmark::State& state) {
  const size_t batch = static_cast<size_t>(state.range(0));
  Fixture f;
  if (!f.Open(state, state.range(1) != 0)) return;
  constexpr int kBacklog = 200000;
  int64_t next = 0;
  auto refill = [&]() -> bool {
    Commit c;
    c.outputs.resize(1);
    for (int i = 0; i < kBacklog; i += 1000) {
      c.outputs[0].clear();
      for (int k = 0; k < 1000; ++k) c.outputs[0].push_back(Record(next++));
      if (!f.store->Write(c).ok()) return false;
    }
    return true;
  };
  if (!refill()) {
    state.SkipWithError("cannot fill the backlog");
    return;
  }
  sluice::SinkQueue* q = f.store->queue(f.queue);
  int64_t moved = 0;
  for (auto _ : state) {
    auto peeked = q->Peek(batch, sluice::Millis(0));
    if (!peeked.ok()) {
      state.SkipWithError(peeked.status().ToString().c_str());
      break;
    }
    if (peeked->empty()) {
      state.PauseTiming();
      bool ok = refill();
      state.ResumeTiming();
      if (!ok) {
        state.SkipWithError("cannot refill the backlog");
        break;
      }
      continue;
    }
    if (!q->Remove(peeked->back().seq).ok()) {
      state.SkipWithError("Remove failed");
      break;
    }
    moved += static_cast<int64_t>(peeked->size());
  }
  state.SetItemsProcessed(moved);
}
BENCHMARK(BM_PeekRemove)
    ->ArgNames({"batch", "full"})
    ->Args({500, 0})
    ->Args({500, 1})
    ->UseRealTime();

// Steady state: append a commit of 100, read it back, delete it.
void BM_RoundTrip(benchmark::State& state) {
  Fixture f;
  if (!f.Open(state, state.range(0) != 0)) return;
  sluice::SinkQueue* q = f.store->queue(f.queue);
  int64_t n = 0;
  Commit c;
  c.outputs.resize(1);
  for (auto _ : state) {
    c.outputs[0].clear();
    for (int i = 0; i < 100; ++i) c.outputs[0].push_back(Record(n++));
    auto peeked = f.store->Write(c).ok() ? q->Peek(100, sluice::Millis(0))
                                          : sluice::StatusOr<std::vector<sluice::QueuedEnvelope>>(
                                                sluice::Status::Internal("write failed"));
    if (!peeked.ok() || peeked->size() != 100 || !q->Remove(peeked->back().seq).ok()) {
      state.SkipWithError("round trip failed");
      break;
    }
  }
  state.SetItemsProcessed(n);
}
BENCHMARK(BM_RoundTrip)->ArgNames({"full"})->Arg(0)->Arg(1)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
