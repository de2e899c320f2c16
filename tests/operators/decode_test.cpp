#include <catch2/catch.hpp>

#include "operators/decode.h"

using namespace sluice::operators;
using sluice::StatusCode;

namespace {

DecodeOptions TimedOptions(TimeUnit unit = TimeUnit::kMillis) {
  DecodeOptions o;
  o.time_field = "ts";
  o.time_unit = unit;
  return o;
}

}  // namespace

TEST_CASE("decoding a flat JSON payload keeps every field with its type") {
  JsonDecoder decoder(TimedOptions());
  Record r;
  REQUIRE(decoder
              .Decode("sensors/a/b",
                      R"({"ts":1700000000123,"temp":21.5,"n":42,"ok":true,"label":"x","none":null,)"
                      R"("nested":{"a":[1,2]}})",
                      999, &r)
              .ok());
  CHECK(r.topic == "sensors/a/b");
  CHECK(r.event_time_ms == 1700000000123);
  CHECK(r.arrival_ms == 999);
  CHECK(*r.Find("temp") == Value(21.5));
  CHECK(*r.Find("n") == Value(int64_t{42}));
  CHECK(*r.Find("ok") == Value(true));
  CHECK(*r.Find("label") == Value(std::string("x")));
  CHECK(*r.Find("none") == Value(std::monostate{}));
  CHECK(*r.Find("nested") == Value(RawJson{R"({"a":[1,2]})"}));
  CHECK(*r.Find("ts") == Value(int64_t{1700000000123}));
  CHECK(r.Find("missing") == nullptr);
}

TEST_CASE("event time units") {
  Record r;
  SECTION("seconds, fractional") {
    REQUIRE(JsonDecoder(TimedOptions(TimeUnit::kSeconds)).Decode("t", R"({"ts":1700000000.5})", 0, &r).ok());
    CHECK(r.event_time_ms == 1700000000500);
  }
  SECTION("microseconds") {
    REQUIRE(JsonDecoder(TimedOptions(TimeUnit::kMicros)).Decode("t", R"({"ts":1700000000123456})", 0, &r).ok());
    CHECK(r.event_time_ms == 1700000000123);
  }
  SECTION("nanoseconds") {
    REQUIRE(JsonDecoder(TimedOptions(TimeUnit::kNanos)).Decode("t", R"({"ts":1700000000123456789})", 0, &r).ok());
    CHECK(r.event_time_ms == 1700000000123);
  }
  SECTION("rfc3339 with offset") {
    REQUIRE(JsonDecoder(TimedOptions(TimeUnit::kRfc3339))
                .Decode("t", R"({"ts":"2023-11-14T23:13:20.123+01:00"})", 0, &r)
                .ok());
    CHECK(r.event_time_ms == 1700000000123);  // 23:13:20+01:00 is 22:13:20Z
  }
  SECTION("no time field configured: arrival time") {
    REQUIRE(JsonDecoder(DecodeOptions{}).Decode("t", R"({"temp":1})", 777, &r).ok());
    CHECK(r.event_time_ms == 777);
  }
}

TEST_CASE("RFC 3339 parsing") {
  CHECK(ParseRfc3339Millis("1970-01-01T00:00:00Z") == 0);
  CHECK(ParseRfc3339Millis("2000-02-29T12:00:00.5Z") == 951825600500);
  CHECK(ParseRfc3339Millis("1969-12-31T23:59:59Z") == -1000);
  CHECK_FALSE(ParseRfc3339Millis("2000-13-01T00:00:00Z"));
  // Days the month does not have are refused, not rolled into the next one.
  CHECK(ParseRfc3339Millis("2024-02-29T00:00:00Z") == 1709164800000);
  CHECK_FALSE(ParseRfc3339Millis("2026-02-29T00:00:00Z"));
  CHECK_FALSE(ParseRfc3339Millis("2026-02-30T21:44:52Z"));
  CHECK_FALSE(ParseRfc3339Millis("2026-04-31T00:00:00Z"));
  CHECK_FALSE(ParseRfc3339Millis("2100-02-29T00:00:00Z"));
  CHECK(ParseRfc3339Millis("2026-12-31T23:59:59Z") == 1798761599000);
  CHECK_FALSE(ParseRfc3339Millis("2000-01-01 00:00:00"));
  CHECK_FALSE(ParseRfc3339Millis("2000-01-01T00:00:00Zjunk"));
  CHECK_FALSE(ParseRfc3339Millis(""));
}

TEST_CASE("an event time further ahead of the arrival than max_ahead is refused, naming both") {
  DecodeOptions options = TimedOptions();
  options.max_ahead_ms = 5 * 60 * 1000;
  JsonDecoder decoder(options);
  Record r;
  const int64_t arrival = 1800000000000;
  auto payload = [](int64_t ts) { return "{\"ts\":" + std::to_string(ts) + ",\"temp\":1}"; };
  REQUIRE(decoder.Decode("t", payload(arrival + 300000), arrival, &r).ok());  // just within
  CHECK(r.event_time_ms == arrival + 300000);
  REQUIRE(decoder.Decode("t", payload(arrival - 86400000), arrival, &r).ok());  // behind: late, not refused here
  sluice::Status s = decoder.Decode("t", payload(arrival + 300001), arrival, &r);
  CHECK(s.code() == StatusCode::kInvalidArgument);
  s = decoder.Decode("t", payload(arrival + 365LL * 86400000), arrival, &r);
  CHECK(s.message() ==
        "event time 1831536000000 is 365.0 days ahead of the gateway's clock (more than "
        "time.max_ahead, 5.0 min): is the device's clock right?");
  s = decoder.Decode("t", payload(arrival + 2 * 3600000), arrival, &r);
  CHECK(s.message().find("is 2.0 h ahead") != std::string_view::npos);
  options.max_ahead_ms = 0;  // no limit
  CHECK(JsonDecoder(options).Decode("t", payload(arrival + 365LL * 86400000), arrival, &r).ok());
}

TEST_CASE("bad payloads are refused with a reason") {
  JsonDecoder decoder(TimedOptions());
  Record r;
  auto reason = [&](std::string_view payload) {
    sluice::Status s = decoder.Decode("t", payload, 0, &r);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    return std::string(s.message());
  };
  CHECK(reason("not json") == "payload is not valid JSON");
  CHECK(reason(R"({"ts":1,"temp":)") == "payload is not valid JSON");
  CHECK(reason("") == "payload is not valid JSON");
  CHECK(reason("[1,2]") == "payload is a JSON array, expected an object");
  CHECK(reason("42") == "payload is a JSON number, expected an object");
  CHECK(reason(R"({"temp":1})") == "payload has no time field 'ts'");
  CHECK(reason(R"({"ts":"yesterday"})") == "time field 'ts' is \"yesterday\", expected a number in ms");
  CHECK(reason(R"({"ts":1e300})").find("expected a number in ms") != std::string::npos);
  CHECK(reason("\xff\xfe{}") == "payload is not valid JSON");
}

TEST_CASE("projection keeps only what pipelines read") {
  DecodeOptions o = TimedOptions();
  o.projection = Projection::Only({"temp"});
  Record r;
  REQUIRE(JsonDecoder(o).Decode("t", R"({"ts":5,"temp":1.5,"hum":40})", 0, &r).ok());
  REQUIRE(r.fields.size() == 1);
  CHECK(r.fields[0].name == "temp");
  CHECK(r.event_time_ms == 5);  // the time field is read even when not projected
}

TEST_CASE("dotted names read members of nested objects, at any depth") {
  DecodeOptions o = TimedOptions();
  o.projection = Projection::Only({"sensor.temp", "meta.loc.site", "flat.name"});
  o.projection.nested = {"sensor.temp", "meta.loc.site", "flat.name"};
  const std::string payload =
      R"({"ts":1,"sensor":{"x":[1,{"temp":5}],"temp":90.5},"meta":{"loc":{"site":"A\u00e9"},"n":1},)"
      R"("other":{"temp":1},"flat.name":7})";
  Record r;
  REQUIRE(JsonDecoder(o).Decode("t", payload, 0, &r).ok());
  REQUIRE(r.fields.size() == 3);
  CHECK(r.fields[0].name == "flat.name");  // a top-level key spelt with a dot
  CHECK(r.fields[0].value == Value{int64_t{7}});
  CHECK_FALSE(r.fields[0].nested);
  CHECK(r.fields[1].name == "meta.loc.site");
  CHECK(r.fields[1].value == Value{std::string("A\u00e9")});
  CHECK(r.fields[1].nested);
  CHECK(r.fields[2].name == "sensor.temp");
  CHECK(r.fields[2].value == Value{90.5});

  // Keeping every field, the object stays as it came, beside the copy.
  o.projection = Projection::All();
  o.projection.nested = {"sensor.temp"};
  REQUIRE(JsonDecoder(o).Decode("t", R"({"ts":1,"sensor":{"temp":3}})", 0, &r).ok());
  REQUIRE(r.fields.size() == 3);  // ts too
  CHECK(r.fields[0].name == "sensor");
  CHECK(std::holds_alternative<RawJson>(r.fields[0].value));
  CHECK(r.fields[1].name == "sensor.temp");
  CHECK(r.fields[1].nested);
  CHECK(r.fields[2].name == "ts");

  // A dotted name inside another one: both.
  o.projection = Projection::Only({"a.b", "a.b.c"});
  o.projection.nested = {"a.b", "a.b.c"};
  REQUIRE(JsonDecoder(o).Decode("t", R"({"ts":1,"a":{"b":{"c":4,"d":5}}})", 0, &r).ok());
  REQUIRE(r.Find("a.b.c") != nullptr);
  CHECK(*r.Find("a.b.c") == Value{int64_t{4}});
  REQUIRE(r.Find("a.b") != nullptr);
  CHECK(std::holds_alternative<RawJson>(*r.Find("a.b")));
  o.projection = Projection::All();
  o.projection.nested = {"sensor.temp"};

  // A broken nested object is a broken payload; a missing member is missing.
  CHECK_FALSE(JsonDecoder(o).Decode("t", R"({"ts":1,"sensor":{"temp":})", 0, &r).ok());
  REQUIRE(JsonDecoder(o).Decode("t", R"({"ts":1,"sensor":{"hum":3}})", 0, &r).ok());
  CHECK(r.Find("sensor.temp") == nullptr);
}

TEST_CASE("topic fields come first and win over payload fields of the same name") {
  DecodeOptions o = TimedOptions();
  o.topic_fields = *TopicPattern::Parse("sensors/{site}/{device}");
  JsonDecoder decoder(o);
  Record r;
  REQUIRE(decoder.Decode("sensors/north/dev-1", R"({"ts":1,"device":"spoofed","temp":3})", 0, &r).ok());
  REQUIRE(r.fields.size() == 4);
  CHECK(r.fields[0] == Field{"site", std::string("north")});
  CHECK(r.fields[1] == Field{"device", std::string("dev-1")});
  CHECK(*r.Find("device") == Value(std::string("dev-1")));

  sluice::Status s = decoder.Decode("other/topic", R"({"ts":1})", 0, &r);
  CHECK(s.code() == StatusCode::kInvalidArgument);
  CHECK(s.message() == "topic 'other/topic' does not match topic_fields 'sensors/{site}/{device}'");
}
