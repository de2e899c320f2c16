#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <string>

#include "platform/dead_letter.h"

using namespace sluice;

TEST_CASE("a dead letter is one JSON line with the reason, a binary payload in base64") {
  std::string line = DeadLetterJson({5, "source", "plant", "sensors/a", "payload is not valid JSON",
                                     "{oops\n\"x\""});
  CHECK(line.find('\n') == std::string::npos);
  auto first = nlohmann::json::parse(line);
  CHECK(first["source"] == "plant");
  CHECK(first["origin"] == "source");
  CHECK(first["topic"] == "sensors/a");
  CHECK(first["reason"] == "payload is not valid JSON");
  CHECK(first["payload"] == "{oops\n\"x\"");
  CHECK(first["time"] == 5);
  CHECK_FALSE(first.contains("payload_encoding"));

  auto second = nlohmann::json::parse(DeadLetterJson({6, "source", "plant", "sensors/b",
                                                     "payload is not valid JSON",
                                                     std::string("\xff\x00\x01", 3)}));
  CHECK(second["payload"] == "/wAB");
  CHECK(second["payload_encoding"] == "base64");
}

TEST_CASE("a dead letter's name is keyed by its origin, an empty topic is left out") {
  auto sink = nlohmann::json::parse(DeadLetterJson({7, "sink", "cloud", "", "rejected", "{}"}));
  CHECK(sink["sink"] == "cloud");
  CHECK(sink["origin"] == "sink");
  CHECK_FALSE(sink.contains("topic"));
  auto late = nlohmann::json::parse(DeadLetterJson({8, "pipeline", "temp_1m", "t", "late", ""}));
  CHECK(late["pipeline"] == "temp_1m");
  CHECK(late["payload"] == "");
  // A row damaged on disk still prints as JSON.
  auto damaged = nlohmann::json::parse(
      DeadLetterJson({9, std::string("\xff", 1), std::string("\xfe", 1), std::string("\xfd", 1),
                      std::string("\xfc", 1), "p"}));
  CHECK(damaged.contains("name"));
  CHECK(damaged["reason"].is_string());
}
