#include <catch2/catch.hpp>

#include "sinks/record_template.h"

using sluice::sinks::RecordTemplate;

namespace {

std::string Render(const std::string& text, const std::string& body) {
  auto t = RecordTemplate::Parse(text);
  REQUIRE(t.ok());
  auto out = t->Render(body);
  return out.ok() ? *out : "ERROR: " + out.status().ToString();
}

const char* kAggregate =
    R"({"id":"a:1","agent":"gw","pipeline":"temp_1m","kind":"aggregate","key":{"site":"s-01","line":7},)"
    R"("window":{"start":1,"end":2},"values":{"temp_avg":41.5}})";
const char* kReading =
    R"({"id":"r:1","agent":"gw","pipeline":"raw","kind":"reading","topic":"t/{x}",)"
    R"("fields":{"device":"dev \"7\"","ok":true,"nested":{"a":1},"none":null}})";

}  // namespace

TEST_CASE("placeholders are filled from the top level, key, fields and value") {
  CHECK(Render("telemetry", kAggregate) == "telemetry");
  CHECK(Render("{pipeline}.{site}", kAggregate) == "temp_1m.s-01");
  CHECK(Render("line-{line}", kAggregate) == "line-7");
  CHECK(Render("{key.site}/{window.end}", kAggregate) == "s-01/2");
  CHECK(Render("d/{device}/{ok}", kReading) == "d/dev \"7\"/true");
  CHECK(Render("{topic}", kReading) == "t/{x}");  // braces inside strings are text
}

TEST_CASE("a missing or non-scalar field is an error naming the placeholder") {
  CHECK(Render("{device}", kAggregate).find("no value for {device}") != std::string::npos);
  CHECK(Render("{nested}", kReading).find("not a string, number or boolean") != std::string::npos);
  CHECK(Render("{none}", kReading).find("{none}") != std::string::npos);
  CHECK(Render("{values}", kAggregate).find("{values}") != std::string::npos);
  CHECK(Render("{x}", "not json").find("no value") != std::string::npos);
}

TEST_CASE("malformed templates are refused") {
  CHECK_FALSE(RecordTemplate::Parse("a{").ok());
  CHECK_FALSE(RecordTemplate::Parse("a}b").ok());
  CHECK_FALSE(RecordTemplate::Parse("{}").ok());
  CHECK(RecordTemplate::Parse("plain").ok());
  CHECK_FALSE(RecordTemplate::Parse("plain")->has_placeholders());
  CHECK(RecordTemplate::Parse("{a}")->has_placeholders());
}
