// The routes' bodies without a running agent: the exposition format
// (escaping, families, optional figures), readiness, /status JSON and the
// `sluice status` tables made from it.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <map>
#include <set>
#include <sstream>

#include "agent/metrics.h"
#include "agent/status_cli.h"

using namespace sluice;
using namespace sluice::agent;

namespace {

AgentSnapshot Sample() {
  AgentSnapshot s;
  s.agent_id = "gw-1";
  s.now_ms = 1'700'000'010'000;
  s.started_ms = 1'700'000'000'000;
  s.uptime_seconds = 10;
  s.sources.push_back({"plant", 12, 340, 2, 3, true});
  AgentSnapshot::Pipeline p;
  p.name = "temp_1m";
  p.readings = 10;
  p.outputs = 3;
  p.op.late = 1;
  p.op.filtered = 4;
  p.op.open_windows = 2;
  p.op.keys = 2;
  p.op.firing = 1;
  s.pipelines.push_back(p);
  AgentSnapshot::Sink sink;
  sink.name = "cloud";
  sink.type = "kafka";
  QueueStats q;
  q.sink = "cloud";
  q.records = 5;
  q.bytes = 500;
  q.oldest_ms = 1'700'000'007'500;
  q.appended = 9;
  q.delivered = 4;
  q.dropped_oldest = 0;
  q.dropped_newest = 1;
  sink.queue = q;
  sink.retried = 6;
  sink.health.failing = true;
  sink.health.last_error = "broker down";
  s.sinks.push_back(sink);
  return s;
}

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

bool HasLine(const std::string& text, const std::string& line) {
  for (const std::string& l : Lines(text)) {
    if (l == line) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("EscapeLabelValue escapes backslash, double quote and newline, nothing else") {
  CHECK(EscapeLabelValue("plain-name_1") == "plain-name_1");
  CHECK(EscapeLabelValue("a\\b") == "a\\\\b");
  CHECK(EscapeLabelValue("say \"hi\"") == "say \\\"hi\\\"");
  CHECK(EscapeLabelValue("two\nlines") == "two\\nlines");
  CHECK(EscapeLabelValue("tab\there, ünïcode") == "tab\there, ünïcode");
  CHECK(EscapeLabelValue("") == "");
}

TEST_CASE("FormatPrometheus: HELP and TYPE once per family before its samples, labels escaped") {
  AgentSnapshot s = Sample();
  s.agent_id = "gw \"quoted\" \\ and\nnewline";
  const std::string text = FormatPrometheus(s, ProcessFigures{uint64_t{4096}, 1.5, 1.6e9});
  INFO(text);
  REQUIRE(!text.empty());
  CHECK(text.back() == '\n');

  SECTION("escaping") {
    CHECK(HasLine(text, "sluice_agent_info{id=\"gw \\\"quoted\\\" \\\\ and\\nnewline\"} 1"));
  }
  SECTION("each family declared once, samples after their TYPE and contiguous") {
    std::map<std::string, int> types;
    std::string current;
    std::set<std::string> done;
    for (const std::string& line : Lines(text)) {
      REQUIRE(!line.empty());
      if (line.rfind("# TYPE ", 0) == 0) {
        std::string name = line.substr(7, line.find(' ', 7) - 7);
        CHECK(++types[name] == 1);
        continue;
      }
      if (line[0] == '#') {
        CHECK(line.rfind("# HELP ", 0) == 0);
        continue;
      }
      std::string name = line.substr(0, line.find_first_of("{ "));
      CHECK(types.count(name) == 1);
      if (name != current) {
        CHECK(done.count(name) == 0);
        if (!current.empty()) done.insert(current);
        current = name;
      }
      CHECK(name.rfind("sluice_", 0) == 0);
    }
  }
  SECTION("figures, in base units") {
    CHECK(HasLine(text, "# TYPE sluice_source_messages_total counter"));
    CHECK(HasLine(text, "sluice_source_messages_total{source=\"plant\"} 12"));
    CHECK(HasLine(text, "sluice_source_decode_errors_total{source=\"plant\"} 2"));
    CHECK(HasLine(text, "sluice_source_retained_skipped_total{source=\"plant\"} 3"));
    CHECK(HasLine(text, "sluice_source_connected{source=\"plant\"} 1"));
    CHECK(HasLine(text, "sluice_pipeline_late_total{pipeline=\"temp_1m\"} 1"));
    CHECK(HasLine(text, "sluice_pipeline_filtered_total{pipeline=\"temp_1m\"} 4"));
    CHECK(HasLine(text, "sluice_pipeline_open_windows{pipeline=\"temp_1m\"} 2"));
    CHECK(HasLine(text, "sluice_pipeline_alerts_firing{pipeline=\"temp_1m\"} 1"));
    CHECK(HasLine(text, "sluice_sink_queued_records{sink=\"cloud\"} 5"));
    CHECK(HasLine(text, "sluice_sink_queued_bytes{sink=\"cloud\"} 500"));
    CHECK(HasLine(text, "sluice_sink_oldest_record_age_seconds{sink=\"cloud\"} 2.5"));
    CHECK(HasLine(text, "sluice_sink_dropped_records_total{sink=\"cloud\",reason=\"drop_oldest\"} 0"));
    CHECK(HasLine(text, "sluice_sink_dropped_records_total{sink=\"cloud\",reason=\"drop_newest\"} 1"));
    CHECK(HasLine(text, "sluice_sink_retries_total{sink=\"cloud\"} 6"));
    CHECK(HasLine(text, "sluice_sink_failing{sink=\"cloud\"} 1"));
    CHECK(HasLine(text, "sluice_sink_last_success_timestamp_seconds{sink=\"cloud\"} 0"));
    CHECK(HasLine(text, "sluice_process_resident_memory_bytes 4096"));
    CHECK(HasLine(text, "sluice_process_cpu_seconds_total 1.5"));
    CHECK(HasLine(text, "sluice_process_start_time_seconds 1600000000"));
    CHECK(HasLine(text, "sluice_store_writable 1"));
  }
  SECTION("figures not known are left out, not reported as 0") {
    CHECK(text.find("sluice_sink_connected") == std::string::npos);  // no sink keeps a connection
    CHECK(text.find("sluice_store_journal_readings") == std::string::npos);  // not scanned
    CHECK(text.find("sluice_store_dead_letters") == std::string::npos);
    CHECK(text.find("sluice_store_checkpoint_age_seconds") == std::string::npos);  // none yet
  }
}

TEST_CASE("FormatPrometheus: connection, store scan and checkpoint figures when known") {
  AgentSnapshot s = Sample();
  s.sinks[0].health.connected = false;
  s.store.journal = Store::JournalStats{7, 700};
  s.store.dead_letters = DeadLetterStats{3, 300, 10, 7, 0};
  s.store.last_checkpoint_ms = s.now_ms - 4000;
  s.store.writable = false;
  const std::string text = FormatPrometheus(s, ProcessFigures{});
  INFO(text);
  CHECK(HasLine(text, "sluice_sink_connected{sink=\"cloud\"} 0"));
  CHECK(HasLine(text, "sluice_store_journal_readings 7"));
  CHECK(HasLine(text, "sluice_store_journal_bytes 700"));
  CHECK(HasLine(text, "sluice_store_dead_letters 3"));
  CHECK(HasLine(text, "sluice_store_dead_letters_dropped_total 7"));
  CHECK(HasLine(text, "sluice_store_checkpoint_age_seconds 4"));
  CHECK(HasLine(text, "sluice_store_writable 0"));
  CHECK(text.find("sluice_process_resident_memory_bytes") == std::string::npos);
}

TEST_CASE("CheckReadiness names every cause") {
  AgentSnapshot s = Sample();
  CHECK(CheckReadiness(s).ready);
  s.sources.push_back({"backup", 0, 0, 0, 0, false});
  s.store.writable = false;
  Readiness r = CheckReadiness(s);
  CHECK_FALSE(r.ready);
  CHECK(r.reason.find("source 'backup' is not connected") != std::string::npos);
  CHECK(r.reason.find("plant") == std::string::npos);
  CHECK(r.reason.find("store cannot commit") != std::string::npos);
  s.sources.pop_back();
  s.store.writable = true;
  s.responsive = false;
  CHECK_FALSE(CheckReadiness(s).ready);
}

TEST_CASE("FormatStatusJson: the documented fields, and bytes that are not UTF-8 do not throw") {
  AgentSnapshot s = Sample();
  s.sinks[0].health.last_error = "bad \xff\xfe bytes";
  const std::string text = FormatStatusJson(s);
  auto doc = nlohmann::json::parse(text);
  CHECK(doc["agent"]["id"] == "gw-1");
  CHECK(doc["agent"]["ready"] == true);
  CHECK(doc["sources"][0]["name"] == "plant");
  CHECK(doc["sources"][0]["messages"] == 12);
  CHECK(doc["pipelines"][0]["alerts_firing"] == 1);
  CHECK(doc["sinks"][0]["queued_records"] == 5);
  CHECK(doc["sinks"][0]["health"] == "failing");
  CHECK(doc["sinks"][0]["connected"].is_null());
  {
    AgentSnapshot refusing = s;
    refusing.sinks[0].health.failing = false;
    refusing.sinks[0].health.refusing = true;
    CHECK(nlohmann::json::parse(FormatStatusJson(refusing))["sinks"][0]["health"] == "refusing");
  }
  CHECK(doc["sinks"][0]["last_error"].get<std::string>().rfind("bad ", 0) == 0);
  CHECK(doc["alerts_firing"]["total"] == 1);
  CHECK(doc["alerts_firing"]["by_pipeline"]["temp_1m"] == 1);

  SECTION("sluice status renders it as tables") {
    auto tables = FormatStatusTables(text);
    REQUIRE(tables.ok());
    INFO(*tables);
    CHECK(tables->find("agent gw-1") != std::string::npos);
    CHECK(tables->find("\nplant ") != std::string::npos);
    CHECK(tables->find("\ntemp_1m ") != std::string::npos);
    CHECK(tables->find("\ncloud ") != std::string::npos);
    CHECK(tables->find("failing") != std::string::npos);
    CHECK(tables->find("alerts firing: 1 (temp_1m: 1)") != std::string::npos);
  }
  SECTION("anything else is refused") {
    CHECK_FALSE(FormatStatusTables("not json").ok());
    CHECK_FALSE(FormatStatusTables("{\"x\":1}").ok());
    CHECK_FALSE(FormatStatusTables("[1,2]").ok());
  }
}
