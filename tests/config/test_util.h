// Helpers shared by the config tests.
#ifndef SLUICE_TESTS_CONFIG_TEST_UTIL_H_
#define SLUICE_TESTS_CONFIG_TEST_UTIL_H_

#include <catch2/catch.hpp>
#include <map>
#include <string>
#include <vector>

#include "config/loader.h"

namespace sluice::config::testing {

// Secrets come from these maps only, never from the machine running the test.
struct FakeSecrets {
  std::map<std::string, std::string> env;
  std::map<std::string, std::string> files;

  SecretResolver Resolver() const {
    SecretResolver r;
    r.env = [env = env](const std::string& name) -> std::optional<std::string> {
      auto it = env.find(name);
      if (it == env.end()) return std::nullopt;
      return it->second;
    };
    r.file = [files = files](const std::string& path) -> StatusOr<std::string> {
      auto it = files.find(path);
      if (it == files.end()) return Status::NotFound("No such file or directory");
      return it->second;
    };
    return r;
  }
};

inline LoadOptions TestOptions(const FakeSecrets& secrets = {}) {
  LoadOptions options;
  options.secrets = secrets.Resolver();
  options.default_agent_id = "gw-test";
  return options;
}

inline std::string Dump(const std::vector<Diagnostic>& errors) {
  std::string out;
  for (const Diagnostic& d : errors) out += FormatDiagnostic(d) + "\n";
  return out;
}

// Loads `yaml` as "test.yaml"; the config must be refused.
inline std::vector<Diagnostic> Errors(const std::string& yaml, const LoadOptions& options) {
  std::vector<Diagnostic> errors;
  StatusOr<Config> config = LoadConfigString(yaml, "test.yaml", &errors, options);
  INFO(yaml);
  REQUIRE_FALSE(config.ok());
  CHECK(config.status().code() == StatusCode::kInvalidArgument);
  REQUIRE_FALSE(errors.empty());
  return errors;
}

inline std::vector<Diagnostic> Errors(const std::string& yaml) {
  return Errors(yaml, TestOptions());
}

// The config must be refused with exactly one diagnostic, at line:column,
// whose message contains `text`.
inline void RequireOneError(const std::string& yaml, int line, int column, const std::string& text,
                            const LoadOptions& options = TestOptions()) {
  const std::vector<Diagnostic> errors = Errors(yaml, options);
  INFO(yaml);
  INFO(Dump(errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].pos.file == "test.yaml");
  CHECK(errors[0].pos.line == line);
  CHECK(errors[0].pos.column == column);
  CHECK_THAT(errors[0].message, Catch::Contains(text));
}

inline Config RequireLoads(const std::string& yaml, const LoadOptions& options = TestOptions()) {
  std::vector<Diagnostic> errors;
  StatusOr<Config> config = LoadConfigString(yaml, "test.yaml", &errors, options);
  INFO(yaml);
  INFO(Dump(errors));
  REQUIRE(config.ok());
  REQUIRE(errors.empty());
  return std::move(config).value();
}

}  // namespace sluice::config::testing

#endif  // SLUICE_TESTS_CONFIG_TEST_UTIL_H_
