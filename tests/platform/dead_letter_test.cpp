#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "platform/dead_letter.h"

using namespace sluice;

TEST_CASE("dead letters are JSON lines with the reason; binary payloads are base64") {
  char tmpl[] = "/tmp/sluice-dl-XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::string path = dir + "/dead-letter.jsonl";
  {
    auto store = OpenDeadLetterFile(path);
    REQUIRE(store.ok());
    REQUIRE((*store)->Put({5, "source", "plant", "sensors/a", "payload is not valid JSON", "{oops"}).ok());
    REQUIRE((*store)->Put({6, "source", "plant", "sensors/b", "payload is not valid JSON",
                           std::string("\xff\x00\x01", 3)}).ok());
  }
  std::ifstream in(path);
  std::string line;
  REQUIRE(std::getline(in, line));
  auto first = nlohmann::json::parse(line);
  CHECK(first["source"] == "plant");
  CHECK(first["origin"] == "source");
  CHECK(first["topic"] == "sensors/a");
  CHECK(first["reason"] == "payload is not valid JSON");
  CHECK(first["payload"] == "{oops");
  CHECK(first["time"] == 5);
  REQUIRE(std::getline(in, line));
  auto second = nlohmann::json::parse(line);
  CHECK(second["payload"] == "/wAB");
  CHECK(second["payload_encoding"] == "base64");
  std::filesystem::remove_all(dir);
}

TEST_CASE("opening a dead-letter file in a missing directory fails with the path") {
  auto store = OpenDeadLetterFile("/nonexistent-dir-for-sluice/dl.jsonl");
  REQUIRE_FALSE(store.ok());
  CHECK(store.status().message().find("/nonexistent-dir-for-sluice/dl.jsonl") != std::string::npos);
}
