#include <catch2/catch.hpp>

#include "operators/topic_pattern.h"

using sluice::operators::Field;
using sluice::operators::TopicPattern;

namespace {

std::vector<Field> Captures(const TopicPattern& p, const std::string& topic, bool* matched) {
  std::vector<Field> fields;
  *matched = p.Match(topic, &fields);
  return fields;
}

}  // namespace

TEST_CASE("topic pattern captures named levels") {
  auto p = TopicPattern::Parse("sensors/{site}/{device}");
  REQUIRE(p.ok());
  bool matched = false;
  auto fields = Captures(*p, "sensors/north/dev-7", &matched);
  REQUIRE(matched);
  REQUIRE(fields.size() == 2);
  CHECK(fields[0] == Field{"site", std::string("north")});
  CHECK(fields[1] == Field{"device", std::string("dev-7")});
  CHECK(p->CaptureNames() == std::vector<std::string>{"site", "device"});
}

TEST_CASE("topic pattern refuses topics of another shape") {
  auto p = TopicPattern::Parse("sensors/{site}/{device}");
  REQUIRE(p.ok());
  bool matched = true;
  SECTION("shorter") { CHECK(Captures(*p, "sensors/north", &matched).empty()); }
  SECTION("longer") { CHECK(Captures(*p, "sensors/north/dev-7/extra", &matched).empty()); }
  SECTION("other literal") { CHECK(Captures(*p, "actuators/north/dev-7", &matched).empty()); }
  CHECK_FALSE(matched);
}

TEST_CASE("topic pattern wildcards") {
  SECTION("+ matches one level without capturing") {
    auto p = TopicPattern::Parse("plant/+/{device}");
    REQUIRE(p.ok());
    bool matched = false;
    auto fields = Captures(*p, "plant/hall-3/dev-1", &matched);
    CHECK(matched);
    REQUIRE(fields.size() == 1);
    CHECK(fields[0].name == "device");
  }
  SECTION("# matches the rest, including nothing") {
    auto p = TopicPattern::Parse("plant/{site}/#");
    REQUIRE(p.ok());
    bool matched = false;
    CHECK(Captures(*p, "plant/a/b/c/d", &matched).size() == 1);
    CHECK(matched);
    CHECK(Captures(*p, "plant/a", &matched).size() == 1);
    CHECK(matched);
  }
  SECTION("empty levels are levels") {
    auto p = TopicPattern::Parse("{a}/{b}");
    REQUIRE(p.ok());
    bool matched = false;
    auto fields = Captures(*p, "/x", &matched);
    CHECK(matched);
    REQUIRE(fields.size() == 2);
    CHECK(fields[0].value == sluice::operators::Value(std::string("")));
  }
}

TEST_CASE("topic pattern syntax errors") {
  CHECK(TopicPattern::Parse("").status().code() == sluice::StatusCode::kInvalidArgument);
  CHECK(TopicPattern::Parse("a/#/b").status().message().find("'#' must be the last") !=
        std::string::npos);
  CHECK(TopicPattern::Parse("a/{x}/{x}").status().message().find("appears twice") !=
        std::string::npos);
  CHECK(TopicPattern::Parse("a/pre{x}").status().message().find("mixes text") !=
        std::string::npos);
  CHECK(TopicPattern::Parse("a/{x y}").status().message().find("must be a name") !=
        std::string::npos);
}

TEST_CASE("MQTT filter matching") {
  using sluice::operators::TopicMatchesFilter;
  CHECK(TopicMatchesFilter("sensors/+/+", "sensors/a/b"));
  CHECK_FALSE(TopicMatchesFilter("sensors/+/+", "sensors/a"));
  CHECK_FALSE(TopicMatchesFilter("sensors/+/+", "sensors/a/b/c"));
  CHECK(TopicMatchesFilter("sensors/#", "sensors/a/b/c"));
  CHECK(TopicMatchesFilter("sensors/#", "sensors"));
  CHECK(TopicMatchesFilter("#", "anything/at/all"));
  CHECK(TopicMatchesFilter("a/b", "a/b"));
  CHECK_FALSE(TopicMatchesFilter("a/b", "a/c"));
}
