// `sluice status [--url http://127.0.0.1:9464] [-c FILE]`: asks a running
// agent for /status and prints it as tables (sources, pipelines, sinks with
// queue depth and health, alerts firing).
//
// The address: --url, else the agent.http of the config given with -c, else
// http://127.0.0.1:9464. Exit 0 with an answer; 1 when the agent cannot be
// reached or does not answer 200 (the message names the address).
//
//   sluice status
//   sluice status --url http://10.0.0.5:9464
//   sluice status -c /etc/sluice/sluice.yaml
#ifndef SLUICE_AGENT_STATUS_CLI_H_
#define SLUICE_AGENT_STATUS_CLI_H_

#include <string>
#include <string_view>

#include "platform/clock.h"
#include "platform/status.h"

namespace sluice::agent {

struct StatusCommand {
  std::string url;          // empty: from the config, else the default
  std::string config_path;  // empty: none
};

// Returns the exit code.
int RunStatus(const StatusCommand& command);

// A response to one HTTP/1.1 GET.
struct HttpAnswer {
  int status = 0;
  std::string body;
};
// GETs `path` from `base_url` ("http://host:port[/...]" or "host:port"),
// within `timeout` for connecting and reading. kUnavailable naming the
// address when it cannot connect or read an answer; kInvalidArgument for a
// URL it cannot use.
StatusOr<HttpAnswer> HttpGet(const std::string& base_url, const std::string& path,
                             Millis timeout = Millis(5000));

// The /status JSON as tables; kInvalidArgument when it is not that JSON.
StatusOr<std::string> FormatStatusTables(std::string_view status_json);

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_STATUS_CLI_H_
