// `sluice buffer stats|peek|purge --data-dir DIR [--sink NAME | --dead-letters]`:
// the outbox and the dead letters without the agent. stats and peek open the
// store read-only and work while the agent runs; purge needs the agent
// stopped (the store's lock).
//
//   sluice buffer stats --data-dir /var/lib/sluice       # queues, journal, dead letters
//   sluice buffer peek --dead-letters --limit 5 --data-dir /var/lib/sluice
//   sluice buffer purge --dead-letters --data-dir /var/lib/sluice
#ifndef SLUICE_AGENT_BUFFER_CLI_H_
#define SLUICE_AGENT_BUFFER_CLI_H_

#include <cstddef>
#include <string>

namespace sluice::agent {

struct BufferCommand {
  std::string action;  // stats | peek | purge
  std::string data_dir = "/var/lib/sluice";
  std::string sink;    // empty: every sink
  bool dead_letters = false;  // peek, purge: the dead letters instead of the queues
  size_t limit = 10;   // peek: records per sink, or dead letters
};

// Returns the exit code.
int RunBuffer(const BufferCommand& command);

// The database file of a data directory.
std::string StorePath(const std::string& data_dir);

}  // namespace sluice::agent

#endif  // SLUICE_AGENT_BUFFER_CLI_H_
