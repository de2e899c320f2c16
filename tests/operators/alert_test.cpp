#include "operators/alert.h"

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <optional>
#include <set>
#include <string>
#include <vector>

#include "operators/output.h"

using namespace sluice::operators;
using nlohmann::json;

namespace {

Expression Expr(std::string_view text) {
  size_t offset = 0;
  auto e = Expression::Compile(text, &offset);
  REQUIRE(e.ok());
  return *e;
}

// The rule from DESIGN.md's example: hot above 80, keyed by device.
AlertSpec Overheat() {
  AlertSpec spec;
  spec.when = Expr("temp > 80");
  spec.key = {"device"};
  return spec;
}

Record Reading(int64_t t, const std::string& device, Value temp) {
  Record r;
  r.topic = "sensors/north/" + device;
  r.event_time_ms = t;
  r.arrival_ms = t + 5;
  r.fields = {{"device", device}, {"temp", std::move(temp)}};
  return r;
}

// A reading without the temp field (a battery report on the same topic).
Record NoTemp(int64_t t, const std::string& device) {
  Record r;
  r.topic = "sensors/north/" + device;
  r.event_time_ms = t;
  r.arrival_ms = t + 5;
  r.fields = {{"device", device}, {"battery", int64_t{97}}};
  return r;
}

struct Output {
  sluice::Envelope envelope;
  Record record;
};

class Collector : public Emitter {
 public:
  void Emit(sluice::Envelope e, const Record& r) override { out.push_back({std::move(e), r}); }
  void Reject(const Record&, std::string_view) override { ++rejected; }
  std::vector<Output> out;
  int rejected = 0;
};

// Feeds `records` and returns what they emitted.
std::vector<Output> Run(Operator& op, const std::vector<Record>& records) {
  Collector c;
  for (const Record& r : records) REQUIRE(op.OnRecord(r, c).ok());
  CHECK(c.rejected == 0);
  return std::move(c.out);
}

std::string Id(std::string_view key_json, int64_t since, std::string_view suffix) {
  return "overheat:" + HashHex(key_json) + ":" + std::to_string(since) + ":" + std::string(suffix);
}

json Parse(const Output& o) {
  json j = json::parse(o.envelope.body);
  CHECK(j["id"] == o.envelope.id);  // the envelope id is the body's id
  return j;
}

constexpr char kD1[] = R"({"device":"d1"})";
constexpr char kD2[] = R"({"device":"d2"})";

}  // namespace

TEST_CASE("with for 0 the first matching record fires at once") {
  AlertSpec spec = Overheat();
  spec.severity = "critical";
  auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));

  CHECK(Run(*op, {Reading(1000, "d1", 70.5)}).empty());
  auto out = Run(*op, {Reading(2000, "d1", 85.5)});
  REQUIRE(out.size() == 1);
  // The exact text pins the member order sinks will see.
  CHECK(out[0].envelope.body ==
        R"({"id":")" + Id(kD1, 2000, "firing") +
            R"(","agent":"gw-1","pipeline":"overheat","kind":"alert","key":{"device":"d1"},)"
            R"("state":"firing","severity":"critical","value":{"device":"d1","temp":85.5},)"
            R"("at":2000,"since":2000})");
  CHECK(Parse(out[0]) == json{{"id", Id(kD1, 2000, "firing")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", "d1"}}},
                              {"state", "firing"},
                              {"severity", "critical"},
                              {"value", {{"device", "d1"}, {"temp", 85.5}}},
                              {"at", 2000},
                              {"since", 2000}});
  CHECK(out[0].envelope.key == kD1);

  // Still hot: firing already, nothing new.
  CHECK(Run(*op, {Reading(3000, "d1", 90.0)}).empty());
  CHECK(op->Stats().keys == 1);
  CHECK(op->Stats().firing == 1);
}

TEST_CASE("for: one ms before the deadline stays pending, at the deadline it fires") {
  AlertSpec spec = Overheat();
  spec.for_ms = 10000;
  auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));

  CHECK(Run(*op, {Reading(1000, "d1", 85.0)}).empty());
  CHECK(op->Stats().keys == 1);
  CHECK(op->Stats().firing == 0);
  CHECK(Run(*op, {Reading(10999, "d1", 86.0)}).empty());

  auto out = Run(*op, {Reading(11000, "d1", 87.5)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0]) == json{{"id", Id(kD1, 11000, "firing")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", "d1"}}},
                              {"state", "firing"},
                              {"severity", "warning"},
                              {"value", {{"device", "d1"}, {"temp", 87.5}}},
                              {"at", 11000},
                              {"since", 11000}});
  CHECK(op->Stats().firing == 1);
}

TEST_CASE("pending returns to ok without output when the condition ends") {
  AlertSpec spec = Overheat();
  spec.for_ms = 10000;
  auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));

  CHECK(Run(*op, {Reading(1000, "d1", 85.0), Reading(5000, "d1", 70.0)}).empty());
  CHECK(op->Stats().keys == 0);  // ok keys are forgotten

  // The old pending start is gone: 11000 is 10 s after 1000 but starts anew.
  CHECK(Run(*op, {Reading(11000, "d1", 85.0), Reading(20999, "d1", 85.0)}).empty());
  auto out = Run(*op, {Reading(21000, "d1", 85.5)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0]) == json{{"id", Id(kD1, 21000, "firing")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", "d1"}}},
                              {"state", "firing"},
                              {"severity", "warning"},
                              {"value", {{"device", "d1"}, {"temp", 85.5}}},
                              {"at", 21000},
                              {"since", 21000}});
}

TEST_CASE("hysteresis: a firing alert resolves only when clear is true") {
  AlertSpec spec = Overheat();
  spec.clear = Expr("temp < 75");
  auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));

  auto out = Run(*op, {Reading(1000, "d1", 85.0)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0])["state"] == "firing");

  // Below `when` but not below `clear`: keeps firing.
  CHECK(Run(*op, {Reading(2000, "d1", 78.0), Reading(3000, "d1", 79.5)}).empty());
  CHECK(op->Stats().firing == 1);

  out = Run(*op, {Reading(4000, "d1", 74.5)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0]) == json{{"id", Id(kD1, 1000, "resolved")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", "d1"}}},
                              {"state", "resolved"},
                              {"severity", "warning"},
                              {"value", {{"device", "d1"}, {"temp", 74.5}}},
                              {"at", 4000},
                              {"since", 1000}});
  CHECK(op->Stats().keys == 0);
  CHECK(op->Stats().firing == 0);

  // Back in ok: 78 is not above 80, so nothing; 81 fires a new episode.
  CHECK(Run(*op, {Reading(5000, "d1", 78.0)}).empty());
  out = Run(*op, {Reading(6000, "d1", 81.0)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0])["id"] == Id(kD1, 6000, "firing"));
}

TEST_CASE("without clear, the alert resolves when `when` becomes false") {
  auto op = NewAlert({"gw-1", "overheat"}, Overheat());

  REQUIRE(Run(*op, {Reading(1000, "d1", 85.0)}).size() == 1);
  auto out = Run(*op, {Reading(2000, "d1", 80.0)});  // 80 > 80 is false
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0]) == json{{"id", Id(kD1, 1000, "resolved")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", "d1"}}},
                              {"state", "resolved"},
                              {"severity", "warning"},
                              {"value", {{"device", "d1"}, {"temp", 80.0}}},
                              {"at", 2000},
                              {"since", 1000}});
  CHECK(op->Stats().keys == 0);
}

TEST_CASE("renotify repeats the firing record at exactly the interval, not before") {
  AlertSpec spec = Overheat();
  spec.renotify_ms = 60000;
  auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));

  REQUIRE(Run(*op, {Reading(1000, "d1", 85.0)}).size() == 1);
  CHECK(Run(*op, {Reading(60999, "d1", 85.0)}).empty());

  auto out = Run(*op, {Reading(61000, "d1", 86.5)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0]) == json{{"id", Id(kD1, 1000, "renotify-1")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", "d1"}}},
                              {"state", "firing"},
                              {"severity", "warning"},
                              {"value", {{"device", "d1"}, {"temp", 86.5}}},
                              {"at", 61000},
                              {"since", 1000}});

  // The next interval counts from the repeat, not from the first firing.
  CHECK(Run(*op, {Reading(120999, "d1", 86.0)}).empty());
  out = Run(*op, {Reading(121000, "d1", 87.5)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0]) == json{{"id", Id(kD1, 1000, "renotify-2")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", "d1"}}},
                              {"state", "firing"},
                              {"severity", "warning"},
                              {"value", {{"device", "d1"}, {"temp", 87.5}}},
                              {"at", 121000},
                              {"since", 1000}});

  out = Run(*op, {Reading(130000, "d1", 70.5)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0]) == json{{"id", Id(kD1, 1000, "resolved")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", "d1"}}},
                              {"state", "resolved"},
                              {"severity", "warning"},
                              {"value", {{"device", "d1"}, {"temp", 70.5}}},
                              {"at", 130000},
                              {"since", 1000}});
}

TEST_CASE("keys are independent") {
  AlertSpec spec = Overheat();
  spec.for_ms = 5000;
  auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));

  CHECK(Run(*op, {Reading(1000, "d1", 85.0), Reading(2000, "d2", 85.0),
                  Reading(3000, "d2", 70.0)})
            .empty());  // d2's cool reading does not cancel d1's pending
  auto out = Run(*op, {Reading(6000, "d1", 85.5)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0]) == json{{"id", Id(kD1, 6000, "firing")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", "d1"}}},
                              {"state", "firing"},
                              {"severity", "warning"},
                              {"value", {{"device", "d1"}, {"temp", 85.5}}},
                              {"at", 6000},
                              {"since", 6000}});

  // d2 started over at 6500; a record without the key field is its own key (null).
  Record keyless;
  keyless.topic = "sensors/north/unknown";
  keyless.event_time_ms = 7000;
  keyless.fields = {{"temp", int64_t{90}}};
  CHECK(Run(*op, {Reading(6500, "d2", 85.0), keyless}).empty());
  CHECK(op->Stats().keys == 3);
  CHECK(op->Stats().firing == 1);

  keyless.event_time_ms = 12000;
  out = Run(*op, {keyless, Reading(11000, "d2", 70.0)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0]) == json{{"id", Id(R"({"device":null})", 12000, "firing")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", nullptr}}},
                              {"state", "firing"},
                              {"severity", "warning"},
                              {"value", {{"temp", 90}}},
                              {"at", 12000},
                              {"since", 12000}});
  CHECK(out[0].envelope.key == R"({"device":null})");
  CHECK(op->Stats().keys == 2);
  CHECK(op->Stats().firing == 2);
}

TEST_CASE("the key object lists the key fields in spec order") {
  AlertSpec spec = Overheat();
  spec.key = {"site", "device", "line"};
  auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));

  Record r = Reading(1000, "d1", 85.0);
  r.fields.insert(r.fields.begin(), {"site", std::string("north")});
  auto out = Run(*op, {r});
  REQUIRE(out.size() == 1);
  const std::string key = R"({"site":"north","device":"d1","line":null})";
  CHECK(out[0].envelope.key == key);
  CHECK(out[0].envelope.body.find(R"("key":)" + key) != std::string::npos);
  CHECK(Parse(out[0]) == json{{"id", Id(key, 1000, "firing")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"site", "north"}, {"device", "d1"}, {"line", nullptr}}},
                              {"state", "firing"},
                              {"severity", "warning"},
                              {"value", {{"site", "north"}, {"device", "d1"}, {"temp", 85.0}}},
                              {"at", 1000},
                              {"since", 1000}});
}

TEST_CASE("labels appear only when configured") {
  SECTION("none configured: no labels member") {
    auto op = NewAlert({"gw-1", "overheat"}, Overheat());
    auto out = Run(*op, {Reading(1000, "d1", 85.0), Reading(2000, "d1", 70.0)});
    REQUIRE(out.size() == 2);
    for (const Output& o : out) {
      json j = Parse(o);
      CHECK_FALSE(j.contains("labels"));
      CHECK(j.size() == 10);
    }
  }
  SECTION("configured: on firing and resolved records alike") {
    AlertSpec spec = Overheat();
    spec.labels = {{"team", "cold-chain"}, {"room", "b2"}};
    auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));
    auto out = Run(*op, {Reading(1000, "d1", 85.0), Reading(2000, "d1", 70.0)});
    REQUIRE(out.size() == 2);
    CHECK(Parse(out[0]) == json{{"id", Id(kD1, 1000, "firing")},
                                {"agent", "gw-1"},
                                {"pipeline", "overheat"},
                                {"kind", "alert"},
                                {"key", {{"device", "d1"}}},
                                {"state", "firing"},
                                {"severity", "warning"},
                                {"value", {{"device", "d1"}, {"temp", 85.0}}},
                                {"at", 1000},
                                {"since", 1000},
                                {"labels", {{"team", "cold-chain"}, {"room", "b2"}}}});
    CHECK(Parse(out[1]) == json{{"id", Id(kD1, 1000, "resolved")},
                                {"agent", "gw-1"},
                                {"pipeline", "overheat"},
                                {"kind", "alert"},
                                {"key", {{"device", "d1"}}},
                                {"state", "resolved"},
                                {"severity", "warning"},
                                {"value", {{"device", "d1"}, {"temp", 70.0}}},
                                {"at", 2000},
                                {"since", 1000},
                                {"labels", {{"team", "cold-chain"}, {"room", "b2"}}}});
  }
}

TEST_CASE("severity defaults to warning and carries the configured value") {
  SECTION("default") {
    auto op = NewAlert({"gw-1", "overheat"}, Overheat());
    auto out = Run(*op, {Reading(1000, "d1", 85.0)});
    REQUIRE(out.size() == 1);
    CHECK(Parse(out[0])["severity"] == "warning");
    CHECK(*out[0].record.Find("severity") == Value(std::string("warning")));
  }
  SECTION("configured") {
    AlertSpec spec = Overheat();
    spec.severity = "critical";
    auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));
    auto out = Run(*op, {Reading(1000, "d1", 85.0), Reading(2000, "d1", 70.0)});
    REQUIRE(out.size() == 2);
    CHECK(Parse(out[0])["severity"] == "critical");
    CHECK(Parse(out[1])["severity"] == "critical");
    CHECK(*out[1].record.Find("severity") == Value(std::string("critical")));
  }
}

TEST_CASE("records missing the field are counted and neither fire, cancel nor resolve") {
  SECTION("without clear") {
    AlertSpec spec = Overheat();
    spec.for_ms = 5000;
    spec.renotify_ms = 1000;
    auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));

    CHECK(Run(*op, {NoTemp(1000, "d1")}).empty());  // ok: nothing starts
    CHECK(op->Stats().unmatched == 1);
    CHECK(op->Stats().keys == 0);

    CHECK(Run(*op, {Reading(2000, "d1", 85.0), NoTemp(3000, "d1")}).empty());
    CHECK(op->Stats().unmatched == 2);
    CHECK(op->Stats().keys == 1);  // still pending from 2000

    auto out = Run(*op, {Reading(7000, "d1", 85.0)});
    REQUIRE(out.size() == 1);
    CHECK(Parse(out[0])["id"] == Id(kD1, 7000, "firing"));

    // Firing: neither a missing field nor a string where a number belongs
    // resolves it, nor does it count as still hot for a repeat.
    CHECK(Run(*op, {NoTemp(8000, "d1"), Reading(9000, "d1", std::string("hot"))}).empty());
    CHECK(op->Stats().unmatched == 4);
    CHECK(op->Stats().firing == 1);

    out = Run(*op, {Reading(9500, "d1", 70.0)});
    REQUIRE(out.size() == 1);
    CHECK(Parse(out[0]) == json{{"id", Id(kD1, 7000, "resolved")},
                                {"agent", "gw-1"},
                                {"pipeline", "overheat"},
                                {"kind", "alert"},
                                {"key", {{"device", "d1"}}},
                                {"state", "resolved"},
                                {"severity", "warning"},
                                {"value", {{"device", "d1"}, {"temp", 70.0}}},
                                {"at", 9500},
                                {"since", 7000}});
  }
  SECTION("with clear") {
    AlertSpec spec = Overheat();
    spec.clear = Expr("temp < 75");
    auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));
    REQUIRE(Run(*op, {Reading(1000, "d1", 85.0)}).size() == 1);
    CHECK(Run(*op, {NoTemp(2000, "d1")}).empty());
    CHECK(op->Stats().unmatched == 1);
    CHECK(op->Stats().firing == 1);
    auto out = Run(*op, {Reading(3000, "d1", 70.0)});
    REQUIRE(out.size() == 1);
    CHECK(Parse(out[0])["id"] == Id(kD1, 1000, "resolved"));
    CHECK(Parse(out[0])["at"] == 3000);
  }
}

TEST_CASE("a reading older than its key's latest changes nothing") {
  AlertSpec spec = Overheat();
  spec.for_ms = 10000;
  auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));

  // Pending since 20000: neither a late hot reading (taken at face value it
  // would fire a negative span) nor a late cool one (it would cancel what
  // the newer readings say) changes that.
  CHECK(Run(*op, {Reading(20000, "d1", 85.0), Reading(5000, "d1", 85.0),
                  Reading(10000, "d1", 20.0), Reading(29999, "d1", 85.0)})
            .empty());
  auto out = Run(*op, {Reading(30000, "d1", 85.0)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0])["since"] == 30000);

  // Firing: a late cool reading does not resolve it; the next one does.
  CHECK(Run(*op, {Reading(15000, "d1", 70.5)}).empty());
  {  // A clock set back by more than an hour is judged, or it could never end.
    AlertSpec again = Overheat();
    auto other = NewAlert({"gw-1", "overheat"}, std::move(again));
    REQUIRE(Run(*other, {Reading(1800000000000, "d1", 85.0)}).size() == 1);
    auto back = Run(*other, {Reading(1000, "d1", 20.0)});
    REQUIRE(back.size() == 1);
    CHECK(Parse(back[0])["state"] == "resolved");
  }
  out = Run(*op, {Reading(30000, "d1", 70.5)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0]) == json{{"id", Id(kD1, 30000, "resolved")},
                              {"agent", "gw-1"},
                              {"pipeline", "overheat"},
                              {"kind", "alert"},
                              {"key", {{"device", "d1"}}},
                              {"state", "resolved"},
                              {"severity", "warning"},
                              {"value", {{"device", "d1"}, {"temp", 70.5}}},
                              {"at", 30000},
                              {"since", 30000}});
  CHECK(out[0].record.event_time_ms == 30000);
}

TEST_CASE("the structured output record holds key fields, state, severity, at, since") {
  AlertSpec spec = Overheat();
  spec.key = {"site", "device"};
  spec.severity = "critical";
  spec.labels = {{"team", "cold-chain"}};  // labels stay in the envelope only
  auto op = NewAlert({"gw-1", "overheat"}, std::move(spec));

  Record hot = Reading(1000, "d1", 85.0);
  hot.fields.push_back({"site", std::string("north")});
  Record cool = Reading(4000, "d1", 70.0);
  cool.fields.push_back({"site", std::string("north")});
  auto out = Run(*op, {hot, cool});
  REQUIRE(out.size() == 2);

  CHECK(out[0].record.topic == "sensors/north/d1");
  CHECK(out[0].record.event_time_ms == 1000);
  CHECK(out[0].record.arrival_ms == 1005);
  CHECK(out[0].record.fields == std::vector<Field>{{"site", std::string("north")},
                                                   {"device", std::string("d1")},
                                                   {"state", std::string("firing")},
                                                   {"severity", std::string("critical")},
                                                   {"at", int64_t{1000}},
                                                   {"since", int64_t{1000}}});
  CHECK(out[1].record.event_time_ms == 4000);
  CHECK(out[1].record.fields == std::vector<Field>{{"site", std::string("north")},
                                                   {"device", std::string("d1")},
                                                   {"state", std::string("resolved")},
                                                   {"severity", std::string("critical")},
                                                   {"at", int64_t{4000}},
                                                   {"since", int64_t{1000}}});
}

namespace {

AlertSpec Busy() {
  AlertSpec spec = Overheat();
  spec.clear = Expr("temp < 75");
  spec.for_ms = 2000;
  spec.renotify_ms = 5000;
  spec.labels = {{"team", "cold-chain"}};
  return spec;
}

// Two devices through pending, firing, repeats, missing fields, a late
// record and resolution.
std::vector<Record> BusyStream() {
  return {Reading(1000, "d1", 85.0),  Reading(1500, "d2", 90.0),  Reading(2500, "d2", 91.0),
          Reading(3000, "d1", 86.0),  NoTemp(3500, "d1"),         Reading(4000, "d2", 92.0),
          Reading(8000, "d1", 78.0),  Reading(2000, "d1", 79.0),  Reading(9000, "d2", 70.0),
          Reading(9500, "d2", 95.0),  Reading(13000, "d1", 77.0), Reading(12000, "d2", 96.0),
          Reading(14000, "d1", 74.0), Reading(15000, "d1", 99.0), Reading(17000, "d1", 99.0),
          Reading(18000, "d2", 60.0)};
}

}  // namespace

TEST_CASE("snapshot and restore mid-stream continue exactly like an uninterrupted run") {
  const std::vector<Record> stream = BusyStream();
  auto whole = NewAlert({"gw-1", "overheat"}, Busy());
  const std::vector<Output> expected = Run(*whole, stream);
  REQUIRE(expected.size() >= 6);  // the stream exercises fire, repeat and resolve

  for (size_t cut = 0; cut <= stream.size(); ++cut) {
    CAPTURE(cut);
    auto first = NewAlert({"gw-1", "overheat"}, Busy());
    std::vector<Output> got =
        Run(*first, std::vector<Record>(stream.begin(), stream.begin() + cut));
    const std::string snapshot = first->Snapshot();

    auto second = NewAlert({"gw-1", "overheat"}, Busy());
    REQUIRE(second->Restore(snapshot).ok());
    CHECK(second->Snapshot() == snapshot);
    CHECK(second->Stats().keys == first->Stats().keys);
    CHECK(second->Stats().firing == first->Stats().firing);
    for (Output& o : Run(*second, std::vector<Record>(stream.begin() + cut, stream.end()))) {
      got.push_back(std::move(o));
    }

    REQUIRE(got.size() == expected.size());
    for (size_t i = 0; i < got.size(); ++i) {
      CHECK(got[i].envelope.id == expected[i].envelope.id);
      CHECK(got[i].envelope.key == expected[i].envelope.key);
      CHECK(got[i].envelope.body == expected[i].envelope.body);
      CHECK(got[i].record.fields == expected[i].record.fields);
    }
  }
}

TEST_CASE("restoring a malformed snapshot is data loss and leaves the operator empty") {
  auto op = NewAlert({"gw-1", "overheat"}, Busy());
  (void)Run(*op, BusyStream());
  const std::string good = op->Snapshot();
  REQUIRE(op->Stats().keys > 0);

  AlertSpec two_keys = Busy();
  two_keys.key = {"site", "device"};
  auto other_spec = NewAlert({"gw-1", "overheat"}, std::move(two_keys));

  std::vector<std::string> bads = {"garbage", "", good.substr(0, good.size() - 1),
                                   good.substr(0, 10), good + "x"};
  // One flipped bit anywhere, even inside a device name where the structure
  // still parses, must not restore a different alert state.
  for (size_t i = 0; i < good.size(); ++i) {
    bads.push_back(good);
    bads.back()[i] ^= 0x01;
  }
  for (const std::string& bad : bads) {
    CAPTURE(bad);
    auto target = NewAlert({"gw-1", "overheat"}, Busy());
    REQUIRE(target->Restore(good).ok());
    sluice::Status s = target->Restore(bad);
    CHECK(s.code() == sluice::StatusCode::kDataLoss);
    CHECK(target->Stats().keys == 0);
    CHECK(target->Stats().firing == 0);
  }
  // A snapshot of a rule keyed differently does not fit this one.
  CHECK(other_spec->Restore(good).code() == sluice::StatusCode::kDataLoss);

  // Empty means empty: d1 was firing before, and now a hot reading starts
  // pending afresh instead of being part of the old episode.
  auto target = NewAlert({"gw-1", "overheat"}, Busy());
  REQUIRE(target->Restore(good).ok());
  REQUIRE(target->Restore("garbage").code() == sluice::StatusCode::kDataLoss);
  CHECK(Run(*target, {Reading(20000, "d1", 99.0)}).empty());
  auto out = Run(*target, {Reading(22000, "d1", 99.0)});
  REQUIRE(out.size() == 1);
  CHECK(Parse(out[0])["id"] == Id(kD1, 22000, "firing"));
}

TEST_CASE("ids are stable across runs and distinct per transition") {
  AlertSpec spec = Overheat();
  spec.renotify_ms = 1000;
  const std::vector<Record> stream = {
      Reading(1000, "d1", 85.0), Reading(1000, "d2", 85.0), Reading(2000, "d1", 85.0),
      Reading(3000, "d1", 85.0), Reading(3500, "d1", 70.0), Reading(4000, "d1", 85.0),
      Reading(4500, "d2", 70.0)};
  auto a = NewAlert({"gw-1", "overheat"}, spec);
  auto b = NewAlert({"gw-2", "overheat"}, spec);  // another agent, same rule
  auto out_a = Run(*a, stream);
  auto out_b = Run(*b, stream);

  std::vector<std::string> ids;
  for (const Output& o : out_a) ids.push_back(o.envelope.id);
  CHECK(ids == std::vector<std::string>{
                   Id(kD1, 1000, "firing"), Id(kD2, 1000, "firing"), Id(kD1, 1000, "renotify-1"),
                   Id(kD1, 1000, "renotify-2"), Id(kD1, 1000, "resolved"), Id(kD1, 4000, "firing"),
                   Id(kD2, 1000, "resolved")});
  CHECK(std::set<std::string>(ids.begin(), ids.end()).size() == ids.size());

  REQUIRE(out_b.size() == out_a.size());
  for (size_t i = 0; i < out_a.size(); ++i) CHECK(out_b[i].envelope.id == out_a[i].envelope.id);
}
