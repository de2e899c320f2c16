// decode -> filter -> tumbling window (10,000 keys) -> aggregates, on the
// simulator's payloads, one core. Reports readings per second and the bytes
// of window state per key.
//
//   build/tests/bench/pipeline_bench
#include <benchmark/benchmark.h>

#include "agent/simulate.h"
#include "operators/aggregate.h"
#include "operators/decode.h"
#include "operators/expression.h"
#include "operators/window.h"

using namespace sluice::operators;

namespace {

constexpr int kDevices = 10000;
constexpr int kSites = 100;

struct Input {
  std::string topic;
  std::string payload;
};

// Two minutes of event time at one reading per device per second.
const std::vector<Input>& Readings() {
  static const std::vector<Input> inputs = [] {
    std::vector<Input> v;
    sluice::agent::SensorSimulator sim(kDevices, kSites, 42, 0.002);
    const int n = kDevices * 120;
    v.reserve(n);
    for (int i = 0; i < n; ++i) {
      auto r = sim.Next(1700000000000 + static_cast<int64_t>(i) * 1000 / kDevices);
      v.push_back({sluice::agent::RenderTopic("sensors/{site}/{device}", r), r.payload});
    }
    return v;
  }();
  return inputs;
}

class NullEmitter : public Emitter {
 public:
  void Emit(sluice::Envelope, const Record&) override { ++emitted; }
  void Reject(const Record&, std::string_view) override { ++rejected; }
  uint64_t emitted = 0;
  uint64_t rejected = 0;
};

std::vector<AggregateSpec> Specs(bool with_p95) {
  std::vector<AggregateSpec> s = {{"readings", AggregateKind::kCount, ""},
                                  {"temp_sum", AggregateKind::kSum, "temp"},
                                  {"temp_avg", AggregateKind::kAvg, "temp"},
                                  {"temp_min", AggregateKind::kMin, "temp"},
                                  {"temp_max", AggregateKind::kMax, "temp"}};
  if (with_p95) s.push_back({"temp_p95", AggregateKind::kPercentile, "temp", 0.95});
  return s;
}

std::unique_ptr<Operator> MakeWindow(bool with_p95) {
  WindowSpec spec;
  spec.kind = WindowKind::kTumbling;
  spec.size_ms = 60000;
  spec.lateness_ms = 5000;
  spec.group_by = {"site", "device"};
  spec.aggregator = *Aggregator::Create(Specs(with_p95));
  auto where = *Expression::Compile("temp > -50 && temp < 150", nullptr);
  return NewFilter(std::move(where), std::move(*NewWindow({"bench", "temp_1m"}, std::move(spec))));
}

JsonDecoder MakeDecoder() {
  DecodeOptions d;
  d.time_field = "ts";
  d.topic_fields = *TopicPattern::Parse("sensors/{site}/{device}");
  d.projection = Projection::Only({"temp", "site", "device"});
  return JsonDecoder(std::move(d));
}

void BM_DecodeOnly(benchmark::State& state) {
  const auto& inputs = Readings();
  JsonDecoder decoder = MakeDecoder();
  Record r;
  size_t i = 0;
  for (auto _ : state) {
    const Input& in = inputs[i++ % inputs.size()];
    benchmark::DoNotOptimize(decoder.Decode(in.topic, in.payload, 0, &r));
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DecodeOnly);

void DecodeToAggregate(benchmark::State& state, bool with_p95) {
  const auto& inputs = Readings();
  JsonDecoder decoder = MakeDecoder();
  auto op = MakeWindow(with_p95);
  NullEmitter out;
  Record r;
  size_t i = 0;
  for (auto _ : state) {
    const Input& in = inputs[i % inputs.size()];
    // Replays shift event time forward so windows keep closing.
    int64_t shift = static_cast<int64_t>(i / inputs.size()) * 120000;
    ++i;
    if (!decoder.Decode(in.topic, in.payload, 0, &r).ok()) continue;
    r.event_time_ms += shift;
    benchmark::DoNotOptimize(op->OnRecord(r, out));
  }
  state.SetItemsProcessed(state.iterations());
  auto stats = op->Stats();
  if (stats.keys > 0) {
    state.counters["state_bytes_per_key"] =
        static_cast<double>(stats.state_bytes) / static_cast<double>(stats.open_windows);
  }
  state.counters["aggregates_out"] = static_cast<double>(out.emitted);
}

void BM_DecodeFilterWindow5(benchmark::State& state) { DecodeToAggregate(state, false); }
void BM_DecodeFilterWindow5P95(benchmark::State& state) { DecodeToAggregate(state, true); }
BENCHMARK(BM_DecodeFilterWindow5);
BENCHMARK(BM_DecodeFilterWindow5P95);

// Closing 10,000 windows at once (a 10 s boundary with 10,000 devices):
// p95 results, the JSON body and the envelope per window. Reported per
// window closed.
void BM_CloseWindowsP95(benchmark::State& state) {
  const auto& inputs = Readings();
  JsonDecoder decoder = MakeDecoder();
  std::vector<Record> records;
  for (size_t i = 0; i < 5 * static_cast<size_t>(kDevices); ++i) {
    Record r;
    if (decoder.Decode(inputs[i].topic, inputs[i].payload, 0, &r).ok()) records.push_back(r);
  }
  uint64_t closed = 0;
  for (auto _ : state) {
    state.PauseTiming();
    auto op = MakeWindow(true);
    NullEmitter out;
    for (const Record& r : records) (void)op->OnRecord(r, out);
    state.ResumeTiming();
    benchmark::DoNotOptimize(op->OnWatermark(kEndOfTime, out));
    closed += out.emitted;
  }
  state.SetItemsProcessed(static_cast<int64_t>(closed));
}
BENCHMARK(BM_CloseWindowsP95)->Unit(benchmark::kMillisecond);

// The checkpoint's snapshot of 10,000 open windows with a p95 each: taken
// under the pipelines' lock, so readings wait for it.
void BM_Snapshot10kP95(benchmark::State& state) {
  const auto& inputs = Readings();
  JsonDecoder decoder = MakeDecoder();
  auto op = MakeWindow(true);
  NullEmitter out;
  Record r;
  for (size_t i = 0; i < 5 * static_cast<size_t>(kDevices); ++i) {
    if (decoder.Decode(inputs[i].topic, inputs[i].payload, 0, &r).ok()) (void)op->OnRecord(r, out);
  }
  size_t bytes = 0;
  for (auto _ : state) {
    std::string snapshot = op->Snapshot();
    bytes = snapshot.size();
    benchmark::DoNotOptimize(snapshot);
  }
  state.counters["snapshot_bytes"] = static_cast<double>(bytes);
}
BENCHMARK(BM_Snapshot10kP95)->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
