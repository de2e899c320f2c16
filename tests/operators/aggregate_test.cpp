// Aggregator: exact results on hand-computed inputs, skipping, first/last
// ordering, Merge against adding everything to one state, Validate on damaged
// states, state size.
//
// Percentiles: the exact value is the sorted sample at rank floor(q * (n - 1))
// and the aggregator promises 1% relative error against it (sketch.h).
#include "operators/aggregate.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

namespace sluice::operators {
namespace {

constexpr double kAlpha = 0.01;  // the accuracy aggregate.cc documents

AggregateSpec Spec(std::string name, AggregateKind kind, std::string field = "",
                   double quantile = 0) {
  return AggregateSpec{std::move(name), kind, std::move(field), quantile};
}

Aggregator MustCreate(std::vector<AggregateSpec> specs) {
  StatusOr<Aggregator> agg = Aggregator::Create(std::move(specs));
  REQUIRE(agg.ok());
  return std::move(agg).value();
}

Record Rec(int64_t event_ms, std::vector<Field> fields, int64_t arrival_ms = 0) {
  Record r;
  r.topic = "t";
  r.event_time_ms = event_ms;
  r.arrival_ms = arrival_ms;
  r.fields = std::move(fields);
  return r;
}

double Num(const Field& f) {
  INFO("field " << f.name << " holds variant index " << f.value.index());
  REQUIRE(std::holds_alternative<double>(f.value));
  return std::get<double>(f.value);
}

int64_t Int(const Field& f) {
  INFO("field " << f.name << " holds variant index " << f.value.index());
  REQUIRE(std::holds_alternative<int64_t>(f.value));
  return std::get<int64_t>(f.value);
}

bool IsNull(const Field& f) { return std::holds_alternative<std::monostate>(f.value); }

// A seeded stream with its own uniform and Box-Muller, independent of the
// standard library's distribution algorithms.
class Gen {
 public:
  explicit Gen(uint64_t seed) : rng_(seed) {}
  uint64_t Next() { return rng_(); }
  int64_t Int(int64_t lo, int64_t hi) {
    return lo + static_cast<int64_t>(rng_() % static_cast<uint64_t>(hi - lo + 1));
  }
  double Unit() { return (static_cast<double>(rng_() >> 11) + 0.5) * 0x1.0p-53; }
  double Normal() { return std::sqrt(-2 * std::log(Unit())) * std::cos(2 * std::numbers::pi * Unit()); }

 private:
  std::mt19937_64 rng_;
};

std::vector<AggregateSpec> BasicFive() {
  return {Spec("n", AggregateKind::kCount), Spec("sum", AggregateKind::kSum, "temp"),
          Spec("avg", AggregateKind::kAvg, "temp"), Spec("min", AggregateKind::kMin, "temp"),
          Spec("max", AggregateKind::kMax, "temp")};
}

TEST_CASE("Create rejects specs that make no sense") {
  auto code = [](std::vector<AggregateSpec> specs) {
    return Aggregator::Create(std::move(specs)).status().code();
  };
  CHECK(code({Spec("p", AggregateKind::kPercentile, "x", 0)}) == StatusCode::kInvalidArgument);
  CHECK(code({Spec("p", AggregateKind::kPercentile, "x", 1)}) == StatusCode::kInvalidArgument);
  CHECK(code({Spec("p", AggregateKind::kPercentile, "x", -0.5)}) == StatusCode::kInvalidArgument);
  CHECK(code({Spec("p", AggregateKind::kPercentile, "x", std::nan(""))}) ==
        StatusCode::kInvalidArgument);
  CHECK(code({Spec("a", AggregateKind::kAvg)}) == StatusCode::kInvalidArgument);
  CHECK(code({Spec("c", AggregateKind::kCount, "x")}) == StatusCode::kInvalidArgument);
  CHECK(code({Spec("", AggregateKind::kSum, "x")}) == StatusCode::kInvalidArgument);
  CHECK(code({Spec("a", AggregateKind::kSum, "x"), Spec("a", AggregateKind::kMax, "y")}) ==
        StatusCode::kInvalidArgument);
  CHECK(code({Spec("k", static_cast<AggregateKind>(99), "x")}) == StatusCode::kInvalidArgument);

  StatusOr<Aggregator> ok = Aggregator::Create(
      {Spec("a", AggregateKind::kSum, "x"), Spec("n", AggregateKind::kCount),
       Spec("b", AggregateKind::kMax, "y"), Spec("p", AggregateKind::kPercentile, "x", 0.99)});
  REQUIRE(ok.ok());
  CHECK(ok->InputFields() == std::vector<std::string>{"x", "y"});
  CHECK(ok->specs().size() == 4);
}

TEST_CASE("Every aggregate on a small hand-computed input") {
  Aggregator agg = MustCreate(
      {Spec("n", AggregateKind::kCount), Spec("sum", AggregateKind::kSum, "temp"),
       Spec("avg", AggregateKind::kAvg, "temp"), Spec("min", AggregateKind::kMin, "temp"),
       Spec("max", AggregateKind::kMax, "temp"), Spec("first", AggregateKind::kFirst, "temp"),
       Spec("last", AggregateKind::kLast, "temp"), Spec("sd", AggregateKind::kStddev, "temp"),
       Spec("p50", AggregateKind::kPercentile, "temp", 0.5),
       Spec("p90", AggregateKind::kPercentile, "temp", 0.9),
       Spec("p99", AggregateKind::kPercentile, "temp", 0.99)});
  // 3 1 4 1 5 9 2 6, integers and doubles mixed, in event-time order.
  std::string state = agg.NewState();
  const std::vector<Value> values = {int64_t{3}, 1.0, int64_t{4}, 1.0,
                                     5.0,        int64_t{9}, 2.0, 6.0};
  for (size_t i = 0; i < values.size(); ++i) {
    agg.Add(state, Rec(static_cast<int64_t>(i) * 1000, {{"temp", values[i]}}));
  }
  REQUIRE(agg.Validate(state).ok());
  const std::vector<Field> r = agg.Results(state);
  REQUIRE(r.size() == 11);
  CHECK(r[0].name == "n");
  CHECK(Int(r[0]) == 8);
  CHECK(Num(r[1]) == 31);
  CHECK(Num(r[2]) == 3.875);  // 31 / 8
  CHECK(Num(r[3]) == 1);
  CHECK(Num(r[4]) == 9);
  CHECK(Num(r[5]) == 3);
  CHECK(Num(r[6]) == 6);
  // Deviations from 3.875: -0.875 -2.875 0.125 -2.875 1.125 5.125 -1.875 2.125;
  // squares sum to 52.875; population variance 52.875 / 8 = 6.609375.
  CHECK(Num(r[7]) == Approx(std::sqrt(6.609375)).epsilon(1e-12));
  // Sorted 1 1 2 3 4 5 6 9. p50: rank floor(0.5 * 7) = 3 -> 3;
  // p90: floor(6.3) = 6 -> 6; p99: floor(6.93) = 6 -> 6.
  CHECK(std::fabs(Num(r[8]) - 3) <= kAlpha * 3);
  CHECK(std::fabs(Num(r[9]) - 6) <= kAlpha * 6);
  CHECK(std::fabs(Num(r[10]) - 6) <= kAlpha * 6);
}

TEST_CASE("Stddev of a constant is zero and of two values is half their distance") {
  Aggregator agg = MustCreate({Spec("sd", AggregateKind::kStddev, "v")});
  std::string state = agg.NewState();
  for (int i = 0; i < 5; ++i) agg.Add(state, Rec(i, {{"v", 21.5}}));
  CHECK(Num(agg.Results(state)[0]) == 0);
  std::string two = agg.NewState();
  agg.Add(two, Rec(0, {{"v", -1.0}}));
  agg.Add(two, Rec(0, {{"v", 7.0}}));
  CHECK(Num(agg.Results(two)[0]) == 4);  // mean 3, deviations -4 and 4
}

TEST_CASE("Missing and non-numeric values are skipped but count() counts every record") {
  Aggregator agg = MustCreate(
      {Spec("n", AggregateKind::kCount), Spec("sum", AggregateKind::kSum, "temp"),
       Spec("avg", AggregateKind::kAvg, "temp"), Spec("min", AggregateKind::kMin, "temp"),
       Spec("max", AggregateKind::kMax, "temp"), Spec("first", AggregateKind::kFirst, "temp"),
       Spec("last", AggregateKind::kLast, "temp"), Spec("sd", AggregateKind::kStddev, "temp"),
       Spec("p50", AggregateKind::kPercentile, "temp", 0.5)});
  std::string state = agg.NewState();
  const std::vector<std::vector<Field>> records = {
      {{"temp", 10.0}},
      {{"temp", std::string("hot")}},
      {{"temp", true}},
      {{"temp", std::monostate{}}},
      {{"temp", RawJson{"[1,2]"}}},
      {},
      {{"other", 5.0}},
      {{"temp", std::numeric_limits<double>::quiet_NaN()}},
      {{"temp", std::numeric_limits<double>::infinity()}},
      {{"temp", int64_t{20}}},
  };
  for (size_t i = 0; i < records.size(); ++i) {
    agg.Add(state, Rec(static_cast<int64_t>(i), records[i]));
  }
  REQUIRE(agg.Validate(state).ok());
  const std::vector<Field> r = agg.Results(state);
  CHECK(Int(r[0]) == 10);
  CHECK(Num(r[1]) == 30);
  CHECK(Num(r[2]) == 15);
  CHECK(Num(r[3]) == 10);
  CHECK(Num(r[4]) == 20);
  CHECK(Num(r[5]) == 10);
  CHECK(Num(r[6]) == 20);
  CHECK(Num(r[7]) == 5);
  CHECK(Num(r[8]) == 10);  // rank floor(0.5 * 1) = 0: the exact min
}

TEST_CASE("Results of an empty state and of records without the field") {
  Aggregator agg = MustCreate(
      {Spec("n", AggregateKind::kCount), Spec("sum", AggregateKind::kSum, "v"),
       Spec("avg", AggregateKind::kAvg, "v"), Spec("min", AggregateKind::kMin, "v"),
       Spec("max", AggregateKind::kMax, "v"), Spec("first", AggregateKind::kFirst, "v"),
       Spec("last", AggregateKind::kLast, "v"), Spec("sd", AggregateKind::kStddev, "v"),
       Spec("p95", AggregateKind::kPercentile, "v", 0.95)});
  std::string state = agg.NewState();
  REQUIRE(agg.Validate(state).ok());
  std::vector<Field> r = agg.Results(state);
  REQUIRE(r.size() == 9);
  CHECK(Int(r[0]) == 0);
  for (size_t i = 1; i < r.size(); ++i) {
    INFO(r[i].name);
    CHECK(IsNull(r[i]));
  }
  agg.Add(state, Rec(1, {{"w", 1.0}}));
  agg.Add(state, Rec(2, {{"v", std::string("x")}}));
  r = agg.Results(state);
  CHECK(Int(r[0]) == 2);
  for (size_t i = 1; i < r.size(); ++i) CHECK(IsNull(r[i]));
}

TEST_CASE("first and last follow event time and ties go by arrival") {
  Aggregator agg = MustCreate(
      {Spec("first", AggregateKind::kFirst, "v"), Spec("last", AggregateKind::kLast, "v")});
  std::string state = agg.NewState();
  auto add = [&](int64_t event, int64_t arrival, double v) {
    agg.Add(state, Rec(event, {{"v", v}}, arrival));
  };
  auto first = [&] { return Num(agg.Results(state)[0]); };
  auto last = [&] { return Num(agg.Results(state)[1]); };
  add(5, 100, 10);
  CHECK(first() == 10);
  CHECK(last() == 10);
  add(2, 101, 20);  // earlier event, arrives later
  CHECK(first() == 20);
  CHECK(last() == 10);
  add(9, 102, 30);
  add(2, 103, 40);  // ties with 20 on event time, arrived later: not first
  add(9, 104, 50);  // ties with 30, arrived later: last
  CHECK(first() == 20);
  CHECK(last() == 50);
  add(2, 99, 60);  // ties with 20, earlier arrival time though added later
  CHECK(first() == 60);
  add(9, 104, 70);  // full tie with 50: the order of Add decides
  CHECK(last() == 70);
  add(2, 99, 80);  // full tie with 60: 60 was added first
  CHECK(first() == 60);
  add(-3, 500, 90);  // negative event times are just early
  CHECK(first() == 90);
  CHECK(agg.Validate(state).ok());
}

TEST_CASE("Merge equals adding everything to one state") {
  const std::vector<AggregateSpec> specs = {
      Spec("n", AggregateKind::kCount),
      Spec("sum", AggregateKind::kSum, "x"),
      Spec("avg", AggregateKind::kAvg, "x"),
      Spec("min", AggregateKind::kMin, "x"),
      Spec("max", AggregateKind::kMax, "x"),
      Spec("first", AggregateKind::kFirst, "x"),
      Spec("last", AggregateKind::kLast, "x"),
      Spec("sd", AggregateKind::kStddev, "x"),
      Spec("p50", AggregateKind::kPercentile, "x", 0.5),
      Spec("p99", AggregateKind::kPercentile, "x", 0.99),
      Spec("y_sum", AggregateKind::kSum, "y"),
      Spec("y_last", AggregateKind::kLast, "y"),
      Spec("y_p90", AggregateKind::kPercentile, "y", 0.9),
  };
  Aggregator agg = MustCreate(specs);
  Gen gen(424242);
  for (int trial = 0; trial < 200; ++trial) {
    const int n = static_cast<int>(gen.Int(0, 400));
    const int parts = static_cast<int>(gen.Int(1, 5));
    std::vector<std::vector<Record>> part_records(static_cast<size_t>(parts));
    for (int i = 0; i < n; ++i) {
      std::vector<Field> fields;
      // Integer-valued doubles: sums are exact in any order.
      if (gen.Int(0, 9) != 0) fields.push_back({"x", static_cast<double>(gen.Int(-1000, 1000))});
      if (gen.Int(0, 3) != 0) {
        fields.push_back({"y", static_cast<double>(gen.Int(1, 1) << gen.Int(0, 40))});
      }
      // Small ranges so that event and arrival times tie often.
      part_records[gen.Next() % part_records.size()].push_back(
          Rec(gen.Int(0, 20), std::move(fields), gen.Int(0, 5)));
    }
    // One state per part, and one state fed every part in turn.
    std::vector<std::string> states;
    std::string all = agg.NewState();
    for (const auto& records : part_records) {
      states.push_back(agg.NewState());
      for (const Record& r : records) {
        agg.Add(states.back(), r);
        agg.Add(all, r);
      }
    }
    std::string merged;
    if (trial % 2 == 0) {
      // Left to right: ((p0 + p1) + p2) + ...
      merged = states[0];
      for (size_t p = 1; p < states.size(); ++p) agg.Merge(merged, states[p]);
    } else {
      // As a tree: (p0 + p1) + (p2 + p3) + ...
      std::vector<std::string> level = states;
      while (level.size() > 1) {
        std::vector<std::string> next;
        for (size_t p = 0; p < level.size(); p += 2) {
          next.push_back(level[p]);
          if (p + 1 < level.size()) agg.Merge(next.back(), level[p + 1]);
        }
        level = std::move(next);
      }
      merged = level[0];
    }
    INFO("trial " << trial << ", " << n << " records in " << parts << " parts");
    REQUIRE(agg.Validate(merged).ok());
    const std::vector<Field> want = agg.Results(all);
    const std::vector<Field> got = agg.Results(merged);
    for (size_t i = 0; i < specs.size(); ++i) {
      INFO(specs[i].name);
      if (specs[i].kind == AggregateKind::kStddev && !IsNull(want[i])) {
        CHECK(Num(got[i]) == Approx(Num(want[i])).epsilon(1e-9).margin(1e-9));
      } else {
        // Exact: count, sums of integers, min, max, first, last; the same
        // sketch buckets give the same percentiles.
        CHECK(got[i] == want[i]);
      }
    }
    // The sketch regions are byte-identical (they follow the accumulators).
    const size_t sketches_at = 16 + 2 * 112;
    CHECK(merged.substr(sketches_at) == all.substr(sketches_at));
  }
}

TEST_CASE("Merging a state into itself doubles it") {
  Aggregator agg = MustCreate({Spec("n", AggregateKind::kCount),
                               Spec("sum", AggregateKind::kSum, "v"),
                               Spec("p50", AggregateKind::kPercentile, "v", 0.5)});
  std::string state = agg.NewState();
  for (int i = 1; i <= 3; ++i) agg.Add(state, Rec(i, {{"v", double(i)}}));
  agg.Merge(state, state);
  REQUIRE(agg.Validate(state).ok());
  const std::vector<Field> r = agg.Results(state);
  CHECK(Int(r[0]) == 6);
  CHECK(Num(r[1]) == 12);
  CHECK(std::fabs(Num(r[2]) - 2) <= 0.02);  // 1 1 2 2 3 3, rank floor(2.5) = 2
}

TEST_CASE("Percentiles are within 1% of the exact sample quantiles") {
  Aggregator agg = MustCreate({Spec("p001", AggregateKind::kPercentile, "ms", 0.001),
                               Spec("p50", AggregateKind::kPercentile, "ms", 0.5),
                               Spec("p90", AggregateKind::kPercentile, "ms", 0.9),
                               Spec("p95", AggregateKind::kPercentile, "ms", 0.95),
                               Spec("p99", AggregateKind::kPercentile, "ms", 0.99),
                               Spec("p999", AggregateKind::kPercentile, "ms", 0.999)});
  Gen gen(77);
  std::vector<double> values;
  std::string state = agg.NewState();
  for (int i = 0; i < 100000; ++i) {
    const double ms = std::exp(1 + 1.5 * gen.Normal());  // log-normal latencies
    values.push_back(ms);
    agg.Add(state, Rec(i, {{"ms", ms}}));
  }
  std::sort(values.begin(), values.end());
  const std::vector<Field> r = agg.Results(state);
  for (const Field& f : r) {
    const double q = [&] {
      for (const AggregateSpec& s : agg.specs()) {
        if (s.name == f.name) return s.quantile;
      }
      return -1.0;
    }();
    const double exact =
        values[static_cast<size_t>(std::floor(q * static_cast<double>(values.size() - 1)))];
    INFO(f.name << " exact " << exact << " got " << Num(f));
    CHECK(std::fabs(Num(f) - exact) <= kAlpha * exact);
  }
}

TEST_CASE("Five basic aggregates on one field take under 256 bytes of state") {
  Aggregator agg = MustCreate(BasicFive());
  std::string state = agg.NewState();
  const size_t size = state.size();
  INFO("state bytes " << size);
  CHECK(size < 256);
  for (int i = 0; i < 10000; ++i) agg.Add(state, Rec(i, {{"temp", 20.0 + i % 7}}));
  CHECK(state.size() == size);  // fixed size, no growth
  // With all the per-field aggregates it is still the same accumulator.
  Aggregator all = MustCreate(
      {Spec("n", AggregateKind::kCount), Spec("sum", AggregateKind::kSum, "temp"),
       Spec("first", AggregateKind::kFirst, "temp"), Spec("last", AggregateKind::kLast, "temp"),
       Spec("sd", AggregateKind::kStddev, "temp")});
  CHECK(all.NewState().size() == size);
}

TEST_CASE("Validate accepts good states and rejects damaged ones") {
  Aggregator agg = MustCreate({Spec("n", AggregateKind::kCount),
                               Spec("avg", AggregateKind::kAvg, "x"),
                               Spec("p95", AggregateKind::kPercentile, "x", 0.95),
                               Spec("y_max", AggregateKind::kMax, "y"),
                               Spec("y_p50", AggregateKind::kPercentile, "y", 0.5)});
  Gen gen(8);
  std::string state = agg.NewState();
  REQUIRE(agg.Validate(state).ok());
  for (int i = 0; i < 500; ++i) {
    agg.Add(state, Rec(gen.Int(0, 100), {{"x", gen.Normal() * 100}, {"y", double(gen.Int(-5, 5))}}));
  }
  REQUIRE(agg.Validate(state).ok());
  auto is_data_loss = [&](std::string_view s) {
    return agg.Validate(s).code() == StatusCode::kDataLoss;
  };

  SECTION("every truncation and an extra byte") {
    for (size_t len = 0; len < state.size(); ++len) {
      INFO("length " << len);
      CHECK(is_data_loss(std::string_view(state).substr(0, len)));
    }
    CHECK(is_data_loss(state + '\0'));
  }
  SECTION("a state of other aggregates") {
    Aggregator other = MustCreate(BasicFive());
    CHECK(is_data_loss(other.NewState()));
    CHECK(other.Validate(state).code() == StatusCode::kDataLoss);
  }
  SECTION("targeted damage") {
    auto patched = [&](size_t offset, auto value) {
      std::string s = state;
      std::memcpy(s.data() + offset, &value, sizeof value);
      return s;
    };
    CHECK(is_data_loss(patched(0, uint32_t{0})));                 // magic
    CHECK(is_data_loss(patched(8, uint64_t{3})));                 // fewer records than values
    CHECK(is_data_loss(patched(16, uint64_t{499})));              // x count vs its sketch
    CHECK(is_data_loss(patched(16 + 32, 1e9)));                   // x min above max
    CHECK(is_data_loss(patched(16 + 40, std::nan(""))));          // x max
    CHECK(is_data_loss(patched(16 + 24, -1.0)));                  // x M2
    CHECK(is_data_loss(patched(16 + 72, uint64_t{500})));         // x first sequence
    CHECK(is_data_loss(patched(16 + 112, uint64_t{0})));          // y emptied, not blank
  }
  SECTION("random damage never crashes") {
    int rejected = 0;
    for (int trial = 0; trial < 3000; ++trial) {
      std::string s = state;
      const int flips = 1 + static_cast<int>(gen.Int(0, 3));
      for (int f = 0; f < flips; ++f) {
        s[gen.Next() % s.size()] ^= static_cast<char>(1u << gen.Int(0, 7));
      }
      const Status status = agg.Validate(s);
      if (!status.ok()) {
        REQUIRE(status.code() == StatusCode::kDataLoss);
        ++rejected;
        continue;
      }
      // Accepted states are safe to use.
      (void)agg.Results(s);
      agg.Add(s, Rec(1, {{"x", 1.0}, {"y", 2.0}}));
      agg.Merge(s, state);
      REQUIRE(agg.Validate(s).ok());
    }
    CHECK(rejected > 0);
  }
}

}  // namespace
}  // namespace sluice::operators
