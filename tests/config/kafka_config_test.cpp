// The kafka sink's settings: tls, sasl, linger, batch_size, timeout and the
// librdkafka properties that may not weaken delivery (idempotence, acks).
#include <catch2/catch.hpp>
#include <string>

#include "config/loader.h"
#include "tests/config/test_util.h"

namespace sluice::config {
namespace {

using testing::Dump;
using testing::Errors;
using testing::FakeSecrets;
using testing::RequireLoads;
using testing::RequireOneError;
using testing::TestOptions;

// Lines 1-8: sources and pipelines; 9 "sinks:", 10 "  console:", 11-13 a
// valid kafka sink; the line under test is 14.
const std::string kHead =
    "sources:\n"
    "  plant:\n"
    "    url: tcp://127.0.0.1:1883\n"
    "    topics: [\"sensors/#\"]\n"
    "pipelines:\n"
    "  raw:\n"
    "    from: plant\n"
    "    to: [console]\n"
    "sinks:\n"
    "  console:\n"
    "    type: kafka\n"
    "    brokers: [k:1]\n"
    "    topic: t\n";

TEST_CASE("kafka sink defaults", "[config][loader][kafka]") {
  const Config c = RequireLoads(kHead);
  const auto& k = std::get<KafkaSinkConfig>(c.FindSink("console")->spec);
  CHECK(k.linger == Millis(5));
  CHECK(k.timeout == Millis(30000));
  CHECK_FALSE(k.batch_size.has_value());
  CHECK_FALSE(k.tls.has_value());
  CHECK_FALSE(k.sasl.has_value());
  CHECK(k.key.empty());
  CHECK(k.compression == "none");
  CHECK(k.properties.empty());
}

TEST_CASE("kafka sink settings round-trip", "[config][loader][kafka]") {
  FakeSecrets secrets;
  secrets.env["KAFKA_USER"] = "svc-gw";
  secrets.files["/run/kafka.pass"] = "s3cr3t-pass";
  const Config c = RequireLoads(kHead +
                                    "    tls: { ca: /ca.pem, cert: /c.pem, key: /c.key }\n"
                                    "    sasl:\n"
                                    "      mechanism: SCRAM-SHA-512\n"
                                    "      username: ${env:KAFKA_USER}\n"
                                    "      password: ${file:/run/kafka.pass}\n"
                                    "    linger: 20ms\n"
                                    "    batch_size: 256KiB\n"
                                    "    timeout: 2m\n"
                                    "    properties:\n"
                                    "      enable.idempotence: true\n"
                                    "      acks: all\n"
                                    "      queue.buffering.max.kbytes: \"65536\"\n",
                                TestOptions(secrets));
  const auto& k = std::get<KafkaSinkConfig>(c.FindSink("console")->spec);
  REQUIRE(k.tls.has_value());
  CHECK(k.tls->ca == "/ca.pem");
  CHECK(k.tls->cert == "/c.pem");
  CHECK(k.tls->key == "/c.key");
  REQUIRE(k.sasl.has_value());
  CHECK(k.sasl->mechanism == "SCRAM-SHA-512");
  CHECK(k.sasl->username.value() == "svc-gw");
  CHECK(k.sasl->password.value() == "s3cr3t-pass");
  CHECK(k.linger == Millis(20));
  CHECK(k.batch_size == 262144u);
  CHECK(k.timeout == Millis(120000));
  CHECK(k.properties.at("queue.buffering.max.kbytes").value() == "65536");
  CHECK(k.properties.at("acks").value() == "all");
}

TEST_CASE("acks -1 is the same as all", "[config][loader][kafka]") {
  const Config c = RequireLoads(kHead + "    properties: { acks: -1 }\n");
  CHECK(std::get<KafkaSinkConfig>(c.FindSink("console")->spec).properties.at("acks").value() ==
        "-1");
}

TEST_CASE("kafka sink settings are checked", "[config][loader][invalid][kafka]") {
  SECTION("a property may not turn idempotence off") {
    RequireOneError(kHead + "    properties: { enable.idempotence: false }\n", 14, 39,
                    "sinks.console.properties.enable.idempotence: expected true (the kafka sink "
                    "always runs an idempotent producer); got 'false'");
  }
  SECTION("a property may not weaken acks") {
    RequireOneError(kHead + "    properties: { acks: 1 }\n", 14, 25,
                    "sinks.console.properties.acks: expected all or -1 (the kafka sink waits for "
                    "every in-sync replica); got 1");
  }
  SECTION("nor under another name") {
    RequireOneError(kHead + "    properties: { request.required.acks: \"1\" }\n", 14, 42,
                    "sinks.console.properties.request.required.acks: expected all or -1 (the "
                    "kafka sink waits for every in-sync replica); got '1'");
  }
  SECTION("what an idempotent producer refuses at start") {
    RequireOneError(kHead + "    properties: { max.in.flight: \"10\" }\n", 14, 34,
                    "sinks.console.properties.max.in.flight: expected 1 to 5 (an idempotent "
                    "producer keeps at most 5 requests in flight); got '10'");
    RequireOneError(kHead + "    properties: { retries: \"0\" }\n", 14, 28,
                    "sinks.console.properties.retries: expected at least 1 (an idempotent "
                    "producer must be allowed to retry); got '0'");
    RequireOneError(kHead + "    properties: { transactional.id: gw-tx }\n", 14, 19,
                    "sinks.console.properties.transactional.id: the kafka sink does not use "
                    "transactions; remove 'transactional.id'");
  }
  SECTION("sasl mechanism") {
    RequireOneError(kHead + "    sasl: { mechanism: GSSAPI, username: u, password: p }\n", 14, 24,
                    "sinks.console.sasl.mechanism: expected PLAIN, SCRAM-SHA-256 or "
                    "SCRAM-SHA-512; got 'GSSAPI'");
  }
  SECTION("sasl without a password") {
    RequireOneError(kHead + "    sasl: { mechanism: PLAIN, username: u }\n", 14, 11,
                    "sinks.console.sasl: missing required key 'password'");
  }
  SECTION("sasl unknown key") {
    RequireOneError(kHead + "    sasl: { mechanism: PLAIN, username: u, password: p, user: x }\n",
                    14, 57, "unknown key 'user'");
  }
  SECTION("linger is a duration") {
    RequireOneError(kHead + "    linger: fast\n", 14, 13, "sinks.console.linger:");
  }
  SECTION("batch_size must be positive") {
    RequireOneError(kHead + "    batch_size: 0\n", 14, 17,
                    "sinks.console.batch_size: expected a size greater than zero");
  }
  SECTION("timeout must be positive") {
    RequireOneError(kHead + "    timeout: 0s\n", 14, 14,
                    "sinks.console.timeout: expected a duration greater than zero");
  }
  SECTION("tls cert without key") {
    RequireOneError(kHead + "    tls: { cert: /c.pem }\n", 14, 10, "'cert' and 'key' go together");
  }
  SECTION("a key of another sink type") {
    RequireOneError(kHead + "    method: POST\n", 14, 5,
                    "sinks.console: key 'method' does not apply to a kafka sink");
  }
}

TEST_CASE("kafka secrets never reach a diagnostic", "[config][loader][kafka][secrets]") {
  FakeSecrets secrets;
  secrets.env["IDEMP"] = "false-by-secret";
  secrets.env["PW"] = "hunter2-password";
  const std::vector<Diagnostic> errors =
      Errors(kHead +
                 "    sasl: { mechanism: KERBEROS, username: u, password: \"${env:PW}\" }\n"
                 "    properties: { enable.idempotence: \"${env:IDEMP}\" }\n",
             TestOptions(secrets));
  INFO(Dump(errors));
  REQUIRE(errors.size() == 2);
  CHECK(errors[1].pos.line == 15);
  CHECK(errors[1].pos.column == 39);
  CHECK_THAT(errors[1].message, Catch::Contains("got '${env:IDEMP}'"));
  for (const Diagnostic& d : errors) {
    CHECK(d.message.find("false-by-secret") == std::string::npos);
    CHECK(d.message.find("hunter2") == std::string::npos);
  }
}

}  // namespace
}  // namespace sluice::config
