// ${env:NAME} and ${file:/path} references: resolved at load, never printed.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
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

constexpr char kSecret[] = "hunter2-very-secret";

const std::string kPipelines =
    "pipelines:\n"
    "  raw:\n"
    "    from: plant\n"
    "    to: [console]\n";
const std::string kSinks =
    "sinks:\n"
    "  console:\n"
    "    type: stdout\n";

// A source whose `extra` lines start at line 5.
std::string WithSource(const std::string& extra) {
  return "sources:\n"
         "  plant:\n"
         "    url: tcp://127.0.0.1:1883\n"
         "    topics: [\"sensors/#\"]\n" +
         extra + kPipelines + kSinks;
}

FakeSecrets Secrets() {
  FakeSecrets s;
  s.env["MQTT_USER"] = "alice";
  s.env["OPS_TOKEN"] = kSecret;
  s.env["EMPTY"] = "";
  s.files["/etc/sluice/mqtt.pass"] = std::string(kSecret) + "\n";
  s.files["/etc/sluice/crlf.pass"] = "pw\r\n";
  return s;
}

TEST_CASE("environment references are resolved", "[config][secrets]") {
  SECTION("a whole value") {
    const Config c =
        RequireLoads(WithSource("    username: ${env:MQTT_USER}\n"), TestOptions(Secrets()));
    CHECK(c.sources[0].username.value() == "alice");
  }
  SECTION("embedded in a longer string") {
    const Config c =
        RequireLoads(WithSource("") +
                         "  ops:\n    type: http\n    url: https://h/x\n"
                         "    headers: { Authorization: \"Bearer ${env:OPS_TOKEN}\" }\n",
                     TestOptions(Secrets()));
    const auto& http = std::get<HttpSinkConfig>(c.FindSink("ops")->spec);
    CHECK(http.headers.at("Authorization").value() == std::string("Bearer ") + kSecret);
  }
  SECTION("several in one value") {
    const Config c =
        RequireLoads(WithSource("    username: \"${env:MQTT_USER}:${env:MQTT_USER}\"\n"),
                     TestOptions(Secrets()));
    CHECK(c.sources[0].username.value() == "alice:alice");
  }
  SECTION("set but empty") {
    const Config c =
        RequireLoads(WithSource("    password: ${env:EMPTY}\n"), TestOptions(Secrets()));
    CHECK(c.sources[0].password.empty());
  }
  SECTION("in any string, not only credentials") {
    const Config c =
        RequireLoads("agent:\n  id: ${env:MQTT_USER}\n" + WithSource(""), TestOptions(Secrets()));
    CHECK(c.agent.id == "alice");
    CHECK(c.sources[0].client_id == "sluice-alice-plant");
  }
}

TEST_CASE("file references are resolved without the final newline", "[config][secrets]") {
  SECTION("LF") {
    const Config c = RequireLoads(WithSource("    password: ${file:/etc/sluice/mqtt.pass}\n"),
                                  TestOptions(Secrets()));
    CHECK(c.sources[0].password.value() == kSecret);
  }
  SECTION("CRLF") {
    const Config c = RequireLoads(WithSource("    password: ${file:/etc/sluice/crlf.pass}\n"),
                                  TestOptions(Secrets()));
    CHECK(c.sources[0].password.value() == "pw");
  }
}

TEST_CASE("a doubled dollar sign escapes a reference", "[config][secrets]") {
  const Config c =
      RequireLoads(WithSource("    password: \"a$${env:X}b$c$$d\"\n"), TestOptions(Secrets()));
  CHECK(c.sources[0].password.value() == "a${env:X}b$c$$d");
}

TEST_CASE("unresolvable references are errors at the scalar", "[config][secrets]") {
  SECTION("unset variable") {
    RequireOneError(WithSource("    password: ${env:MQTT_PASS}\n"), 5, 15,
                    "sources.plant.password: environment variable 'MQTT_PASS' is not set",
                    TestOptions(Secrets()));
  }
  SECTION("unset variable inside a longer string") {
    RequireOneError(WithSource("") +
                        "  ops:\n    type: http\n    url: https://h/x\n"
                        "    headers:\n      Authorization: \"Bearer ${env:NOPE}\"\n",
                    16, 22, "environment variable 'NOPE' is not set", TestOptions(Secrets()));
  }
  SECTION("missing file") {
    RequireOneError(WithSource("    password: ${file:/etc/sluice/none}\n"), 5, 15,
                    "cannot read secret file '/etc/sluice/none': No such file or directory",
                    TestOptions(Secrets()));
  }
  SECTION("malformed name") {
    RequireOneError(WithSource("    password: ${env:1BAD}\n"), 5, 15,
                    "malformed secret reference '${env:1BAD}'; expected ${env:NAME} or "
                    "${file:/path} (write $${ for a literal ${)",
                    TestOptions(Secrets()));
  }
  SECTION("empty name") {
    RequireOneError(WithSource("    password: ${env:}\n"), 5, 15,
                    "malformed secret reference '${env:}'", TestOptions(Secrets()));
  }
  SECTION("empty path") {
    RequireOneError(WithSource("    password: ${file:}\n"), 5, 15,
                    "malformed secret reference '${file:}'", TestOptions(Secrets()));
  }
  SECTION("unterminated") {
    RequireOneError(WithSource("    password: \"x${env:MQTT_USER\"\n"), 5, 15,
                    "unterminated secret reference '${env:MQTT_USER'", TestOptions(Secrets()));
  }
  SECTION("unknown kind") {
    RequireOneError(
        WithSource("    password: ${vault:db/pw}\n"), 5, 15,
        "unknown secret reference '${vault:db/pw}'; expected ${env:NAME} or ${file:/path}",
        TestOptions(Secrets()));
  }
}

TEST_CASE("a resolved secret never appears in a diagnostic", "[config][secrets]") {
  FakeSecrets secrets = Secrets();
  // Values that are wrong where they are used, so that each one is an error
  // whose message has to say what it got.
  secrets.env["S"] = kSecret;
  secrets.files["/s"] = std::string(kSecret) + "\n";
  const std::string yaml = R"yaml(agent:
  id: ${env:S}
  http: ${env:S}
  log: { level: "${env:S}", format: "x${file:/s}" }
  shutdown_grace: ${env:S}
sources:
  plant:
    url: ${env:S}
    topics: [ "${env:S}/#/x" ]
    qos: ${env:S}
    session: ${file:/s}
    topic_fields: "{${env:S}}/{${env:S}}"
    time: { field: "${env:S}", unit: "${env:S}" }
pipelines:
  raw:
    from: ${env:S}
    window: { type: "${env:S}", size: 1m }
    aggregate: { n: "${env:S}(x)", m: "avg(${env:S} x)" }
    to: [ "${env:S}" ]
sinks:
  console:
    type: ${env:S}
  k:
    type: kafka
    brokers: [ "${env:S}" ]
    topic: "{${env:S}"
    compression: ${env:S}
    buffer: { max_size: "${env:S}", overflow: "${env:S}" }
  h:
    type: http
    url: "https://${env:S}/x y"
    batch: { max_records: "${env:S}", max_delay: "${file:/s}" }
    gzip: ${env:S}
)yaml";
  std::vector<Diagnostic> errors;
  StatusOr<Config> c = LoadConfigString(yaml, "secret.yaml", &errors, TestOptions(secrets));
  REQUIRE_FALSE(c.ok());
  INFO(Dump(errors));
  CHECK(errors.size() >= 20);
  for (const Diagnostic& d : errors) {
    INFO(d.message);
    CHECK(d.message.find(kSecret) == std::string::npos);
    CHECK(d.message.find("hunter2") == std::string::npos);
  }
  CHECK(std::string(c.status().message()).find("hunter2") == std::string::npos);
  // Messages quote the reference as written instead.
  CHECK_THAT(Dump(errors), Catch::Contains("got '${env:S}'"));
  CHECK_THAT(Dump(errors), Catch::Contains("got '${env:S}/#/x'"));
}

TEST_CASE("the default resolver reads the environment and files", "[config][secrets]") {
  char path[] = "/tmp/sluice-secret-test-XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const std::string content = "from-a-file\n";
  REQUIRE(write(fd, content.data(), content.size()) == static_cast<ssize_t>(content.size()));
  close(fd);
  REQUIRE(setenv("SLUICE_CONFIG_TEST_USER", "from-env", 1) == 0);
  unsetenv("SLUICE_CONFIG_TEST_UNSET");

  LoadOptions options;  // SecretResolver::Default()
  options.default_agent_id = "gw-test";
  SECTION("both resolve") {
    const Config c = RequireLoads(WithSource("    username: ${env:SLUICE_CONFIG_TEST_USER}\n"
                                             "    password: ${file:" +
                                             std::string(path) + "}\n"),
                                  options);
    CHECK(c.sources[0].username.value() == "from-env");
    CHECK(c.sources[0].password.value() == "from-a-file");
  }
  SECTION("unset variable") {
    RequireOneError(WithSource("    username: ${env:SLUICE_CONFIG_TEST_UNSET}\n"), 5, 15,
                    "environment variable 'SLUICE_CONFIG_TEST_UNSET' is not set", options);
  }
  SECTION("a directory is not a secret file") {
    RequireOneError(WithSource("    password: ${file:/}\n"), 5, 15,
                    "cannot read secret file '/': is a directory", options);
  }
  unlink(path);
  unsetenv("SLUICE_CONFIG_TEST_USER");
}

TEST_CASE("a config with secrets can be loaded without a resolver", "[config][secrets]") {
  LoadOptions options;
  options.secrets = SecretResolver{};  // nothing can be resolved
  options.default_agent_id = "gw-test";
  RequireOneError(WithSource("    username: ${env:MQTT_USER}\n"), 5, 15,
                  "environment variable 'MQTT_USER' is not set", options);
  RequireLoads(WithSource("    username: plain\n"), options);
}

}  // namespace
}  // namespace sluice::config
