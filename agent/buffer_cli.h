// `sluice buffer stats|peek|purge --data-dir DIR [--sink NAME]`: the
// outbox without the agent. stats and peek open the store read-only and work
// while the agent runs; purge needs the agent stopped (the store's lock).
#ifndef SLUICE_AGENT_BUFFER_CLI_H_
#define SLUICE_AGENT_BUFFER_CLI_H_

#include <cstddef>
#include <string>

namespace sluice::agent {

struct BufferCommand {
  std::string action;  // stats | peek | purge
  std::string data_dir = "/var/lib/sluice";
  std::string sink;    // empty: every sink
  size_t limit = 10;   // peek: records per sink
};

// Returns the exit code.
int RunBuffer(const BufferCommand& command);

// The database file of a data directory.
std::string StorePath(const std::string& data_dir);

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_BUFFER_CLI_H_
