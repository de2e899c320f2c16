// Loading whole configs: valid ones become the right structs, invalid ones
// are refused with file:line:column, what is wrong and what was expected.
#include "config/loader.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "tests/config/test_util.h"

namespace sluice::config {
namespace {

using testing::Dump;
using testing::Errors;
using testing::RequireLoads;
using testing::RequireOneError;
using testing::TestOptions;

// Valid sections with known line counts, so that the positions below can be
// counted by eye.
const std::string kSources =  // 4 lines
    "sources:\n"
    "  plant:\n"
    "    url: tcp://127.0.0.1:1883\n"
    "    topics: [\"sensors/#\"]\n";
const std::string kPipelines =  // 4 lines
    "pipelines:\n"
    "  raw:\n"
    "    from: plant\n"
    "    to: [console]\n";
const std::string kSinks =  // 3 lines
    "sinks:\n"
    "  console:\n"
    "    type: stdout\n";

// ---------------------------------------------------------------------------
// Valid configs

TEST_CASE("the smallest config loads with every default applied", "[config][loader]") {
  const Config c = RequireLoads(kSources + kPipelines + kSinks);
  CHECK(c.file == "test.yaml");
  CHECK(c.agent.id == "gw-test");
  CHECK(c.agent.data_dir == "/var/lib/sluice");
  CHECK(c.agent.http == "127.0.0.1:9464");
  CHECK(c.agent.log.level == "info");
  CHECK(c.agent.log.format == "text");
  CHECK(c.agent.shutdown_grace == Millis(5000));

  REQUIRE(c.sources.size() == 1);
  const SourceConfig& s = c.sources[0];
  CHECK(s.name == "plant");
  CHECK(s.pos.line == 2);
  CHECK(s.pos.column == 3);
  CHECK(s.type == "mqtt");
  CHECK(s.url == "tcp://127.0.0.1:1883");
  CHECK(s.client_id == "sluice-gw-test-plant");
  CHECK(s.topics == std::vector<std::string>{"sensors/#"});
  CHECK(s.qos == 1);
  CHECK(s.persistent_session);
  CHECK(s.username.empty());
  CHECK(s.format == "json");
  CHECK_FALSE(s.time.has_value());
  CHECK_FALSE(s.tls.has_value());

  REQUIRE(c.pipelines.size() == 1);
  const PipelineConfig& p = c.pipelines[0];
  CHECK(p.name == "raw");
  CHECK(p.passthrough());
  CHECK(p.from == "plant");
  CHECK(p.from_pos.line == 7);
  CHECK(p.from_pos.column == 11);
  CHECK(p.to == std::vector<std::string>{"console"});
  REQUIRE(p.to_pos.size() == 1);
  CHECK(p.to_pos[0].line == 8);
  CHECK(p.to_pos[0].column == 10);

  REQUIRE(c.sinks.size() == 1);
  CHECK(c.sinks[0].type == "stdout");
  CHECK(std::holds_alternative<StdoutSinkConfig>(c.sinks[0].spec));
  CHECK(c.sinks[0].buffer.max_size == 256ull << 20);
  CHECK(c.sinks[0].buffer.overflow == Overflow::kDropOldest);
  CHECK(c.sinks[0].buffer.sync == SyncLevel::kNormal);
  CHECK(c.FindSink("console") == &c.sinks[0]);
}

TEST_CASE("the agent id defaults to the host name", "[config][loader]") {
  LoadOptions options = TestOptions();
  options.default_agent_id.clear();
  const Config c = RequireLoads(kSources + kPipelines + kSinks, options);
  char host[256] = {};
  REQUIRE(gethostname(host, sizeof host - 1) == 0);
  CHECK(c.agent.id == host);
  CHECK(c.sources[0].client_id == "sluice-" + std::string(host) + "-plant");
}

TEST_CASE("every option round-trips into the typed config", "[config][loader]") {
  const std::string yaml = R"yaml(agent:
  id: gw-042
  data_dir: /data/sluice
  http: off
  log: { level: debug, format: json }
  shutdown_grace: 1m30s
sources:
  plant:
    type: mqtt
    url: ssl://broker:8883
    tls: { ca: /ca.pem, cert: /c.pem, key: /c.key }
    client_id: my-client
    topics: [ "sensors/+/+", "status/#" ]
    qos: 2
    session: clean
    username: alice
    password: "p@ss"
    topic_fields: "sensors/{site}/{device}"
    format: json
    time: { field: ts, unit: rfc3339, max_ahead: 2h }
pipelines:
  temp_1m:
    from: plant
    where: "temp > -50 && temp < 150"
    window: { type: tumbling, size: 1m, lateness: 5s }
    group_by: [ site, device ]
    aggregate:
      readings: count()
      temp_avg: avg(temp)
      temp_p95: p95( temp )
      temp_q: "percentile(temp, 0.999)"
    to: [ cloud, archive ]
  hop:
    from: plant
    window: { type: hopping, size: 5m, step: 1m, idle: 0s }
    aggregate: { n: count() }
    to: [ cloud ]
  sessions:
    from: temp_1m
    window: { type: session, gap: 30s }
    aggregate: { n: count() }
    to: [ cloud ]
  overheat:
    from: plant
    alert:
      when: temp > 80
      clear: |
        temp < 75
      for: 10s
      renotify: 10m
      severity: critical
      key: [ device ]
      labels: { team: ops, priority: 1 }
    to: [ ops, relay ]
sinks:
  cloud:
    type: kafka
    brokers: [ "kafka-1:9093", "10.0.0.2:9092" ]
    topic: "telemetry.{site}"
    key: "{device}"
    compression: zstd
    properties: { security.protocol: ssl }
    buffer: { max_size: 1.5GiB, overflow: block, sync: full }
  ops:
    type: http
    url: https://ops.example.com:8443/alerts?x=1
    method: PUT
    batch: { max_records: 100, max_bytes: 64KiB, max_delay: 250ms }
    gzip: true
    timeout: 3s
    headers: { X-Team: ops }
    tls: { ca: /ops.pem }
  relay:
    type: mqtt
    url: mqtts://relay:8883
    topic: alerts/{device}
    qos: 0
    username: bob
    tls: {}
  archive:
    type: file
    path: /data/raw.jsonl
    rotate: { max_size: 64MB, keep: 3 }
)yaml";
  const Config c = RequireLoads(yaml);
  CHECK(c.agent.id == "gw-042");
  CHECK(c.agent.data_dir == "/data/sluice");
  CHECK(c.agent.http == "off");
  CHECK(c.agent.log.level == "debug");
  CHECK(c.agent.log.format == "json");
  CHECK(c.agent.shutdown_grace == Millis(90000));

  const SourceConfig& s = c.sources.at(0);
  CHECK(s.url == "ssl://broker:8883");
  REQUIRE(s.tls.has_value());
  CHECK(s.tls->ca == "/ca.pem");
  CHECK(s.tls->cert == "/c.pem");
  CHECK(s.tls->key == "/c.key");
  CHECK(s.client_id == "my-client");
  CHECK(s.topics == std::vector<std::string>{"sensors/+/+", "status/#"});
  CHECK(s.qos == 2);
  CHECK_FALSE(s.persistent_session);
  CHECK(s.username.value() == "alice");
  CHECK(s.password.value() == "p@ss");
  CHECK(s.topic_fields == "sensors/{site}/{device}");
  REQUIRE(s.time.has_value());
  CHECK(s.time->field == "ts");
  CHECK(s.time->unit == TimeUnit::kRfc3339);
  CHECK(s.time->max_ahead == Millis(2 * 3600 * 1000));

  REQUIRE(c.pipelines.size() == 4);
  const PipelineConfig& t = c.pipelines[0];
  CHECK_FALSE(t.passthrough());
  REQUIRE(t.where.has_value());
  CHECK(t.where->text == "temp > -50 && temp < 150");
  CHECK(t.where->pos.line == 24);
  CHECK(t.where->pos.column == 13);  // the first character inside the quotes
  REQUIRE(t.window.has_value());
  CHECK(t.window->type == WindowType::kTumbling);
  CHECK(t.window->size == Millis(60000));
  CHECK(t.window->lateness == Millis(5000));
  CHECK(t.group_by == std::vector<std::string>{"site", "device"});
  REQUIRE(t.aggregates.size() == 4);
  CHECK(t.aggregates[0].name == "readings");
  CHECK(t.aggregates[0].function == "count");
  CHECK(t.aggregates[0].field.empty());
  CHECK_FALSE(t.aggregates[0].quantile.has_value());
  CHECK(t.aggregates[1].function == "avg");
  CHECK(t.aggregates[1].field == "temp");
  CHECK(t.aggregates[2].function == "p95");
  CHECK(t.aggregates[2].field == "temp");
  CHECK(t.aggregates[2].quantile == Approx(0.95));
  CHECK(t.aggregates[2].pos.line == 30);
  CHECK(t.aggregates[3].function == "percentile");
  CHECK(t.aggregates[3].quantile == Approx(0.999));
  CHECK(t.to == std::vector<std::string>{"cloud", "archive"});

  const PipelineConfig& hop = c.pipelines[1];
  CHECK(hop.window->type == WindowType::kHopping);
  CHECK(hop.window->size == Millis(300000));
  CHECK(hop.window->step == Millis(60000));
  CHECK(hop.window->lateness == Millis(0));
  CHECK(hop.window->idle == Millis(0));
  CHECK(t.window->idle == Millis(30000));  // the default

  const PipelineConfig& sessions = c.pipelines[2];
  CHECK(sessions.from == "temp_1m");  // chained
  CHECK(sessions.window->type == WindowType::kSession);
  CHECK(sessions.window->gap == Millis(30000));

  const PipelineConfig& overheat = c.pipelines[3];
  REQUIRE(overheat.alert.has_value());
  const AlertConfig& a = *overheat.alert;
  CHECK(a.when.text == "temp > 80");
  CHECK(a.when.pos.line == 46);
  CHECK(a.when.pos.column == 13);
  REQUIRE(a.clear.has_value());
  CHECK(a.clear->text == "temp < 75\n");
  CHECK(a.clear->pos.line == 48);  // the line after the '|'
  CHECK(a.clear->pos.column == 9);
  CHECK(a.for_duration == Millis(10000));
  CHECK(a.renotify == Millis(600000));
  CHECK(a.severity == "critical");
  CHECK(a.key == std::vector<std::string>{"device"});
  CHECK(a.labels == std::map<std::string, std::string>{{"team", "ops"}, {"priority", "1"}});

  REQUIRE(c.sinks.size() == 4);
  const auto& kafka = std::get<KafkaSinkConfig>(c.FindSink("cloud")->spec);
  CHECK(kafka.brokers == std::vector<std::string>{"kafka-1:9093", "10.0.0.2:9092"});
  CHECK(kafka.topic == "telemetry.{site}");
  CHECK(kafka.key == "{device}");
  CHECK(kafka.compression == "zstd");
  CHECK(kafka.properties.at("security.protocol").value() == "ssl");
  const BufferConfig& buffer = c.FindSink("cloud")->buffer;
  CHECK(buffer.max_size == 1610612736ull);  // 1.5 GiB
  CHECK(buffer.overflow == Overflow::kBlock);
  CHECK(buffer.sync == SyncLevel::kFull);

  const auto& http = std::get<HttpSinkConfig>(c.FindSink("ops")->spec);
  CHECK(http.url == "https://ops.example.com:8443/alerts?x=1");
  CHECK(http.method == "PUT");
  CHECK(http.max_records == 100);
  CHECK(http.max_bytes == 65536);
  CHECK(http.max_delay == Millis(250));
  CHECK(http.gzip);
  CHECK(http.timeout == Millis(3000));
  CHECK(http.headers.at("X-Team").value() == "ops");
  REQUIRE(http.tls.has_value());
  CHECK(http.tls->ca == "/ops.pem");

  const auto& mqtt = std::get<MqttSinkConfig>(c.FindSink("relay")->spec);
  CHECK(mqtt.url == "mqtts://relay:8883");
  CHECK(mqtt.topic == "alerts/{device}");
  CHECK(mqtt.qos == 0);
  CHECK(mqtt.client_id == "sluice-gw-042-relay");  // default from the agent id
  CHECK(mqtt.username.value() == "bob");
  CHECK(mqtt.tls.has_value());

  const auto& file = std::get<FileSinkConfig>(c.FindSink("archive")->spec);
  CHECK(file.path == "/data/raw.jsonl");
  CHECK(file.rotate_max_size == 64000000);
  CHECK(file.rotate_keep == 3);
}

TEST_CASE("the example configs load", "[config][loader][examples]") {
  for (const char* name : {"full.yaml", "demo.yaml"}) {
    const std::string path = std::string(SLUICE_SOURCE_DIR) + "/config/examples/" + name;
    SECTION(name) {
      std::vector<Diagnostic> errors;
      // The default resolver: CI has none of the example's variables set.
      LoadOptions options;
      options.default_agent_id = "gw-test";
      StatusOr<Config> c = LoadConfigFile(path, &errors, options);
      INFO(Dump(errors));
      REQUIRE(c.ok());
      CHECK(c->file == path);
    }
  }
}

TEST_CASE("the demo example has the documented shape", "[config][loader][examples]") {
  std::vector<Diagnostic> errors;
  StatusOr<Config> c = LoadConfigFile(std::string(SLUICE_SOURCE_DIR) + "/config/examples/demo.yaml",
                                      &errors, TestOptions());
  INFO(Dump(errors));
  REQUIRE(c.ok());
  CHECK(c->agent.data_dir == ".demo/data");
  CHECK(c->agent.http == "off");
  REQUIRE(c->sources.size() == 1);
  const SourceConfig& s = c->sources[0];
  CHECK(s.name == "plant");
  CHECK(s.url == "tcp://127.0.0.1:18830");
  CHECK(s.topics == std::vector<std::string>{"sensors/+/+"});
  CHECK(s.qos == 1);
  CHECK_FALSE(s.persistent_session);
  CHECK(s.topic_fields == "sensors/{site}/{device}");
  REQUIRE(s.time.has_value());
  CHECK(s.time->field == "ts");
  CHECK(s.time->unit == TimeUnit::kMillis);
  CHECK(s.time->max_ahead == Millis(5 * 60 * 1000));  // the default
  REQUIRE(c->pipelines.size() == 3);
  CHECK(c->pipelines[0].name == "dev1");
  CHECK(c->pipelines[0].passthrough());
  REQUIRE(c->pipelines[0].where.has_value());
  CHECK(c->pipelines[0].where->text == "device == 'dev-0001'");
  CHECK(c->pipelines[1].name == "site_10s");
  REQUIRE(c->pipelines[1].window.has_value());
  CHECK(c->pipelines[1].window->size == Millis(10000));
  CHECK(c->pipelines[1].aggregates.size() == 4);
  CHECK(c->pipelines[2].name == "overheat");
  REQUIRE(c->pipelines[2].alert.has_value());
  CHECK(c->pipelines[2].alert->for_duration == Millis(3000));
  for (const auto& p : c->pipelines) CHECK(p.to == std::vector<std::string>{"console"});
  REQUIRE(c->sinks.size() == 1);
  CHECK(c->sinks[0].name == "console");
  CHECK(c->sinks[0].type == "stdout");
}

TEST_CASE("pipelines may read from other pipelines", "[config][loader]") {
  const Config c = RequireLoads(kSources + R"yaml(pipelines:
  b:
    from: a
    alert: { when: "n > 10" }
    to: [console]
  a:
    from: plant
    window: { type: tumbling, size: 10s }
    aggregate: { n: count() }
    to: [console]
)yaml" + kSinks);
  CHECK(c.FindPipeline("b")->from == "a");
}

// ---------------------------------------------------------------------------
// Invalid configs: one diagnostic each, at an exact position

TEST_CASE("the file as a whole is checked", "[config][loader][invalid]") {
  SECTION("empty") {
    RequireOneError("", 1, 1, "the config is empty; expected a map with keys agent");
  }
  SECTION("only comments") { RequireOneError("# nothing here\n", 1, 1, "the config is empty"); }
  SECTION("a list at the top") {
    RequireOneError("- a\n- b\n", 1, 1,
                    "expected a map with keys agent, sources, pipelines and sinks; got a list");
  }
  SECTION("YAML syntax error") {
    RequireOneError("sources:\n  plant: [a\n", 3, 1,
                    "invalid YAML: end of sequence flow not found");
  }
  SECTION("unknown top-level key with a suggestion") {
    RequireOneError(kSources + kPipelines + kSinks + "sink: {}\n", 12, 1,
                    "unknown key 'sink' (did you mean 'sinks'?)");
  }
  SECTION("missing section is reported at the top-level map") {
    RequireOneError(kSources + kPipelines, 1, 1,
                    "missing required key 'sinks'; expected at least one sink");
  }
  SECTION("empty section") {
    RequireOneError("sources: {}\n" + kPipelines + kSinks, 1, 10,
                    "sources: expected at least one source; got an empty map");
  }
  SECTION("two documents") {
    RequireOneError(kSources + kPipelines + kSinks + "---\na: 1\n", 12, 1,
                    "a second YAML document; expected the whole config in one document");
    RequireOneError(kSources + kPipelines + kSinks + "...\n# c\na: 1\n", 14, 1,
                    "a second YAML document");
  }
  SECTION("a leading document marker and directive are fine") {
    RequireLoads("%YAML 1.2\n--- # the config\n" + kSources + kPipelines + kSinks + "...\n");
  }
  SECTION("text yaml-cpp reads as nothing") {
    // A stray ',' at the top level; yaml-cpp's LoadAll() used to loop on it.
    RequireOneError("# c\n,agent:\n  x: 1\n", 2, 1,
                    "no YAML content could be read from here on; expected a map with keys");
  }
  SECTION("duplicate key") {
    RequireOneError(kSources + kPipelines + kSinks + "  console:\n    type: stdout\n", 12, 3,
                    "duplicate key 'console'; expected each key once (first at line 10, column 3)");
  }
}

TEST_CASE("agent settings are checked", "[config][loader][invalid]") {
  const std::string rest = kSources + kPipelines + kSinks;
  SECTION("log level") {
    RequireOneError("agent:\n  log: { level: verbose }\n" + rest, 2, 17,
                    "agent.log.level: expected debug, info, warn or error; got 'verbose'");
  }
  SECTION("http address") {
    RequireOneError("agent:\n  http: 9464\n" + rest, 2, 9,
                    "agent.http: expected host:port such as 127.0.0.1:9464, or off; got 9464");
  }
  SECTION("duration without unit") {
    RequireOneError("agent:\n  shutdown_grace: 10\n" + rest, 2, 19,
                    "agent.shutdown_grace: expected a unit (ms, s, m, h or d) after the number, "
                    "such as 10s; got '10'");
  }
  SECTION("a list where a map is expected") {
    RequireOneError("agent: [ id ]\n" + rest, 1, 8,
                    "agent: expected a map of agent settings; got a list");
  }
  SECTION("unknown key without a close match lists the valid keys") {
    RequireOneError("agent:\n  colour: blue\n" + rest, 2, 3,
                    "agent: unknown key 'colour'; expected one of: id, data_dir, http, log, "
                    "shutdown_grace");
  }
}

TEST_CASE("source settings are checked", "[config][loader][invalid]") {
  const std::string rest = kPipelines + kSinks;
  const std::string head =
      "sources:\n"
      "  plant:\n"
      "    url: tcp://127.0.0.1:1883\n";  // line 3; the next line is 4
  const std::string topics = "    topics: [\"sensors/#\"]\n";
  SECTION("qos") {
    RequireOneError(head + topics + "    qos: 3\n" + rest, 5, 10,
                    "sources.plant.qos: expected 0, 1 or 2; got 3");
  }
  SECTION("url scheme") {
    RequireOneError("sources:\n  plant:\n    url: http://broker:1883\n" + topics + rest, 3, 10,
                    "sources.plant.url: expected a broker URL tcp://host:port, ssl://host:port, "
                    "mqtt://host:port or mqtts://host:port");
  }
  SECTION("url without a port") {
    RequireOneError("sources:\n  plant:\n    url: tcp://broker\n" + topics + rest, 3, 10,
                    "got 'tcp://broker'");
  }
  SECTION("missing url is reported at the source's map") {
    RequireOneError("sources:\n  plant:\n" + topics + rest, 3, 5,
                    "sources.plant: missing required key 'url'; expected a broker URL");
  }
  SECTION("unknown key with a suggestion") {
    RequireOneError(head + topics + "    sesion: clean\n" + rest, 5, 5,
                    "sources.plant: unknown key 'sesion' (did you mean 'session'?)");
  }
  SECTION("topics as a map") {
    RequireOneError(head + "    topics: { a: b }\n" + rest, 4, 13,
                    "sources.plant.topics: expected a non-empty list of topic filters such as "
                    "[\"sensors/+/+\"]; got a map");
  }
  SECTION("empty topics") {
    RequireOneError(head + "    topics: []\n" + rest, 4, 13, "got an empty list");
  }
  SECTION("'#' before the last level") {
    RequireOneError(head + "    topics: [ok/+, \"a/#/b\"]\n" + rest, 4, 20,
                    "sources.plant.topics[1]: expected an MQTT topic filter such as "
                    "sensors/+/temp or sensors/#; got 'a/#/b' ('#' must be the last level)");
  }
  SECTION("'+' inside a level") {
    RequireOneError(head + "    topics: [\"a/b+\"]\n" + rest, 4, 14, "('+' must be a whole level)");
  }
  SECTION("topic_fields with a repeated capture") {
    RequireOneError(head + topics + "    topic_fields: \"s/{id}/{id}\"\n" + rest, 5, 19,
                    "capture {id} appears twice");
  }
  SECTION("topic_fields with a partial-level capture") {
    RequireOneError(head + topics + "    topic_fields: s/dev-{id}\n" + rest, 5, 19,
                    "a {name} capture must be a whole level");
  }
  SECTION("session") {
    RequireOneError(head + topics + "    session: forever\n" + rest, 5, 14,
                    "sources.plant.session: expected persistent or clean; got 'forever'");
  }
  SECTION("tls with a plain tcp url") {
    RequireOneError(head + topics + "    tls: { ca: /ca.pem }\n" + rest, 5, 5,
                    "'tls' needs an ssl:// or mqtts:// url");
  }
  SECTION("time unit") {
    RequireOneError(head + topics + "    time: { field: ts, unit: sec }\n" + rest, 5, 30,
                    "sources.plant.time.unit: expected s, ms, us, ns or rfc3339; got 'sec' "
                    "(did you mean 's'?)");
  }
  SECTION("time without a field") {
    RequireOneError(head + topics + "    time: { unit: ms }\n" + rest, 5, 11,
                    "sources.plant.time: missing required key 'field'");
  }
  SECTION("type") {
    RequireOneError(head + topics + "    type: amqp\n" + rest, 5, 11,
                    "sources.plant.type: expected mqtt; got 'amqp'");
  }
  SECTION("format") {
    RequireOneError(head + topics + "    format: csv\n" + rest, 5, 13,
                    "sources.plant.format: expected json; got 'csv'");
  }
  SECTION("name") {
    RequireOneError("sources:\n  my.plant:\n    url: tcp://h:1\n" + topics +
                        "pipelines:\n  raw:\n    from: my.plant\n    to: [console]\n" + kSinks,
                    2, 3, "invalid source name 'my.plant'; expected letters, digits, '_' or '-'");
  }
  SECTION("a source given as a string") {
    RequireOneError("sources:\n  plant: tcp://h:1\n" + rest, 2, 10,
                    "sources.plant: expected a map of source settings; got 'tcp://h:1'");
  }
  SECTION("an empty value is reported at its key") {
    RequireOneError(head + topics + "    client_id:\n" + rest, 5, 5,
                    "sources.plant.client_id: expected an MQTT client id; got nothing");
  }
  SECTION("one client id on two brokers is fine") {
    Config c = RequireLoads(head + topics + "    client_id: gw-1\n" +
                            "  yard:\n    url: tcp://127.0.0.1:1884\n" + topics +
                            "    client_id: gw-1\n" + rest);
    CHECK(c.sources.size() == 2);
  }
  SECTION("two sources with one client id") {
    RequireOneError(head + topics + "    client_id: gw-1\n" +
                        "  yard:\n    url: tcp://127.0.0.1:1883\n" + topics + "    client_id: gw-1\n" +
                        rest,
                    9, 16,
                    "sources.yard.client_id: client id 'gw-1' is already used by source 'plant'; "
                    "the broker would drop one connection each time the other connects");
  }
}

TEST_CASE("pipeline references are checked", "[config][loader][invalid]") {
  SECTION("missing from is reported at the pipeline's map") {
    RequireOneError(kSources + "pipelines:\n  raw:\n    to: [console]\n" + kSinks, 7, 5,
                    "pipelines.raw: missing required key 'from'");
  }
  SECTION("unknown from with a suggestion") {
    RequireOneError(kSources + "pipelines:\n  raw:\n    from: plnt\n    to: [console]\n" + kSinks,
                    7, 11,
                    "pipelines.raw.from: unknown source or pipeline 'plnt' (did you mean "
                    "'plant'?)");
  }
  SECTION("unknown from without a close match") {
    RequireOneError(kSources + "pipelines:\n  raw:\n    from: boiler\n    to: [console]\n" + kSinks,
                    7, 11, "unknown source or pipeline 'boiler'; expected one of: plant");
  }
  SECTION("from itself") {
    RequireOneError(kSources + "pipelines:\n  raw:\n    from: raw\n    to: [console]\n" + kSinks, 7,
                    11, "a pipeline cannot read from itself");
  }
  SECTION("a cycle") {
    RequireOneError(
        kSources + R"yaml(pipelines:
  a:
    from: c
    to: [console]
  b:
    from: a
    to: [console]
  c:
    from: b
    to: [console]
)yaml" + kSinks,
        7, 11, "pipelines.a.from: pipelines read from each other in a cycle (a -> c -> b -> a)");
  }
  SECTION("unknown sink") {
    RequireOneError(
        kSources + "pipelines:\n  raw:\n    from: plant\n    to: [console, consol]\n" + kSinks, 8,
        19, "pipelines.raw.to[1]: unknown sink 'consol' (did you mean 'console'?)");
  }
  SECTION("empty to") {
    RequireOneError(kSources + "pipelines:\n  raw:\n    from: plant\n    to: []\n" + kSinks, 8, 9,
                    "pipelines.raw.to: expected a non-empty list of sink names");
  }
  SECTION("to as a string") {
    RequireOneError(kSources + "pipelines:\n  raw:\n    from: plant\n    to: console\n" + kSinks, 8,
                    9, "expected a non-empty list of sink names such as [console]; got 'console'");
  }
  SECTION("a pipeline named like a source") {
    RequireOneError(
        kSources + "pipelines:\n  plant:\n    from: plant\n    to: [console]\n" + kSinks, 6, 3,
        "name 'plant' is already used by the source at line 2");
  }
}

TEST_CASE("pipeline operators are checked", "[config][loader][invalid]") {
  // Lines 1-4 sources, 5 "pipelines:", 6 "  p:", 7 from; the line under test is 8.
  const std::string head = kSources + "pipelines:\n  p:\n    from: plant\n";
  const std::string tail = "    to: [console]\n" + kSinks;
  SECTION("window without aggregate") {
    RequireOneError(head + "    window: { type: tumbling, size: 1m }\n" + tail, 8, 5,
                    "pipelines.p: 'window' needs 'aggregate'");
  }
  SECTION("aggregate without window") {
    RequireOneError(head + "    aggregate: { n: count() }\n" + tail, 8, 5,
                    "pipelines.p: 'aggregate' needs 'window'");
  }
  SECTION("alert and window together") {
    RequireOneError(head +
                        "    window: { type: tumbling, size: 1m }\n    aggregate: { n: count() }\n"
                        "    alert: { when: \"n > 1\" }\n" +
                        tail,
                    10, 5, "a pipeline cannot have both 'alert' and 'window'");
  }
  SECTION("group_by without window") {
    RequireOneError(head + "    group_by: [site]\n" + tail, 8, 5, "'group_by' needs 'window'");
  }
  SECTION("hopping step longer than size") {
    RequireOneError(head +
                        "    window: { type: hopping, size: 1m, step: 2m }\n"
                        "    aggregate: { n: count() }\n" +
                        tail,
                    8, 46,
                    "pipelines.p.window.step: expected a step no longer than the window size "
                    "(1m); got '2m'");
  }
  SECTION("hopping step far too small for the size (1ms for 1m)") {
    RequireOneError(head +
                        "    window: { type: hopping, size: 1h, step: 1ms }\n"
                        "    aggregate: { n: count() }\n" +
                        tail,
                    8, 46,
                    "pipelines.p.window.step: expected a step of at least 1/1000 of the window "
                    "size (1h): each reading counts in size/step windows; got '1ms'");
  }
  SECTION("a key of another window type") {
    RequireOneError(head +
                        "    window: { type: tumbling, size: 1m, gap: 5s }\n"
                        "    aggregate: { n: count() }\n" +
                        tail,
                    8, 41,
                    "pipelines.p.window: key 'gap' does not apply to a tumbling window; "
                    "expected one of: type, size, lateness, idle");
  }
  SECTION("session window without gap") {
    RequireOneError(head + "    window: { type: session }\n    aggregate: { n: count() }\n" + tail,
                    8, 13, "pipelines.p.window: missing required key 'gap'");
  }
  SECTION("zero window size") {
    RequireOneError(head +
                        "    window: { type: tumbling, size: 0s }\n"
                        "    aggregate: { n: count() }\n" +
                        tail,
                    8, 37, "pipelines.p.window.size: expected a duration greater than zero");
  }
  SECTION("window type") {
    RequireOneError(head +
                        "    window: { type: tumbing, size: 1m }\n"
                        "    aggregate: { n: count() }\n" +
                        tail,
                    8, 21,
                    "expected tumbling, hopping or session; got 'tumbing' (did you mean "
                    "'tumbling'?)");
  }
  const std::string window = "    window: { type: tumbling, size: 1m }\n    aggregate:\n";
  // The aggregate under test is on line 10.
  SECTION("unknown aggregate function") {
    RequireOneError(head + window + "      m: median(temp)\n" + tail, 10, 10,
                    "pipelines.p.aggregate.m: unknown aggregate function 'median'");
  }
  SECTION("aggregate that is not a call") {
    RequireOneError(head + window + "      m: temp\n" + tail, 10, 10,
                    "expected an aggregate such as count(), avg(temp) or percentile(temp, 0.99)");
  }
  SECTION("count with an argument") {
    RequireOneError(head + window + "      m: count(temp)\n" + tail, 10, 10,
                    "expected count() without arguments; got 'count(temp)'");
  }
  SECTION("avg without a field") {
    RequireOneError(head + window + "      m: avg()\n" + tail, 10, 10,
                    "expected avg(field) with exactly one field; got 'avg()'");
  }
  SECTION("percentile quantile out of range") {
    RequireOneError(head + window + "      m: \"percentile(temp, 1.5)\"\n" + tail, 10, 10,
                    "expected a quantile between 0 and 1 (exclusive)");
  }
  SECTION("percentile without a quantile") {
    RequireOneError(head + window + "      m: percentile(temp)\n" + tail, 10, 10,
                    "expected percentile(field, q)");
  }
  SECTION("alert without when") {
    RequireOneError(head + "    alert: { for: 10s }\n" + tail, 8, 12,
                    "pipelines.p.alert: missing required key 'when'");
  }
  SECTION("alert with an empty condition") {
    RequireOneError(head + "    alert: { when: \"\" }\n" + tail, 8, 20,
                    "pipelines.p.alert.when: expected an expression such as \"temp > 80\"; got an "
                    "empty string");
  }
  SECTION("renotify of zero") {
    RequireOneError(head + "    alert: { when: x > 1, renotify: 0s }\n" + tail, 8, 37,
                    "pipelines.p.alert.renotify: expected a duration greater than zero");
  }
  SECTION("alert labels must be strings") {
    RequireOneError(head + "    alert: { when: x > 1, labels: { team: [a] } }\n" + tail, 8, 43,
                    "pipelines.p.alert.labels.team: expected a label value; got a list");
  }
  SECTION("repeated group_by field") {
    RequireOneError(head +
                        "    window: { type: tumbling, size: 1m }\n    aggregate: { n: count() }\n"
                        "    group_by: [site, site]\n" +
                        tail,
                    10, 22, "field 'site' is listed twice");
  }
}

TEST_CASE("sink settings are checked", "[config][loader][invalid]") {
  // Lines 1-8 sources and pipelines, 9 "sinks:", 10 "  console:"; the line under test is 11.
  const std::string head = kSources + kPipelines + "sinks:\n  console:\n";
  SECTION("missing type is reported at the sink's map") {
    RequireOneError(head + "    path: /x\n", 11, 5,
                    "sinks.console: missing required key 'type'; expected one of stdout, file, "
                    "kafka, http or mqtt");
  }
  SECTION("unknown type") {
    RequireOneError(head + "    type: stdot\n", 11, 11,
                    "sinks.console.type: expected stdout, file, kafka, http or mqtt; got 'stdot' "
                    "(did you mean 'stdout'?)");
  }
  SECTION("a key of another sink type") {
    RequireOneError(head + "    type: stdout\n    brokers: [a:1]\n", 12, 5,
                    "sinks.console: key 'brokers' does not apply to a stdout sink; expected one "
                    "of: type, buffer");
  }
  SECTION("file without path") {
    RequireOneError(head + "    type: file\n", 11, 5, "sinks.console: missing required key 'path'");
  }
  SECTION("file rotate keep of zero") {
    RequireOneError(
        head + "    type: file\n    path: /x\n    rotate: { max_size: 1MiB, keep: 0 }\n", 13, 37,
        "sinks.console.rotate.keep: expected a number of files from 1 to 10000; got 0");
  }
  SECTION("kafka with no brokers") {
    RequireOneError(head + "    type: kafka\n    brokers: []\n    topic: t\n", 12, 14,
                    "sinks.console.brokers: expected a non-empty list of brokers");
  }
  SECTION("kafka broker without a port") {
    RequireOneError(head + "    type: kafka\n    brokers: [kafka-1]\n    topic: t\n", 12, 15,
                    "expected a broker address host:port such as kafka-1:9092; got 'kafka-1'");
  }
  SECTION("kafka compression") {
    RequireOneError(
        head + "    type: kafka\n    brokers: [k:1]\n    topic: t\n    compression: lz5\n", 14, 18,
        "expected none, gzip, snappy, lz4 or zstd; got 'lz5' (did you mean 'lz4'?)");
  }
  SECTION("kafka topic template") {
    RequireOneError(head + "    type: kafka\n    brokers: [k:1]\n    topic: \"t.{site\"\n", 13, 12,
                    "(unmatched '{')");
  }
  SECTION("http method") {
    RequireOneError(head + "    type: http\n    url: https://h/x\n    method: GET\n", 13, 13,
                    "sinks.console.method: expected POST or PUT; got 'GET'");
  }
  SECTION("http url") {
    RequireOneError(head + "    type: http\n    url: ftp://h/x\n", 12, 10,
                    "expected an http:// or https:// URL such as https://ops.example.com/alerts; "
                    "got 'ftp://h/x'");
  }
  SECTION("http gzip") {
    RequireOneError(head + "    type: http\n    url: https://h/x\n    gzip: yes\n", 13, 11,
                    "sinks.console.gzip: expected true or false; got 'yes'");
  }
  SECTION("http batch size") {
    RequireOneError(head + "    type: http\n    url: https://h/x\n    batch: { max_bytes: 10XB }\n",
                    13, 25, "sinks.console.batch.max_bytes: expected a size such as 512MiB");
  }
  SECTION("two file sinks on one file") {
    RequireOneError(head + "    type: file\n    path: /var/out/raw.jsonl\n" +
                        "  copy:\n    type: file\n    path: /var/out/./raw.jsonl\n",
                    15, 11,
                    "sinks.copy.path: file '/var/out/./raw.jsonl' is already written by "
                    "sinks.console; two sinks on one file lose records to each other's rotation");
  }
  SECTION("a file sink on the store's own file") {
    RequireOneError(head + "    type: file\n    path: /var/lib/sluice/sluice.db-wal\n", 12, 11,
                    "sinks.console.path: expected a file outside the agent's store; got "
                    "'/var/lib/sluice/sluice.db-wal', the store's own file in agent.data_dir");
  }
  SECTION("the store's own file under another spelling (relative data_dir, absolute path)") {
    const std::string cwd = std::filesystem::current_path().string();
    RequireOneError("agent: { id: a, data_dir: rel-d }\n" + head + "    type: file\n    path: " + cwd +
                        "/rel-d/sluice.db\n",
                    13, 11, "the store's own file in agent.data_dir");
  }
  SECTION("http batch larger than one read of the outbox") {
    RequireOneError(head + "    type: http\n    url: https://h/x\n    batch: { max_records: 10000 }\n",
                    13, 27,
                    "sinks.console.batch.max_records: expected a number of records from 1 to 4096; "
                    "got 10000");
    RequireOneError(head + "    type: http\n    url: https://h/x\n    batch: { max_bytes: 16MiB }\n",
                    13, 25, "sinks.console.batch.max_bytes: expected at most 8MiB; got '16MiB'");
  }
  SECTION("http tls with a plain http url") {
    RequireOneError(head + "    type: http\n    url: http://h/x\n    tls: {}\n", 13, 5,
                    "'tls' needs an https:// url");
  }
  SECTION("buffer overflow policy") {
    RequireOneError(head + "    type: stdout\n    buffer: { overflow: drop }\n", 12, 25,
                    "sinks.console.buffer.overflow: expected drop_oldest, drop_newest or block; "
                    "got 'drop'");
  }
  SECTION("buffer size") {
    RequireOneError(head + "    type: stdout\n    buffer: { max_size: 0 }\n", 12, 25,
                    "sinks.console.buffer.max_size: expected a size greater than zero");
  }
  SECTION("mqtt topic with a wildcard") {
    RequireOneError(head + "    type: mqtt\n    url: tcp://h:1883\n    topic: out/#\n", 13, 12,
                    "sinks.console.topic: expected a topic without wildcards (+, #); got 'out/#'");
  }
  SECTION("mqtt qos") {
    RequireOneError(head + "    type: mqtt\n    url: tcp://h:1883\n    topic: out\n    qos: two\n",
                    14, 10, "sinks.console.qos: expected 0, 1 or 2; got 'two'");
  }
}

// ---------------------------------------------------------------------------
// Many errors at once

TEST_CASE("every error is reported in one run, in file order", "[config][loader]") {
  const std::string yaml = R"yaml(agent:
  log: { level: loud }
sources:
  plant:
    url: tcp://h:1883
    topics: ["a/#/b"]
    qos: 5
pipelines:
  raw:
    from: nowhere
    to: [console, missing]
sinks:
  console:
    type: stdout
    colour: red
)yaml";
  std::vector<Diagnostic> errors;
  StatusOr<Config> c = LoadConfigString(yaml, "many.yaml", &errors, TestOptions());
  REQUIRE_FALSE(c.ok());
  INFO(Dump(errors));
  REQUIRE(errors.size() == 6);
  const std::vector<std::pair<int, int>> positions = {{2, 17},  {6, 14},  {7, 10},
                                                      {10, 11}, {11, 19}, {15, 5}};
  for (size_t i = 0; i < positions.size(); ++i) {
    CHECK(errors[i].pos.file == "many.yaml");
    CHECK(errors[i].pos.line == positions[i].first);
    CHECK(errors[i].pos.column == positions[i].second);
  }
  CHECK_THAT(errors[0].message, Catch::Contains("agent.log.level"));
  CHECK_THAT(errors[3].message, Catch::Contains("unknown source or pipeline 'nowhere'"));
  CHECK_THAT(errors[5].message, Catch::Contains("unknown key 'colour'"));
  CHECK(c.status().code() == StatusCode::kInvalidArgument);
  CHECK(c.status().message() == FormatDiagnostic(errors[0]) + " (and 5 more errors)");
}

TEST_CASE("diagnostics are appended, not replaced", "[config][loader]") {
  std::vector<Diagnostic> errors = {Diagnostic{Position{"earlier.yaml", 1, 1}, "kept"}};
  StatusOr<Config> c = LoadConfigString("", "x.yaml", &errors, TestOptions());
  REQUIRE_FALSE(c.ok());
  REQUIRE(errors.size() == 2);
  CHECK(errors[0].message == "kept");
  // A null sink for diagnostics is allowed.
  CHECK_FALSE(LoadConfigString("", "x.yaml", nullptr, TestOptions()).ok());
}

TEST_CASE("FormatDiagnostic writes file:line:column: message", "[config][loader]") {
  CHECK(FormatDiagnostic({Position{"a.yaml", 3, 7}, "bad"}) == "a.yaml:3:7: bad");
  CHECK(FormatDiagnostic({Position{"a.yaml", 0, 0}, "bad"}) == "a.yaml: bad");
}

// ---------------------------------------------------------------------------
// Files and hostile input

TEST_CASE("an unreadable file is one diagnostic naming the path", "[config][loader]") {
  SECTION("missing") {
    std::vector<Diagnostic> errors;
    StatusOr<Config> c = LoadConfigFile("/nonexistent/sluice.yaml", &errors, TestOptions());
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == StatusCode::kNotFound);
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].pos.file == "/nonexistent/sluice.yaml");
    CHECK_THAT(errors[0].message, Catch::Contains("'/nonexistent/sluice.yaml'"));
    CHECK_THAT(errors[0].message, Catch::Contains("No such file or directory"));
  }
  SECTION("a directory") {
    std::vector<Diagnostic> errors;
    StatusOr<Config> c = LoadConfigFile("/", &errors, TestOptions());
    REQUIRE_FALSE(c.ok());
    CHECK(c.status().code() == StatusCode::kInvalidArgument);
    REQUIRE(errors.size() == 1);
    CHECK_THAT(errors[0].message, Catch::Contains("is a directory"));
  }
}

TEST_CASE("a file larger than 1 MiB is refused before parsing", "[config][loader][robustness]") {
  std::string yaml = kSources + kPipelines + kSinks;
  yaml += "# " + std::string(1 << 20, 'x') + "\n";
  RequireOneError(yaml, 1, 1, "expected a config of at most 1 MiB");

  char path[] = "/tmp/sluice-config-test-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, yaml.data(), yaml.size()) == static_cast<ssize_t>(yaml.size()));
  close(fd);
  std::vector<Diagnostic> errors;
  StatusOr<Config> c = LoadConfigFile(path, &errors, TestOptions());
  unlink(path);
  REQUIRE_FALSE(c.ok());
  REQUIRE(errors.size() == 1);
  CHECK_THAT(errors[0].message, Catch::Contains("at most 1 MiB"));
}

TEST_CASE("nesting deeper than 32 levels is refused before parsing",
          "[config][loader][robustness]") {
  SECTION("flow brackets") {
    // The root map is one level and each '[' another: the 32nd bracket is level 33.
    RequireOneError("a: " + std::string(40, '[') + std::string(40, ']') + "\n", 1, 35,
                    "nesting is deeper than 32 levels");
  }
  SECTION("far too many brackets") {
    // The estimate errs high by one here: the line counts as a block level too.
    RequireOneError(std::string(200000, '{'), 1, 32, "nesting is deeper than 32 levels");
  }
  SECTION("block indentation") {
    std::string yaml;
    for (int i = 0; i < 40; ++i) yaml += std::string(static_cast<size_t>(i), ' ') + "k:\n";
    RequireOneError(yaml, 33, 33, "nesting is deeper than 32 levels");
  }
  SECTION("compact sequences") {
    std::string yaml;
    for (int i = 0; i < 40; ++i) yaml += "- ";
    RequireOneError(yaml + "x\n", 1, 63, "nesting is deeper than 32 levels");
  }
  SECTION("brackets inside quotes and block scalars do not count") {
    const std::string deep(40, '[');
    RequireLoads(kSources + kPipelines +
                 "sinks:\n  console:\n    type: stdout\n"
                 "  f:\n    type: file\n    path: \"" +
                 deep + "\"\n" + "  g:\n    type: file\n    path: |\n      " + deep + "\n");
  }
}

TEST_CASE("hostile input is refused without crashing", "[config][loader][robustness]") {
  const std::vector<std::string> inputs = {
      "{",
      "]",
      "a: [1, 2",
      "a: 'unterminated",
      "\"unterminated",
      "a: *undefined",
      "a: &x [*x]",
      "sources: &s { plant: *s }\npipelines: *s\nsinks: *s\n",
      "? [a, b]\n: c\n",
      "!!binary aGVsbG8=",
      "a: !!int nope",
      "\t- a",
      "---\n---\n---\n",
      ":",
      "- - - - -",
      "a: |\n  x\n b: c",
      std::string("a\0b", 3),
      "\xff\xfe\x00",
      "sources:\n  x:\n    url: [tcp, {a: [1, {b: 2}]}]\n    topics: {x: [[]]}\n",
      "pipelines: [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]\n",
  };
  for (const std::string& input : inputs) {
    std::vector<Diagnostic> errors;
    StatusOr<Config> c = LoadConfigString(input, "h.yaml", &errors, TestOptions());
    INFO(input);
    INFO(Dump(errors));
    CHECK_FALSE(c.ok());
    CHECK_FALSE(errors.empty());
    for (const Diagnostic& d : errors) {
      CHECK(d.pos.line >= 1);
      CHECK(d.pos.column >= 1);
    }
  }
}

TEST_CASE("an alias that refers to itself is not followed forever",
          "[config][loader][robustness]") {
  const std::vector<Diagnostic> errors =
      Errors(kSources + "pipelines: &p\n  raw:\n    from: plant\n    to: *p\n" + kSinks);
  INFO(Dump(errors));
  REQUIRE(errors.size() == 1);
  // The alias's own key, not the anchored map it points to (line 5).
  CHECK(errors[0].pos.line == 8);
  CHECK(errors[0].pos.column == 5);
  CHECK_THAT(errors[0].message, Catch::Contains("pipelines.raw.to: expected a non-empty list"));
}

}  // namespace
}  // namespace sluice::config
