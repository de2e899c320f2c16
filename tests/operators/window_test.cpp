// Window operator: exact outputs for every window type and time rule.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <map>
#include <random>
#include <set>

#include "operators/window.h"

using namespace sluice::operators;
using nlohmann::json;

namespace {

class Collect : public Emitter {
 public:
  void Emit(sluice::Envelope e, const Record& r) override {
    bodies.push_back(json::parse(e.body));
    ids.push_back(e.id);
    records.push_back(r);
  }
  void Reject(const Record& r, std::string_view reason) override {
    rejected.push_back(r.event_time_ms);
    reasons.emplace_back(reason);
  }
  std::vector<json> bodies;
  std::vector<std::string> ids;
  std::vector<Record> records;
  std::vector<int64_t> rejected;
  std::vector<std::string> reasons;
};

Aggregator Basic() {
  auto a = Aggregator::Create({{"n", AggregateKind::kCount, ""},
                               {"sum", AggregateKind::kSum, "v"},
                               {"min", AggregateKind::kMin, "v"},
                               {"max", AggregateKind::kMax, "v"}});
  REQUIRE(a.ok());
  return *a;
}

std::unique_ptr<Operator> Make(WindowKind kind, int64_t size, int64_t step_or_gap,
                               int64_t lateness, std::vector<std::string> group_by = {"dev"}) {
  WindowSpec spec;
  spec.kind = kind;
  spec.size_ms = size;
  if (kind == WindowKind::kHopping) spec.step_ms = step_or_gap;
  if (kind == WindowKind::kSession) spec.gap_ms = step_or_gap;
  spec.lateness_ms = lateness;
  spec.group_by = std::move(group_by);
  spec.aggregator = Basic();
  auto op = NewWindow({"gw", "p"}, std::move(spec));
  REQUIRE(op.ok());
  return std::move(*op);
}

Record R(const std::string& dev, int64_t t, double v) {
  Record r;
  r.topic = "t";
  r.event_time_ms = t;
  r.arrival_ms = t;
  r.fields = {{"dev", dev}, {"v", v}};
  return r;
}

void Feed(Operator& op, Collect& out, const std::vector<Record>& records) {
  for (const Record& r : records) REQUIRE(op.OnRecord(r, out).ok());
}

// {start, end, count, sum} of each emitted window, in emission order.
std::vector<std::vector<int64_t>> Windows(const Collect& out) {
  std::vector<std::vector<int64_t>> w;
  for (const json& b : out.bodies) {
    w.push_back({b["window"]["start"].get<int64_t>(), b["window"]["end"].get<int64_t>(),
                 b["values"]["n"].get<int64_t>(), static_cast<int64_t>(b["values"]["sum"].get<double>())});
  }
  return w;
}

}  // namespace

TEST_CASE("tumbling windows emit once, when the watermark reaches their end") {
  auto op = Make(WindowKind::kTumbling, 10, 0, 0);
  Collect out;
  Feed(*op, out, {R("a", 0, 1), R("a", 5, 2), R("a", 9, 3)});
  CHECK(out.bodies.empty());  // watermark 9 < end 10
  Feed(*op, out, {R("a", 10, 4)});
  REQUIRE(out.bodies.size() == 1);
  json expected = {{"id", out.ids[0]},
                   {"agent", "gw"},
                   {"pipeline", "p"},
                   {"kind", "aggregate"},
                   {"key", {{"dev", "a"}}},
                   {"window", {{"start", 0}, {"end", 10}}},
                   {"values", {{"n", 3}, {"sum", 6.0}, {"min", 1.0}, {"max", 3.0}}}};
  CHECK(out.bodies[0] == expected);
  CHECK(out.ids[0].rfind("p:", 0) == 0);
  CHECK(out.ids[0].size() == std::string("p:").size() + 16 + std::string(":0").size());
  REQUIRE(op->OnWatermark(kEndOfTime, out).ok());
  CHECK(Windows(out) == std::vector<std::vector<int64_t>>{{0, 10, 3, 6}, {10, 20, 1, 4}});
}

TEST_CASE("lateness: a reading exactly at the boundary is on time, one past it is late") {
  auto op = Make(WindowKind::kTumbling, 10, 0, 5);
  Collect out;
  Feed(*op, out, {R("a", 1, 1), R("a", 14, 1)});  // watermark 9: [0,10) still open
  CHECK(out.bodies.empty());
  Feed(*op, out, {R("a", 9, 1)});  // the last millisecond of [0,10), on time
  CHECK(out.rejected.empty());
  Feed(*op, out, {R("a", 15, 1)});  // watermark 10: [0,10) closes with 2 readings
  CHECK(Windows(out) == std::vector<std::vector<int64_t>>{{0, 10, 2, 2}});
  Feed(*op, out, {R("a", 9, 100)});  // now too late
  CHECK(out.rejected == std::vector<int64_t>{9});
  CHECK(out.reasons[0].find("late") == 0);
  CHECK(op->Stats().late == 1);
  REQUIRE(op->OnWatermark(kEndOfTime, out).ok());
  CHECK(Windows(out) == std::vector<std::vector<int64_t>>{{0, 10, 2, 2}, {10, 20, 2, 2}});
}

TEST_CASE("out-of-order readings within lateness land in their own window") {
  auto op = Make(WindowKind::kTumbling, 10, 0, 20);
  Collect out;
  Feed(*op, out, {R("a", 25, 1), R("a", 3, 2), R("a", 17, 4), R("a", 8, 8)});
  REQUIRE(op->OnWatermark(kEndOfTime, out).ok());
  CHECK(Windows(out) == std::vector<std::vector<int64_t>>{{0, 10, 2, 10}, {10, 20, 1, 4}, {20, 30, 1, 1}});
  CHECK(out.rejected.empty());
}

TEST_CASE("keys are grouped separately and emitted in key order") {
  auto op = Make(WindowKind::kTumbling, 10, 0, 0);
  Collect out;
  Feed(*op, out, {R("b", 1, 1), R("a", 2, 2), R("b", 3, 3), R("c", 30, 0)});
  REQUIRE(out.bodies.size() == 2);
  CHECK(out.bodies[0]["key"] == json{{"dev", "a"}});
  CHECK(out.bodies[0]["values"]["n"] == 1);
  CHECK(out.bodies[1]["key"] == json{{"dev", "b"}});
  CHECK(out.bodies[1]["values"]["sum"] == 4.0);
  // Keys with no open window hold no state.
  CHECK(op->Stats().keys == 1);
  CHECK(op->Stats().open_windows == 1);
}

TEST_CASE("a missing group-by field groups under null") {
  auto op = Make(WindowKind::kTumbling, 10, 0, 0, {"site"});
  Collect out;
  Feed(*op, out, {R("a", 1, 1)});
  REQUIRE(op->OnWatermark(kEndOfTime, out).ok());
  REQUIRE(out.bodies.size() == 1);
  CHECK(out.bodies[0]["key"] == json{{"site", nullptr}});
}

TEST_CASE("hopping windows: a reading counts in every window covering it") {
  auto op = Make(WindowKind::kHopping, 10, 5, 0);
  Collect out;
  Feed(*op, out, {R("a", 7, 1), R("a", 12, 10)});
  REQUIRE(op->OnWatermark(kEndOfTime, out).ok());
  // 7 is in [0,10) and [5,15); 12 is in [5,15) and [10,20).
  CHECK(Windows(out) ==
        std::vector<std::vector<int64_t>>{{0, 10, 1, 1}, {5, 15, 2, 11}, {10, 20, 1, 10}});
}

TEST_CASE("hopping: late for an emitted window but on time for a later one is not rejected") {
  auto op = Make(WindowKind::kHopping, 10, 5, 0);
  Collect out;
  Feed(*op, out, {R("a", 10, 1)});  // watermark 10: [0,10) would be closed
  Feed(*op, out, {R("a", 6, 2)});   // [0,10) closed, [5,15) open
  CHECK(out.rejected.empty());
  REQUIRE(op->OnWatermark(kEndOfTime, out).ok());
  CHECK(Windows(out) == std::vector<std::vector<int64_t>>{{5, 15, 2, 3}, {10, 20, 1, 1}});
}

TEST_CASE("session windows grow, close after the gap, and merge when bridged") {
  auto op = Make(WindowKind::kSession, 0, 10, 0);
  Collect out;
  SECTION("grow and close") {
    Feed(*op, out, {R("a", 0, 1), R("a", 5, 1), R("a", 14, 1)});
    CHECK(out.bodies.empty());
    Feed(*op, out, {R("b", 23, 0)});  // watermark 23 < 24: still open
    CHECK(out.bodies.empty());
    Feed(*op, out, {R("b", 24, 0)});  // watermark 24 = end of [0, 24)
    CHECK(Windows(out) == std::vector<std::vector<int64_t>>{{0, 24, 3, 3}});
  }
  SECTION("merge") {
    auto late_op = Make(WindowKind::kSession, 0, 10, 100);
    Feed(*late_op, out, {R("a", 0, 1), R("a", 30, 2), R("a", 15, 4)});  // 15 bridges [0,10) and [30,40)? no: [15,25) touches neither
    REQUIRE(late_op->Stats().open_windows == 3);
    Feed(*late_op, out, {R("a", 8, 8), R("a", 22, 16)});  // 8 joins [0,10)->[0,18) which touches [15,25); 22 bridges to [30,40)
    REQUIRE(late_op->OnWatermark(kEndOfTime, out).ok());
    CHECK(Windows(out) == std::vector<std::vector<int64_t>>{{0, 40, 5, 31}});
  }
}

TEST_CASE("a session's first and last follow arrival among readings of one event time") {
  WindowSpec spec;
  spec.kind = WindowKind::kSession;
  spec.gap_ms = 5000;
  spec.group_by = {"dev"};
  auto a = Aggregator::Create({{"first", AggregateKind::kFirst, "v"}, {"last", AggregateKind::kLast, "v"}});
  REQUIRE(a.ok());
  spec.aggregator = *a;
  auto op = std::move(*NewWindow({"gw", "p"}, std::move(spec)));
  Collect out;
  Feed(*op, out, {R("a", 1000, 1), R("a", 1000, 2), R("a", 1000, 3)});
  REQUIRE(op->OnWatermark(kEndOfTime, out).ok());
  REQUIRE(out.bodies.size() == 1);
  CHECK(out.bodies[0]["values"]["first"] == 1);
  CHECK(out.bodies[0]["values"]["last"] == 3);
}

TEST_CASE("idle sources: processing time closes windows, one tick before the deadline does not") {
  WindowSpec spec;
  spec.kind = WindowKind::kTumbling;
  spec.size_ms = 1000;
  spec.lateness_ms = 200;
  spec.idle_ms = 500;
  spec.group_by = {"dev"};
  spec.aggregator = Basic();
  auto op = std::move(*NewWindow({"gw", "p"}, std::move(spec)));
  Collect out;
  Record r = R("a", 100, 1);
  r.arrival_ms = 5000;  // wall clock at arrival
  REQUIRE(op->OnRecord(r, out).ok());
  REQUIRE(op->OnTick(5499, out).ok());  // idle 499 < 500: nothing
  REQUIRE(op->OnTick(6099, out).ok());  // watermark 100 + 1099 - 200 = 999 < 1000
  CHECK(out.bodies.empty());
  REQUIRE(op->OnTick(6100, out).ok());  // watermark 1000: [0,1000) closes
  CHECK(Windows(out) == std::vector<std::vector<int64_t>>{{0, 1000, 1, 1}});
}

TEST_CASE("aggregates feed the next pipeline as records at the window start") {
  auto op = Make(WindowKind::kTumbling, 10, 0, 0);
  Collect out;
  Feed(*op, out, {R("a", 1, 2), R("a", 3, 5)});
  REQUIRE(op->OnWatermark(kEndOfTime, out).ok());
  REQUIRE(out.records.size() == 1);
  const Record& r = out.records[0];
  CHECK(r.event_time_ms == 0);
  CHECK(*r.Find("dev") == Value(std::string("a")));
  CHECK(*r.Find("n") == Value(int64_t{2}));
  CHECK(*r.Find("max") == Value(5.0));
}

TEST_CASE("snapshot and restore in the middle of a stream give the uninterrupted output") {
  for (auto kind : {WindowKind::kTumbling, WindowKind::kHopping, WindowKind::kSession}) {
    std::mt19937_64 rng(7);
    std::vector<Record> stream;
    for (int i = 0; i < 2000; ++i) {
      int64_t t = i * 3 + static_cast<int64_t>(rng() % 40);  // out of order by up to 40 ms
      stream.push_back(R("k" + std::to_string(rng() % 7), t, static_cast<double>(rng() % 100)));
    }
    auto whole = Make(kind, 50, kind == WindowKind::kHopping ? 20 : 25, 30);
    Collect expected;
    Feed(*whole, expected, stream);
    REQUIRE(whole->OnWatermark(kEndOfTime, expected).ok());

    auto first = Make(kind, 50, kind == WindowKind::kHopping ? 20 : 25, 30);
    Collect got;
    Feed(*first, got, std::vector<Record>(stream.begin(), stream.begin() + 1000));
    std::string snapshot = first->Snapshot();
    auto second = Make(kind, 50, kind == WindowKind::kHopping ? 20 : 25, 30);
    REQUIRE(second->Restore(snapshot).ok());
    CHECK(second->Snapshot() == snapshot);
    Feed(*second, got, std::vector<Record>(stream.begin() + 1000, stream.end()));
    REQUIRE(second->OnWatermark(kEndOfTime, got).ok());

    CHECK(got.ids == expected.ids);
    CHECK(got.bodies == expected.bodies);
    CHECK(got.rejected == expected.rejected);
    CHECK(expected.bodies.size() > 10);
  }
}

// An emitter that takes one record per call, then says Saturated() until
// the next call (as the agent's does past a commit's worth).
class OnePerCall : public Collect {
 public:
  void Emit(sluice::Envelope e, const Record& r) override {
    ++this_call;
    Collect::Emit(std::move(e), r);
  }
  bool Saturated() const override { return this_call >= limit; }
  int this_call = 0;
  int limit = 1;
};

TEST_CASE("a saturated emitter puts window closes off without changing the output") {
  for (auto kind : {WindowKind::kTumbling, WindowKind::kHopping, WindowKind::kSession}) {
    INFO("kind " << static_cast<int>(kind));
    std::mt19937_64 rng(11);
    std::vector<Record> stream;
    for (int i = 0; i < 2000; ++i) {
      int64_t t = i * 3 + static_cast<int64_t>(rng() % 40);
      stream.push_back(R("k" + std::to_string(rng() % 7), t, static_cast<double>(rng() % 100)));
    }
    const int64_t step_or_gap = kind == WindowKind::kHopping ? 20 : 25;
    auto whole = Make(kind, 50, step_or_gap, 30);
    auto throttled = Make(kind, 50, step_or_gap, 30);
    Collect expected;
    OnePerCall got;
    bool behind = false;  // the throttled operator held due windows at some point
    for (size_t i = 0; i < stream.size(); ++i) {
      REQUIRE(whole->OnRecord(stream[i], expected).ok());
      got.this_call = 0;
      REQUIRE(throttled->OnRecord(stream[i], got).ok());
      behind = behind || throttled->Stats().open_windows > whole->Stats().open_windows;
      if (i == 1000) {  // a checkpoint while windows wait to close
        std::string snapshot = throttled->Snapshot();
        throttled = Make(kind, 50, step_or_gap, 30);
        REQUIRE(throttled->Restore(snapshot).ok());
      }
    }
    REQUIRE(whole->OnWatermark(kEndOfTime, expected).ok());
    got.this_call = 0;
    REQUIRE(throttled->OnWatermark(kEndOfTime, got).ok());
    for (int calls = 0; throttled->Stats().open_windows > 0; ++calls) {
      REQUIRE(calls < 100000);
      got.this_call = 0;
      REQUIRE(throttled->OnTick(0, got).ok());  // each tick closes one more
    }
    CHECK(behind);
    CHECK(got.ids == expected.ids);
    CHECK(got.bodies == expected.bodies);
    CHECK(got.rejected == expected.rejected);
    CHECK(expected.bodies.size() > 10);
  }
  // A record that would have joined a session had it not been due yet is
  // late, as if the session had closed on time.
  for (bool saturated : {false, true}) {
    auto op = Make(WindowKind::kSession, 0, 25, 30);
    OnePerCall out;
    REQUIRE(op->OnRecord(R("a", 0, 1), out).ok());
    out.this_call = saturated ? 1 : 0;
    REQUIRE(op->OnRecord(R("b", 100, 1), out).ok());  // watermark 70: [0, 25) is due
    CHECK(out.bodies.size() == (saturated ? 0u : 1u));
    out.this_call = saturated ? 1 : 0;
    REQUIRE(op->OnRecord(R("a", 10, 1), out).ok());
    CHECK(out.rejected == std::vector<int64_t>{10});
    out.limit = 1000;
    REQUIRE(op->OnWatermark(kEndOfTime, out).ok());
    REQUIRE(out.bodies.size() == 2);
    CHECK(Windows(out)[0] == std::vector<int64_t>{0, 25, 1, 1});
  }
}

TEST_CASE("a corrupt snapshot is refused and leaves the operator empty") {
  auto op = Make(WindowKind::kTumbling, 10, 0, 0);
  Collect out;
  Feed(*op, out, {R("a", 1, 1)});
  std::string good = op->Snapshot();
  auto fresh = Make(WindowKind::kTumbling, 10, 0, 0);
  CHECK(fresh->Restore("garbage").code() == sluice::StatusCode::kDataLoss);
  CHECK(fresh->Restore(good.substr(0, good.size() - 3)).code() == sluice::StatusCode::kDataLoss);
  CHECK(fresh->Stats().open_windows == 0);
  CHECK(fresh->Restore(good).ok());
  CHECK(fresh->Stats().open_windows == 1);
}

// Property: for random streams, tumbling windows with lateness give the
// aggregates a brute-force reference computes from the same stream.
TEST_CASE("property: tumbling windows match a brute-force reference") {
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::mt19937_64 rng(seed);
    const int64_t size = 10 + static_cast<int64_t>(rng() % 50);
    const int64_t lateness = static_cast<int64_t>(rng() % 40);
    auto op = Make(WindowKind::kTumbling, size, 0, lateness);
    Collect out;
    // Reference: replay the watermark rule literally.
    std::map<std::pair<std::string, int64_t>, std::vector<double>> ref;  // (key, start) -> values
    int64_t max_t = INT64_MIN;
    std::set<std::pair<std::string, int64_t>> emitted;
    size_t late = 0;
    for (int i = 0; i < 3000; ++i) {
      int64_t t = i + static_cast<int64_t>(rng() % 80) - 40;
      std::string key = "k" + std::to_string(rng() % 5);
      double v = static_cast<double>(rng() % 1000);
      int64_t start = t >= 0 ? t / size * size : -((-t + size - 1) / size) * size;
      int64_t watermark = max_t == INT64_MIN ? INT64_MIN : max_t - lateness;
      if (start + size <= watermark) {
        ++late;
      } else {
        ref[{key, start}].push_back(v);
      }
      max_t = std::max(max_t, t);
      REQUIRE(op->OnRecord(R(key, t, v), out).ok());
    }
    REQUIRE(op->OnWatermark(kEndOfTime, out).ok());
    CHECK(out.rejected.size() == late);
    REQUIRE(out.bodies.size() == ref.size());
    std::map<std::pair<std::string, int64_t>, json> got;
    for (const json& b : out.bodies) got[{b["key"]["dev"], b["window"]["start"]}] = b["values"];
    for (const auto& [k, values] : ref) {
      INFO("seed " << seed << " key " << k.first << " start " << k.second);
      REQUIRE(got.count(k) == 1);
      double sum = 0;
      for (double v : values) sum += v;
      CHECK(got[k]["n"] == values.size());
      CHECK(got[k]["sum"] == sum);
      CHECK(got[k]["min"] == *std::min_element(values.begin(), values.end()));
      CHECK(got[k]["max"] == *std::max_element(values.begin(), values.end()));
    }
  }
}
