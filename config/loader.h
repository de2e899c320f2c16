// Loading and validating a sluice YAML config.
//
//   std::vector<config::Diagnostic> errors;
//   StatusOr<config::Config> c = config::LoadConfigFile("sluice.yaml", &errors);
//   if (!c.ok()) for (auto& e : errors) std::cerr << config::FormatDiagnostic(e) << "\n";
//
// Every error that can be found is reported in one run, each with
// file:line:column, what is wrong and what was expected. Secret values
// (${env:NAME}, ${file:PATH}) never appear in a diagnostic.
#ifndef SLUICE_CONFIG_LOADER_H_
#define SLUICE_CONFIG_LOADER_H_

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"
#include "platform/status.h"

namespace sluice::config {

struct Diagnostic {
  Position pos;
  std::string message;  // "unknown key 'topcs' (did you mean 'topics'?)"
};

// "file:line:column: message" (or "file: message" without a position).
std::string FormatDiagnostic(const Diagnostic& d);

// Where secret references are looked up; tests replace it.
struct SecretResolver {
  std::function<std::optional<std::string>(const std::string& name)> env;
  std::function<StatusOr<std::string>(const std::string& path)> file;
  static SecretResolver Default();
};

struct LoadOptions {
  SecretResolver secrets = SecretResolver::Default();
  std::string default_agent_id;  // empty: the host name
};

// On failure returns kInvalidArgument (message: the first diagnostic and a
// count) and appends every diagnostic to *errors (may be null).
StatusOr<Config> LoadConfigFile(const std::string& path, std::vector<Diagnostic>* errors,
                                const LoadOptions& options = {});
StatusOr<Config> LoadConfigString(std::string_view yaml, const std::string& file_name,
                                  std::vector<Diagnostic>* errors,
                                  const LoadOptions& options = {});

}  // namespace sluice::config

#endif  // SLUICE_CONFIG_LOADER_H_
