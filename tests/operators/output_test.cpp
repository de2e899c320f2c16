#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "operators/operator.h"
#include "operators/output.h"

using namespace sluice::operators;

namespace {

Record Reading() {
  Record r;
  r.topic = "sensors/north/dev-1";
  r.event_time_ms = 1700000000123;
  r.fields = {{"device", std::string("dev-1")}, {"temp", 21.5}, {"n", int64_t{7}},
              {"note", std::string("a \"quoted\"\nline")}, {"raw", RawJson{"[1,2]"}}};
  return r;
}

class CollectingEmitter : public Emitter {
 public:
  void Emit(sluice::Envelope e, const Record&) override { out.push_back(std::move(e)); }
  void Reject(const Record&, std::string_view) override {}
  std::vector<sluice::Envelope> out;
};

}  // namespace

TEST_CASE("a reading's output record has the documented shape") {
  sluice::Envelope e = MakeReadingEnvelope({"gw-1", "raw"}, Reading());
  auto j = nlohmann::json::parse(e.body);
  CHECK(j["id"] == e.id);
  CHECK(j["agent"] == "gw-1");
  CHECK(j["pipeline"] == "raw");
  CHECK(j["kind"] == "reading");
  CHECK(j["topic"] == "sensors/north/dev-1");
  CHECK(j["time"] == 1700000000123);
  CHECK(j["fields"]["temp"] == 21.5);
  CHECK(j["fields"]["n"] == 7);
  CHECK(j["fields"]["note"] == "a \"quoted\"\nline");
  CHECK(j["fields"]["raw"] == nlohmann::json::array({1, 2}));
  CHECK(j.size() == 7);
  CHECK(e.key == "sensors/north/dev-1");
}

TEST_CASE("reading ids are stable for the same content and differ otherwise") {
  Record a = Reading();
  Record b = Reading();
  CHECK(MakeReadingEnvelope({"gw-1", "raw"}, a).id == MakeReadingEnvelope({"gw-2", "raw"}, b).id);
  CHECK(MakeReadingEnvelope({"gw-1", "raw"}, a).id.rfind("raw:", 0) == 0);
  b.event_time_ms += 1;
  CHECK(MakeReadingEnvelope({"gw-1", "raw"}, a).id != MakeReadingEnvelope({"gw-1", "raw"}, b).id);
  CHECK(MakeReadingEnvelope({"gw-1", "raw"}, a).id != MakeReadingEnvelope({"gw-1", "other"}, a).id);
}

TEST_CASE("numbers print exactly and non-finite numbers as null") {
  std::string out;
  AppendValueJson(out, 0.1);
  CHECK(out == "0.1");
  out.clear();
  AppendValueJson(out, int64_t{9007199254740993});
  CHECK(out == "9007199254740993");
  out.clear();
  AppendValueJson(out, std::numeric_limits<double>::infinity());
  CHECK(out == "null");
}

TEST_CASE("passthrough emits one reading per record") {
  auto op = NewPassthrough({"gw", "raw"});
  CollectingEmitter out;
  REQUIRE(op->OnRecord(Reading(), out).ok());
  REQUIRE(op->OnWatermark(1, out).ok());
  REQUIRE(out.out.size() == 1);
  CHECK(nlohmann::json::parse(out.out[0].body)["kind"] == "reading");
}

TEST_CASE("HashHex is FNV-1a 64") {
  // Published FNV-1a test vectors.
  CHECK(HashHex("") == "cbf29ce484222325");
  CHECK(HashHex("a") == "af63dc4c8601ec8c");
  CHECK(HashHex("foobar") == "85944171f73967e8");
}
