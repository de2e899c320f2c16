// PipelineRunner with real window operators and a real (in-memory) store:
// what the commit size limit (kOutputsPerCommit) must not change.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <memory>
#include <string>
#include <vector>

#include "agent/pipeline_runner.h"
#include "operators/aggregate.h"
#include "operators/window.h"
#include "platform/store.h"
#include "tests/memory_dead_letters.h"

using namespace sluice;
using namespace sluice::agent;
using json = nlohmann::json;

namespace {

// A tumbling window pipeline counting records, with an idle advance.
std::unique_ptr<PipelineRuntime> CountingWindow(const std::string& name, int source, int upstream,
                                                int64_t size_ms, std::vector<std::string> group_by,
                                                std::vector<int> sinks) {
  operators::WindowSpec spec;
  spec.kind = operators::WindowKind::kTumbling;
  spec.size_ms = size_ms;
  spec.idle_ms = 100;
  spec.group_by = std::move(group_by);
  auto aggregator = operators::Aggregator::Create({{"n", operators::AggregateKind::kCount, ""}});
  REQUIRE(aggregator.ok());
  spec.aggregator = *aggregator;
  auto op = operators::NewWindow({"gw", name}, std::move(spec));
  REQUIRE(op.ok());
  auto p = std::make_unique<PipelineRuntime>();
  p->name = name;
  p->source = source;
  p->upstream = upstream;
  p->op = std::move(*op);
  p->stateful = true;
  p->sinks = std::move(sinks);
  return p;
}

// A reading of device `device` at event and arrival time `t`.
operators::Record DeviceReading(int device, int64_t t) {
  operators::Record r;
  r.topic = "t";
  r.event_time_ms = t;
  r.arrival_ms = t;
  r.fields = {{"dev", "d" + std::to_string(device)}};
  return r;
}

}  // namespace

// 600 devices' 10 ms windows close on one idle tick, more than one commit
// takes: the pipeline rolling them up must see all 600 before its own idle
// advance closes its window (else the rest would come late and be refused).
// The rollup is listed first, so ticking in list order would also be wrong.
TEST_CASE("runner: a rollup of a window pipeline gets every held-back result before it closes") {
  auto store = Store::Open(":memory:", StoreOptions{});
  REQUIRE(store.ok());
  auto out = (*store)->AddQueue("out", QueueOptions{});
  REQUIRE(out.ok());
  std::vector<std::unique_ptr<PipelineRuntime>> pipelines;
  pipelines.push_back(CountingWindow("rollup", -1, 1, 1000, {}, {*out}));
  pipelines.push_back(CountingWindow("per_device", 0, -1, 10, {"dev"}, {}));
  testing::MemoryDeadLetters dead;
  PipelineRunner runner(std::move(pipelines), **store, dead);

  constexpr int kDevices = 600;
  for (int d = 0; d < kDevices; ++d) REQUIRE(runner.Process(0, DeviceReading(d, 5)).ok());
  REQUIRE(runner.Tick(10000).ok());  // idle for ~10 s: everything closes

  auto queued = (*store)->queue(*out)->Peek(100, Millis(0));
  REQUIRE(queued.ok());
  REQUIRE(queued->size() == 1);
  json body = json::parse((*queued)[0].envelope.body);
  CHECK(body["pipeline"] == "rollup");
  CHECK(body["values"]["n"] == kDevices);
  std::vector<DeadLetter> letters = dead.Letters();
  CHECK(letters.empty());
  if (!letters.empty()) INFO(letters[0].reason);
}

// The agent ticks early when a Process left due windows behind and no
// reading follows (agent.cc): HoldsOutput() is what it goes by.
TEST_CASE("runner: HoldsOutput says when windows wait for the next commit, until a tick emits them") {
  auto store = Store::Open(":memory:", StoreOptions{});
  REQUIRE(store.ok());
  auto out = (*store)->AddQueue("out", QueueOptions{});
  REQUIRE(out.ok());
  std::vector<std::unique_ptr<PipelineRuntime>> pipelines;
  pipelines.push_back(CountingWindow("per_device", 0, -1, 10, {"dev"}, {*out}));
  testing::MemoryDeadLetters dead;
  PipelineRunner runner(std::move(pipelines), **store, dead);

  constexpr int kDevices = 600;
  for (int d = 0; d < kDevices; ++d) REQUIRE(runner.Process(0, DeviceReading(d, 5)).ok());
  CHECK_FALSE(runner.HoldsOutput());  // nothing due yet
  // One reading in the next window: all 600 windows are due, one commit
  // takes fewer.
  REQUIRE(runner.Process(0, DeviceReading(0, 15)).ok());
  CHECK(runner.HoldsOutput());
  auto queued = (*store)->queue(*out)->Peek(1000, Millis(0));
  REQUIRE(queued.ok());
  CHECK(queued->size() < static_cast<size_t>(kDevices));
  REQUIRE(runner.Tick(20).ok());  // not idle long enough for [10, 20) to close
  CHECK_FALSE(runner.HoldsOutput());
  queued = (*store)->queue(*out)->Peek(1000, Millis(0));
  REQUIRE(queued.ok());
  CHECK(queued->size() == static_cast<size_t>(kDevices));
}
